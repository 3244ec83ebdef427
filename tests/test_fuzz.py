"""Property-based fuzzing of schema building, argument validation, dispatch and shaping.

Random ``input_schema``s and random or adversarial arguments and responses go through the
public pipeline. Whatever comes in: no unhandled exception, exactly one output per call,
every output valid JSON and within the token budget. The Mixpeek send is replaced by a
loopback server answering with the generated response (tests/_canned.py).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from _canned import canned_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mixpeek import Mixpeek

from mixpeek_openai import DispatchConfig, MixpeekTools, RetryPolicy
from mixpeek_openai.errors import ConfigurationError, MixpeekSchemaWarning
from mixpeek_openai.results import estimate_tokens
from mixpeek_openai.schema import build_arguments_model, strict_json_schema
from mixpeek_openai.testing import StubOpenAI

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TYPES = [
    "string",
    "number",
    "integer",
    "float",
    "boolean",
    "object",
    "array",
    "date",
    "datetime",
    "text",
    "image",
    "audio",
    "video",
    "pdf",
    "excel",
    "document_reference",
    "no_such_type",
]

ADVERSARIAL_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud7ff\ue000\U0010ffff",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🧨 عربى 中文",
        "x" * 70_000,
        '{"query": "x"}',
        "null",
        "' OR 1=1; --",
        "../../etc/passwd",
        "Bearer abc.def",
    ]
)
TEXT = st.one_of(st.text(max_size=40), ADVERSARIAL_TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
FIELD_NAMES = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
    st.sampled_from(["class", "model_config", "limit", "top_k", "_private", "a-b", "Ünï", "9x"]),
)


def _spec(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "description": TEXT,
            "required": st.booleans(),
            "default": JSON,
            "enum": st.lists(SCALARS, max_size=4),
            "examples": st.lists(JSON, max_size=2),
            "items": children,
            "properties": st.dictionaries(FIELD_NAMES, children, max_size=3),
        },
    )


SPECS = st.recursive(st.builds(dict, type=st.sampled_from(TYPES)), _spec, max_leaves=6)
SCHEMAS = st.dictionaries(FIELD_NAMES, SPECS, min_size=0, max_size=6)


def _client(response: Any) -> Any:
    """A real Mixpeek client whose every execute gets ``response`` from a loopback server."""
    server = canned_server()
    server.answer(response)
    server.sent.clear()
    return Mixpeek(api_key="mxp-fuzz-key-0", namespace="ns_fuzz", base_url=server.base_url)


def _tools(schema: dict[str, Any], response: Any, budget: int) -> MixpeekTools | None:
    definition = {"retriever_id": "ret_fuzz", "retriever_name": "fuzz", "input_schema": schema}
    config = DispatchConfig(
        retry=RetryPolicy.none(),
        deadline_s=5,
        output_budget_tokens=budget,
        token_counter=estimate_tokens,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixpeekSchemaWarning)
        try:
            return MixpeekTools(_client(response), [definition], config=config)
        except ConfigurationError:
            return None


def _check_outputs(tools: MixpeekTools, calls: list[dict[str, Any]], budget: int) -> None:
    results = tools.dispatch(calls)
    assert [r.call_id for r in results] == [c["id"] for c in calls]
    for result in results:
        json.loads(result.output)
        assert estimate_tokens(result.output) <= budget, (budget, result.output[:300])
        if result.error is not None:
            assert result.error.kind != "internal_error", result.error


def _call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


@FUZZ
@given(schema=SCHEMAS)
def test_random_schemas_build_strict_tools_the_api_accepts(schema: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixpeekSchemaWarning)
        try:
            model = build_arguments_model(schema, model_name="FuzzInputs")
        except ConfigurationError:
            return
    json.dumps(strict_json_schema(model))
    tools = _tools(schema, {"documents": []}, 2000)
    assert tools is not None
    stub = StubOpenAI()
    # The stub enforces OpenAI's strict-schema rules (a 400 here would be a real 400), and
    # its rule-based model fills in arguments from the schema, which we then run.
    completion = stub.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "find things"}],
        tools=tools.chat_tools(),  # type: ignore[arg-type]
    )
    calls = completion.choices[0].message.tool_calls or []
    _check_outputs(tools, [c.model_dump() for c in calls], 2000)


@FUZZ
@given(
    schema=SCHEMAS,
    arguments=st.lists(st.one_of(JSON, TEXT), min_size=1, max_size=4),
    budget=st.integers(min_value=64, max_value=3000),
)
def test_random_arguments_always_get_one_bounded_json_output(
    schema: dict[str, Any], arguments: list[Any], budget: int
) -> None:
    tools = _tools(schema, {"documents": [{"document_id": "d1", "score": 0.5}]}, budget)
    if tools is None:
        return
    name = tools.definitions[0].name
    calls = [_call(f"c{i}", name, a) for i, a in enumerate(arguments)]
    calls.append(_call("unknown", "no_such_tool_" + "x" * 40, {"q": 1}))
    _check_outputs(tools, calls, budget)
    # Whatever was sent, it went to the configured retriever with only declared inputs.
    for sent in canned_server().sent:
        assert set(sent) <= {"inputs", "limit", "pagination"}
        assert set(sent["inputs"]) <= set(schema)


DOCUMENT = st.dictionaries(
    st.sampled_from(["document_id", "score", "title", "text", "metadata", "blob", "url"]),
    JSON,
    max_size=6,
)
RESPONSES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"documents": st.lists(st.one_of(DOCUMENT, JSON), max_size=30)},
        optional={
            "status": st.sampled_from(["completed", "failed", "degraded", "weird", 3]),
            "error": JSON,
            "warnings": JSON,
            "pagination": JSON,
            "stage_statistics": JSON,
        },
    ),
)


@FUZZ
@given(response=RESPONSES, budget=st.integers(min_value=64, max_value=3000))
def test_random_responses_are_shaped_into_the_budget(response: Any, budget: int) -> None:
    schema = {"query": {"type": "string", "required": True}}
    tools = _tools(schema, response, budget)
    assert tools is not None
    name = tools.definitions[0].name
    _check_outputs(tools, [_call("c1", name, {"query": "x"})], budget)


@pytest.mark.parametrize("budget", [64, 100, 2000])
def test_the_longest_error_outputs_fit_the_smallest_budgets(budget: int) -> None:
    # Many fields with long names: the validation message and the parameter hint are long.
    schema = {f"field_{'n' * 40}_{i}": {"type": "integer", "required": True} for i in range(30)}
    tools = _tools(schema, {"documents": []}, budget)
    assert tools is not None
    name = tools.definitions[0].name
    bad = {k: "not a number " * 20 for k in schema}
    _check_outputs(tools, [_call("c1", name, bad), _call("c2", "x" * 64, {})], budget)
