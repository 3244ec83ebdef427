"""The user's own functions and hosted tools beside Mixpeek's, through the real clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from mixpeek_openai.assistants import arun_assistant, create_assistant, run_assistant
from mixpeek_openai.chat import ChatResult, arun_chat, run_chat
from mixpeek_openai.dispatch import CallEvent, DispatchConfig
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.functions import function_tool
from mixpeek_openai.responses import ResponsesResult, arun_responses, run_responses
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.toolbox import Toolbox
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
CATALOG = "search_catalog"
QUESTION = "What is the weather in Paris, and is there an SSO demo?"


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: The city name, e.g. "Paris".
        unit: Temperature unit.
    """
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


async def convert(
    amount: Annotated[float, Field(gt=0, description="How much money")], currency: str
) -> str:
    """Convert an amount to euros."""
    await asyncio.sleep(0)
    return f"{amount * 0.5:.2f} EUR from {currency}"


def broken(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"cannot do that: {reason}")


# --- definitions ------------------------------------------------------------------------


def test_function_tool_builds_a_strict_schema_from_the_signature_and_docstring() -> None:
    tool = function_tool(get_weather)

    assert tool.kind == "function" and tool.retriever_id is None and tool.function is get_weather
    assert tool.description == "Current weather for a city."
    spec = tool.chat_tool()["function"]
    params = spec["parameters"]
    assert spec["strict"] is True and spec["name"] == "get_weather"
    assert params["additionalProperties"] is False
    assert params["required"] == ["city", "unit"]  # strict: optional ones are nullable
    assert params["properties"]["city"]["description"] == 'The city name, e.g. "Paris".'
    assert "celsius" in json.dumps(params["properties"]["unit"])
    flat = function_tool(convert).responses_tool()
    assert flat["name"] == "convert" and flat["parameters"]["properties"]["amount"]["type"] in (
        "number",
        ["number"],
    )


def test_function_tool_refuses_what_the_model_cannot_call() -> None:
    def untyped(city):  # type: ignore[no-untyped-def]
        return city

    def star(*cities: str) -> str:
        return ""

    def positional(city: str, /) -> str:
        return city

    with pytest.raises(ConfigurationError, match="annotation"):
        function_tool(untyped)
    with pytest.raises(ConfigurationError, match=r"\*cities"):
        function_tool(star)
    with pytest.raises(ConfigurationError, match="positional-only"):
        function_tool(positional)
    with pytest.raises(ConfigurationError, match="valid tool name"):
        function_tool(lambda city: city)
    with pytest.raises(ConfigurationError, match="annotation"):
        function_tool(lambda city: city, name="echo")  # named, but still untyped


def test_toolbox_checks_names_and_entries(tools: MixpeekTools) -> None:
    def search_catalog(query: str) -> str:
        """Clashes with the Mixpeek tool of the same name."""
        return query

    with pytest.raises(ConfigurationError, match="search_catalog"):
        Toolbox([tools, search_catalog])
    with pytest.raises(ConfigurationError, match="Python function"):
        Toolbox([tools, {"type": "function", "name": "x", "parameters": {}}])
    with pytest.raises(ConfigurationError, match="type"):
        Toolbox([{"name": "web"}])
    with pytest.raises(ConfigurationError, match="Cannot use"):
        Toolbox([42])
    box = Toolbox([tools, get_weather, {"type": "web_search"}])
    assert box.names == (DEMO, CATALOG, "get_weather")
    assert [t.get("name", t["type"]) for t in box.responses_tools()] == [
        DEMO,
        CATALOG,
        "get_weather",
        "web_search",
    ]


