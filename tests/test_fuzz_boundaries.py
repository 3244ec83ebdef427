"""Inputs past every bound, from the model and from the server, never become an internal error.

* Model arguments nested 20,000 or 100,000 deep, megabytes long, or holding numbers no
  retriever can take (a 5,000-digit integer, ``1e999``) get a fixable ``invalid_arguments``
  output, and nothing is sent. ``run_chat`` / ``arun_chat`` / ``run_responses`` given such
  arguments keep the conversation going.
* Hypothesis: arbitrary argument text, arbitrary JSON arguments and arbitrary server
  answers (bytes, JSON of any shape, statuses) never yield ``internal_error``; a body
  whose top level is not an object, or whose ``documents`` is not a list of objects, is
  never a clean result.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _hostile import HostileServer, call_within, execute_body, respond
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpeek_openai import arun_chat, run_chat, run_responses
from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
from mixpeek_openai.retries import RetryPolicy
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.tools import MixpeekTools

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WATCHDOG_S = 20.0


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture(scope="module")
def tools(server: HostileServer) -> MixpeekTools:
    return MixpeekTools.from_retrievers(
        server.client(),
        [f"ret_{uuid.uuid4().hex[:12]}"],
        config=DispatchConfig(deadline_s=5, retry=RetryPolicy(max_attempts=1)),
    )


@pytest.fixture
def answering(server: HostileServer) -> HostileServer:
    """The shared server, answering every execute with a valid response."""
    server.execute = respond(execute_body())
    return server


def chat_call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def run_one(tools: MixpeekTools, arguments: str) -> ToolCallResult:
    name = tools.definitions[0].name
    timed = call_within(WATCHDOG_S, lambda: tools.dispatch([chat_call(name, arguments)]))
    assert timed.error is None, repr(timed.error)
    [result] = timed.value
    return result


def assert_never_internal(result: ToolCallResult) -> None:
    assert result.error is None or result.error.kind != "internal_error", result.error
    json.loads(result.output)  # always JSON the model can read


def deep(depth: int, opener: str = "[", closer: str = "]", leaf: str = "") -> str:
    return opener * depth + leaf + closer * depth


# -- model arguments past the bounds -------------------------------------------------------

BAD_ARGUMENTS: dict[str, str] = {
    "list-100000-deep": deep(100_000),
    "object-100000-deep": deep(100_000, opener='{"a":', closer="}", leaf="1"),
    "query-20000-deep": '{"query": ' + deep(20_000) + "}",
    "top-k-20000-deep": '{"query": "shoes", "top_k": ' + deep(20_000, leaf="1") + "}",
    "object-20000-deep": '{"query": "shoes", "x": ' + deep(20_000, '{"a":', "}", "1") + "}",
    "megabyte-query": json.dumps({"query": "shoes " * 200_000}),
    "megabyte-whitespace": '{"query": "shoes"' + " " * 1_000_000 + "}",
    "5000-digit-int": '{"query": "shoes", "top_k": 1' + "0" * 5000 + "}",
    "5000-digit-limit": '{"query": "shoes", "limit": 1' + "0" * 5000 + "}",
    "float-overflow": '{"query": "shoes", "min_score": 1e999}',
    "negative-overflow": '{"query": "shoes", "min_score": -1e999}',
    "nan": '{"query": "shoes", "min_score": NaN}',
    "infinity-literal": '{"query": "shoes", "min_score": Infinity}',
}


@pytest.mark.usefixtures("answering")
@pytest.mark.parametrize("arguments", BAD_ARGUMENTS)
def test_arguments_past_a_bound_get_a_fixable_invalid_arguments_output(
    server: HostileServer, tools: MixpeekTools, arguments: str
) -> None:
    sent_before = server.execute_count()

    result = run_one(tools, BAD_ARGUMENTS[arguments])

    assert result.error is not None, f"accepted: {result.output[:200]}"
    assert result.error.kind == "invalid_arguments", result.error
    error = json.loads(result.output)["error"]
    assert error["message"] and error["hint"], error  # says what is wrong and what to do
    assert len(result.output) < 4000
    assert server.execute_count() == sent_before, "arguments past a bound were sent"


@pytest.mark.usefixtures("answering")
async def test_async_dispatch_refuses_deep_arguments_too(tools: MixpeekTools) -> None:
    name = tools.definitions[0].name
    calls = [
        chat_call(name, BAD_ARGUMENTS["query-20000-deep"], "deep"),
        chat_call(name, json.dumps({"query": "shoes"}), "fine"),
    ]
    deep_result, fine = await asyncio.wait_for(tools.adispatch(calls), WATCHDOG_S)
    assert deep_result.error is not None and deep_result.error.kind == "invalid_arguments"
    assert fine.ok, fine.output


@pytest.mark.usefixtures("answering")
def test_a_400_digit_integer_argument_is_never_an_internal_error(tools: MixpeekTools) -> None:
    result = run_one(tools, '{"query": "shoes", "top_k": ' + "9" * 400 + "}")
    assert_never_internal(result)


@pytest.mark.usefixtures("answering")
def test_no_request_carries_a_non_json_number(server: HostileServer, tools: MixpeekTools) -> None:
    before = len(server.requests)
    for arguments in ("float-overflow", "negative-overflow", "nan", "infinity-literal"):
        run_one(tools, BAD_ARGUMENTS[arguments])
    for request in server.requests[before:]:
        if request.is_execute:
            json.loads(request.body, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"a request body carried {name}, which is not JSON")


# -- the loops keep going ------------------------------------------------------------------

LOOP_CASES = ["list-100000-deep", "query-20000-deep", "5000-digit-int", "megabyte-query"]


@pytest.mark.usefixtures("answering")
@pytest.mark.parametrize("loop", ["run_chat", "arun_chat", "run_responses"])
def test_loops_survive_arguments_past_a_bound(tools: MixpeekTools, loop: str) -> None:
    stub = StubOpenAI()
    name = tools.definitions[0].name
    calls = [
        stub.call(name, BAD_ARGUMENTS[c], call_id=f"bad_{i}") for i, c in enumerate(LOOP_CASES)
    ]
    calls.append(stub.call(name, {"query": "shoes"}, call_id="good"))
    stub.script(stub.tool_calls(calls), stub.text("done"))
    messages = [{"role": "user", "content": "find shoes"}]

    def run() -> Any:
        if loop == "run_chat":
            return run_chat(stub.client(), tools, model="gpt-4o", messages=messages)
        if loop == "run_responses":
            return run_responses(stub.client(), tools, model="gpt-4o", input="find shoes")

        async def arun() -> Any:
            client = stub.async_client()
            try:
                return await arun_chat(client, tools, model="gpt-4o", messages=messages)
            finally:
                await client.close()

        return asyncio.run(arun())

    timed = call_within(WATCHDOG_S, run)

    assert timed.error is None, repr(timed.error)
    result = timed.value
    assert result.content == "done"
    by_id = {c.call_id: c for c in result.calls}
    assert list(by_id) == [f"bad_{i}" for i in range(len(LOOP_CASES))] + ["good"]
    for i in range(len(LOOP_CASES)):
        error = by_id[f"bad_{i}"].error
        assert error is not None and error.kind == "invalid_arguments", error
    assert by_id["good"].ok


# -- hypothesis: the model side ------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
ARGUMENT_OBJECTS = st.fixed_dictionaries(
    {},
    optional={"query": JSON, "top_k": JSON, "min_score": JSON, "limit": JSON, "extra": JSON},
)
NESTING = st.builds(
    lambda depth, leaf, kind: (
        deep(depth, leaf=leaf) if kind == "list" else deep(depth, '{"q":', "}", leaf or "1")
    ),
    st.integers(min_value=500, max_value=60_000),
    st.sampled_from(["", "1", '"x"', "null"]),
    st.sampled_from(["list", "object"]),
)
HUGE_NUMBERS = st.builds(
    lambda digits, field, exponent: (
        f'{{"query": "shoes", "{field}": '
        + ("1" + "0" * digits if not exponent else f"1e{digits}")
        + "}"
    ),
    st.integers(min_value=19, max_value=6000),
    st.sampled_from(["top_k", "min_score", "limit", "query"]),
    st.booleans(),
)
ARGUMENT_TEXT = st.one_of(
    st.text(max_size=200),
    ARGUMENT_OBJECTS.map(json.dumps),
    JSON.map(json.dumps),
    NESTING,
    HUGE_NUMBERS,
    st.builds(
        lambda prefix, cut: prefix[:cut], ARGUMENT_OBJECTS.map(json.dumps), st.integers(0, 50)
    ),
)


@FUZZ
@given(arguments=ARGUMENT_TEXT)
def test_no_model_argument_yields_an_internal_error(
    server: HostileServer, tools: MixpeekTools, arguments: str
) -> None:
    server.execute = respond(execute_body())
    assert_never_internal(run_one(tools, arguments))


# -- hypothesis: the server side -----------------------------------------------------------

DOCUMENT = st.dictionaries(
    st.sampled_from(["document_id", "score", "text", "metadata", "collection_id", "title"]),
    JSON,
    max_size=5,
)
BODY_VALUES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"documents": st.one_of(st.lists(st.one_of(DOCUMENT, JSON), max_size=8), JSON)},
        optional={
            "status": st.one_of(st.sampled_from(["completed", "failed", "degraded"]), JSON),
            "pagination": st.one_of(st.fixed_dictionaries({"total": JSON}), JSON),
            "error": JSON,
            "warnings": JSON,
        },
    ),
)


def _with_big_number(digits: int, where: str) -> bytes:
    """A valid execute body whose one score, or whose total, has ``digits`` + 1 digits."""
    text = json.dumps(execute_body([{"document_id": "d", "score": 0.5}]))
    number = "1" + "0" * digits
    if where == "score":
        return text.replace('"score": 0.5', f'"score": {number}').encode()
    return text.replace('"total": 1', f'"total": {number}').encode()


BIG_NUMBERS = st.builds(
    _with_big_number,
    st.integers(min_value=300, max_value=6000),
    st.sampled_from(["score", "total"]),
)
BODIES = st.one_of(
    BODY_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    BIG_NUMBERS,
    NESTING.map(lambda text: ('{"documents": [{"metadata": ' + text + "}]}").encode()),
    NESTING.map(str.encode),
)
STATUSES = st.sampled_from([200, 200, 200, 301, 302, 307, 400, 404, 409, 422, 429, 500, 503])


def _is_contract_breaking(body: bytes) -> bool:
    """Whether a 200 with ``body`` clearly breaks the execute contract."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return True
    if not isinstance(value, dict):
        return True
    documents = value.get("documents")
    return "documents" in value and not (
        isinstance(documents, list) and all(isinstance(d, dict) for d in documents)
    )