def test_hosted_tools_are_refused_by_the_api_that_does_not_take_them(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    client = stub.client()
    with pytest.raises(ConfigurationError, match="Responses API") as info:
        run_chat(client, [tools, {"type": "web_search"}], model="gpt-4o", messages=[])
    assert "web_search" in str(info.value)
    with pytest.raises(ConfigurationError, match=r"Assistants API.*web_search.*Responses API"):
        create_assistant(client, [tools, {"type": "web_search"}], model="gpt-4o")
    with pytest.raises(ConfigurationError, match="no loop of this package knows it"):
        run_chat(client, [tools, {"type": "brand_new_tool"}], model="gpt-4o", messages=[])
    assert stub.requests == []  # refused before anything was sent


# --- loops ------------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _chat(mode: str, stub: StubOpenAI, tools: Any, **kwargs: Any) -> ChatResult:
    kwargs.setdefault("model", "gpt-4o")
    kwargs.setdefault("messages", [{"role": "user", "content": QUESTION}])
    if mode == "sync":
        return run_chat(stub.client(), tools, **kwargs)
    return asyncio.run(arun_chat(stub.async_client(), tools, **kwargs))


def _responses(mode: str, stub: StubOpenAI, tools: Any, **kwargs: Any) -> ResponsesResult:
    kwargs.setdefault("model", "gpt-4o")
    kwargs.setdefault("input", QUESTION)
    if mode == "sync":
        return run_responses(stub.client(), tools, **kwargs)
    return asyncio.run(arun_responses(stub.async_client(), tools, **kwargs))


def test_chat_runs_functions_beside_the_mixpeek_tools(
    mode: str, stub: StubOpenAI, tools: MixpeekTools, fake: FakeMixpeek
) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call("get_weather", {"city": "Paris", "unit": None}, call_id="c1"),
                stub.call(DEMO, {"query": "sso"}, call_id="c2"),
                stub.call("convert", {"amount": 10, "currency": "USD"}, call_id="c3"),
            ]
        ),
        stub.text("21 degrees, and yes."),
    )

    result = _chat(mode, stub, [tools, get_weather, convert])

    assert result.content == "21 degrees, and yes."
    assert [(c.call_id, c.name, c.ok) for c in result.calls] == [
        ("c1", "get_weather", True),
        ("c2", DEMO, True),
        ("c3", "convert", True),
    ]
    weather = json.loads(result.calls[0].output)
    assert weather == {"city": "Paris", "temperature": 21, "unit": "celsius"}  # null -> default
    assert "5.00 EUR from USD" in result.calls[2].output  # the coroutine was awaited
    assert len(fake.requests_for("execute")) == 1  # only the Mixpeek tool reached Mixpeek
    sent = stub.requests_to("/v1/chat/completions", "POST")[0].body
    assert [t["function"]["name"] for t in sent["tools"]] == [
        DEMO,
        CATALOG,
        "get_weather",
        "convert",
    ]
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c2", "c3"]


def test_function_mistakes_and_failures_go_back_to_the_model(
    mode: str, stub: StubOpenAI, tools: MixpeekTools
) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call("convert", {"amount": -3, "currency": "USD"}, call_id="bad"),
                stub.call("broken", {"reason": "no"}, call_id="boom"),
                stub.call("nope", {}, call_id="unknown"),
                stub.call("get_weather", {"city": "Oslo", "unit": None}, call_id="bad"),
            ]
        ),
        stub.text("Sorry."),
    )

    result = _chat(mode, stub, [tools, convert, broken, get_weather])

    kinds = [(c.call_id, c.error.kind if c.error else None) for c in result.calls]
    assert kinds[0] == ("bad", "invalid_arguments")
    assert kinds[1][0] == "boom" and kinds[1][1] is not None
    assert kinds[2] == ("unknown", "unknown_tool")
    assert kinds[3] == ("bad", "duplicate_call")  # answered once, by the source of the first
    assert "amount" in result.calls[0].output
    # The unknown-tool answer lists every tool, whichever source owns it.
    for name in (DEMO, CATALOG, "convert", "broken", "get_weather"):
        assert name in result.calls[2].output
    tool_ids = [m["tool_call_id"] for m in result.messages if m["role"] == "tool"]
    assert tool_ids == ["bad", "boom", "unknown"]  # one message per id: the API accepted it


def test_responses_with_a_function_and_a_hosted_tool(
    mode: str, stub: StubOpenAI, tools: MixpeekTools
) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call("get_weather", {"city": "Paris", "unit": "fahrenheit"}, call_id="w"),
                stub.call(CATALOG, {"query": "sso"}, call_id="s"),
            ]
        ),
        stub.text("Warm, and there is a demo."),
    )
    hosted = {"type": "web_search", "search_context_size": "low"}

    result = _responses(mode, stub, [tools, get_weather, hosted])

    assert result.content == "Warm, and there is a demo."
    assert [c.name for c in result.calls] == ["get_weather", CATALOG]
    assert json.loads(result.calls[0].output)["temperature"] == 70
    sent = stub.requests_to("/v1/responses", "POST")[0].body
    assert sent["tools"][-1] == hosted  # passed as given
    assert [t.get("name") for t in sent["tools"][:3]] == [DEMO, CATALOG, "get_weather"]