@FUZZ
@given(body=BODIES, status=STATUSES)
def test_no_server_answer_yields_an_internal_error(
    server: HostileServer, tools: MixpeekTools, body: bytes, status: int
) -> None:
    server.execute = respond(body, status)

    result = run_one(tools, json.dumps({"query": "shoes"}))

    assert_never_internal(result)
    if status != 200:
        assert result.error is not None, (status, result.output)
    elif _is_contract_breaking(body):
        assert result.error is not None, f"a broken body became a result: {result.output}"


@pytest.mark.parametrize(
    ("total", "document_id", "accepted"),
    [
        ("9" * 20, "d", True),  # the longest integer accepted
        ("9" * 21, "d", False),  # one digit more: refused, never an internal error
        ("-" + "9" * 20, "d", True),  # the sign is not a digit
        ("1", "0" * 40, True),  # long digit runs inside strings are text
        ("1.0" + "0" * 40, "d", True),  # and inside floats
    ],
)
def test_long_integers_in_a_body_are_refused_at_twenty_one_digits(
    server: HostileServer, tools: MixpeekTools, total: str, document_id: str, accepted: bool
) -> None:
    text = json.dumps(execute_body([{"document_id": document_id, "score": 0.5}]))
    body = text.replace('"total": 1', f'"total": {total}').replace('"d"', json.dumps(document_id))
    assert f'"total": {total}' in body
    server.execute = respond(body.encode(), 200)

    result = run_one(tools, json.dumps({"query": "shoes"}))

    assert_never_internal(result)
    if accepted:
        assert result.error is None, result.output
        assert document_id in result.output
    else:
        assert result.error is not None and result.error.kind == "invalid_response"
        assert "21 digits" in result.error.message
        assert json.loads(result.output)["error"]["type"] == "temporarily_unavailable"