def test_assistants_runs_functions_and_takes_its_hosted_tools(
    mode: str, stub: StubOpenAI, tools: MixpeekTools
) -> None:
    box = [tools, get_weather, {"type": "code_interpreter"}]
    assistant = create_assistant(stub.client(), box, model="gpt-4o")
    assert [t.type for t in assistant.tools] == ["function"] * 3 + ["code_interpreter"]
    stub.script(stub.tool_call("get_weather", {"city": "Rome", "unit": None}), stub.text("Sunny."))
    if mode == "sync":
        result = run_assistant(
            stub.client(), box, assistant_id=assistant.id, message=QUESTION, poll_interval_s=0
        )
    else:
        result = asyncio.run(
            arun_assistant(
                stub.async_client(),
                box,
                assistant_id=assistant.id,
                message=QUESTION,
                poll_interval_s=0,
            )
        )
    assert result.content == "Sunny."
    assert result.calls[0].name == "get_weather" and result.calls[0].ok
    assert json.loads(result.calls[0].output)["city"] == "Rome"


def test_functions_report_call_events_and_run_concurrently(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    events: list[CallEvent] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=5)

    def left(x: int) -> int:
        """Waits for right."""
        barrier.wait()
        return x

    def right(x: int) -> int:
        """Waits for left."""
        barrier.wait()
        return -x

    def record(event: CallEvent) -> None:
        with lock:
            events.append(event)

    box = Toolbox([tools, left, right], config=DispatchConfig(on_call_event=record))
    stub.script(
        stub.tool_calls([stub.call("left", {"x": 1}), stub.call("right", {"x": 2})]),
        stub.text("Done."),
    )

    result = run_chat(
        stub.client(), box, model="gpt-4o", messages=[{"role": "user", "content": "go"}]
    )

    # Both ran at once (each waited for the other at the barrier, or it would have broken).
    assert [c.ok for c in result.calls] == [True, True]
    assert [json.loads(c.output) for c in result.calls] == [1, -2]
    finished = sorted(e.name for e in events if e.kind == "finished")
    assert finished == ["left", "right"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sources_run_at_the_same_time(
    mode: str, stub: StubOpenAI, fake: FakeMixpeek, tools: MixpeekTools
) -> None:
    ran_at: list[float] = []

    async def note(text: str) -> str:
        """Records when it ran."""
        ran_at.append(time.time())
        return text.upper()

    fake.set_latency(0.3, "execute")
    try:
        stub.script(
            stub.tool_calls([stub.call(DEMO, {"query": "sso"}), stub.call("note", {"text": "hi"})]),
            stub.text("Ok."),
        )
        result = _chat(mode, stub, [tools, note])
    finally:
        fake.set_latency(0, "execute")
    search, noted = result.calls
    assert search.ok and noted.ok and "HI" in noted.output
    # The function ran while the (300 ms) search was still waiting for its answer.
    assert ran_at[0] < search.started_at + search.duration_s - 0.1


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this object")

    __repr__ = __str__


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this exception")


def _surrogate_text(q: str) -> str:
    """Text decoded elsewhere with errors="surrogateescape"."""
    return b"caf\xe9 menu".decode("utf-8", "surrogateescape")


def _unprintable_value(q: str) -> object:
    """Returns an object that cannot be turned into text."""
    return {"value": _Unprintable()}


def _unprintable_error(q: str) -> str:
    """Raises an exception that cannot be turned into text."""
    raise _UnprintableError


def _surrogate_error(q: str) -> str:
    """Raises with a lone surrogate in the message."""
    raise ValueError("bad \udce9 input")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_what_a_function_returns_or_raises_is_always_answered(mode: str) -> None:
    functions = [_surrogate_text, _unprintable_value, _unprintable_error, _surrogate_error]
    box = Toolbox([function_tool(f, name=f.__name__.strip("_")) for f in functions])
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": '{"q": "x"}'}}
        for i, n in enumerate(box.names)
    ]

    results = box.dispatch(calls) if mode == "sync" else asyncio.run(box.adispatch(calls))

    assert [r.call_id for r in results] == ["c0", "c1", "c2", "c3"]
    for r in results:
        assert r.error is None or r.error.kind != "internal_error", (r.name, r.output)
        r.output.encode("utf-8")  # sendable: no lone surrogate left
    assert results[0].ok and results[0].output == "caf\ufffd menu"
    assert results[1].ok and json.loads(results[1].output) == {"value": "<_Unprintable>"}
    assert [r.error.kind if r.error else None for r in results[2:]] == ["execution_failed"] * 2
    assert "_UnprintableError" in results[2].output
    assert "bad \ufffd input" in results[3].output
