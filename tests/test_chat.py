"""run_chat / arun_chat against StubOpenAI + FakeMixpeek through the real clients."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from mixpeek_openai.chat import ChatResult, arun_chat, run_chat, supports_parallel_tool_calls
from mixpeek_openai.errors import (
    ConfigurationError,
    ContentFilteredError,
    MaxTurnsExceededError,
    OutputTruncatedError,
)
from mixpeek_openai.events import Event, ToolCallDeltaEvent, ToolCallEvent, Usage
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
CATALOG = "search_catalog"
USER = [{"role": "user", "content": "How do I set up SSO?"}]


@pytest.fixture(params=["sync", "async"])
def chat(request: pytest.FixtureRequest, stub: StubOpenAI, tools: MixpeekTools) -> Any:
    """Run the chat loop with the sync or the async client (same cases, both drivers)."""

    def run(**kwargs: Any) -> ChatResult:
        kwargs.setdefault("model", "gpt-4o")
        if request.param == "sync":
            return run_chat(stub.client(), tools, **kwargs)
        return asyncio.run(arun_chat(stub.async_client(), tools, **kwargs))

    return run


def chat_bodies(stub: StubOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in stub.requests_to("/v1/chat/completions", "POST")]


def test_multi_turn_with_parallel_tool_calls(chat: Any, stub: StubOpenAI) -> None:
    stub.script(
        stub.tool_calls(
            [stub.call(DEMO, {"query": "sso setup"}), stub.call(CATALOG, {"query": "sso screen"})],
            usage=(100, 20),
        ),
        stub.tool_call(DEMO, {"query": "sso audit"}, usage=(200, 10)),
        stub.text("Open Settings, then SSO.", usage=(300, 8)),
    )

    result = chat(messages=USER)

    assert result.content == "Open Settings, then SSO."
    assert result.turns == 3
    assert result.usage == Usage(600, 38, 638, 3)
    assert [c.name for c in result.calls] == [DEMO, CATALOG, DEMO]
    assert all(c.ok for c in result.calls)
    roles = [m["role"] for m in result.messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    # One assistant message carries both calls of the parallel turn, answered in order.
    first = result.messages[1]
    assert [c["function"]["name"] for c in first["tool_calls"]] == [DEMO, CATALOG]
    assert [m["tool_call_id"] for m in result.messages[2:4]] == [
        c["id"] for c in first["tool_calls"]
    ]
    # The second request carried exactly that transcript, with the tool set's tools.
    bodies = chat_bodies(stub)
    assert len(bodies) == 3
    assert bodies[1]["messages"] == result.messages[:4]
    assert [t["function"]["name"] for t in bodies[0]["tools"]] == [DEMO, CATALOG]
    # The input list was not modified.
    assert USER == [{"role": "user", "content": "How do I set up SSO?"}]


def test_parallel_calls_of_a_turn_are_dispatched_together(
    chat: Any, stub: StubOpenAI, fake: FakeMixpeek
) -> None:
    stub.script(
        stub.tool_calls([stub.call(DEMO, {"query": "a"}), stub.call(CATALOG, {"query": "b"})]),
        stub.text("ok"),
    )
    results: list[ChatResult] = []
    fake.pause("execute")
    worker = threading.Thread(target=lambda: results.append(chat(messages=USER)))
    worker.start()
    try:
        # The server holds both executes at once: the turn's calls were sent together.
        held = fake.wait_for_requests(2, "execute", in_flight=True, timeout=30)
    finally:
        fake.resume()
        worker.join(timeout=60)
    assert held
    assert [r.content for r in results] == ["ok"]
    assert fake.max_overlap("execute") == 2


def test_returned_messages_continue_the_conversation(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("First answer."))
    first = chat(messages=USER)

    stub.script(stub.tool_call(CATALOG, {"query": "sso screen"}), stub.text("Second answer."))
    follow_up = [*first.messages, {"role": "user", "content": "And the screen?"}]
    second = chat(messages=follow_up)

    assert second.content == "Second answer."
    assert second.messages[: len(follow_up)] == follow_up
    # The stub validates the tool-call rules: a malformed history would have been a 400.
    assert chat_bodies(stub)[2]["messages"] == follow_up


def test_continue_from_sdk_message_objects(stub: StubOpenAI, tools: MixpeekTools) -> None:
    client = stub.client()
    stub.script(stub.tool_call(DEMO, {"query": "sso"}))
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,  # type: ignore[arg-type]
        tools=tools.chat_tools(),  # type: ignore[arg-type]
    )
    message = completion.choices[0].message
    call = message.tool_calls[0]  # type: ignore[index]
    stub.script(stub.text("Done."))

    result = run_chat(
        client,
        tools,
        model="gpt-4o",
        messages=[
            *USER,
            message,
            {"role": "tool", "tool_call_id": call.id, "content": "{}"},
        ],
    )

    assert result.content == "Done."
    assert result.messages[1]["tool_calls"][0]["id"] == call.id


def test_streamed_tool_call_deltas_are_assembled(chat: Any, stub: StubOpenAI) -> None:
    args_a = {"query": "single sign-on setup for enterprise", "category": "security"}
    args_b = {"query": "sso settings screen"}
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, args_a, call_id="call_a"),
                stub.call(CATALOG, args_b, call_id="call_b"),
            ],
            text="Let me look.",
        ),
        stub.text("Use the SSO page in Settings.", usage=(50, 7)),
    )
    events: list[Event] = []

    result = chat(messages=USER, stream=True, on_event=events.append)

    assistant = result.messages[1]
    assert assistant["content"] == "Let me look."
    assert assistant["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": DEMO, "arguments": json.dumps(args_a, separators=(",", ":"))},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": CATALOG, "arguments": json.dumps(args_b, separators=(",", ":"))},
        },
    ]
    assert [c.arguments for c in result.calls] == [args_a, args_b]
    assert result.content == "Use the SSO page in Settings."
    deltas = [e.text for e in events if e.type == "message"]
    assert all(e.delta for e in events if e.type == "message")
    assert "".join(deltas) == "Let me look.Use the SSO page in Settings."
    assert len(deltas) > 2  # text arrived in pieces, not at the end
    assert result.usage.completion_tokens > 0 and result.usage.requests == 2
    body = chat_bodies(stub)[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    # Each call's arguments were reported in fragments, in order, before its tool_call event.
    for call_id, name, args in (("call_a", DEMO, args_a), ("call_b", CATALOG, args_b)):
        fragments = [
            i
            for i, e in enumerate(events)
            if isinstance(e, ToolCallDeltaEvent) and e.call_id == call_id
        ]
        call_at = next(
            i for i, e in enumerate(events) if e.type == "tool_call" and e.call_id == call_id
        )
        assert len(fragments) >= 2 and max(fragments) < call_at
        pieces = [events[i] for i in fragments]
        assert all(isinstance(p, ToolCallDeltaEvent) and p.name == name for p in pieces)
        assert (
            json.loads("".join(p.delta for p in pieces if isinstance(p, ToolCallDeltaEvent)))
            == args
        )


def test_usage_sums_cached_and_reasoning_tokens(chat: Any, stub: StubOpenAI) -> None:
    stub.report_usage_details(cached_tokens=30, reasoning_tokens=4)
    stub.script(
        stub.tool_call(DEMO, {"query": "sso"}, usage=(100, 20)),
        stub.text("Done.", usage=(200, 8)),
    )

    plain = chat(messages=USER)
    stub.script(
        stub.tool_call(DEMO, {"query": "sso"}, usage=(100, 20)),
        stub.text("Done.", usage=(200, 8)),
    )
    streamed = chat(messages=USER, stream=True)

    for result in (plain, streamed):
        assert result.usage == Usage(300, 28, 328, 2, cached_tokens=60, reasoning_tokens=8)


def test_deeply_nested_arguments_do_not_end_the_conversation(chat: Any, stub: StubOpenAI) -> None:
    deep = '{"query": ' + "[" * 30_000 + "]" * 30_000 + "}"  # under the size cap, too deep
    stub.script(
        stub.tool_calls([stub.call(DEMO, deep, call_id="deep"), stub.call(DEMO, {"query": "ok"})]),
        stub.text("Recovered."),
    )
    events: list[Event] = []

    result = chat(messages=USER, on_event=events.append)

    assert result.content == "Recovered."
    assert [c.ok for c in result.calls] == [False, True]
    first_call = next(e for e in events if isinstance(e, ToolCallEvent))
    assert first_call.call_id == "deep" and first_call.arguments is None
    tool_ids = [m["tool_call_id"] for m in result.messages if m["role"] == "tool"]
    assert tool_ids == ["deep", result.calls[1].call_id]


def test_events_sequence(chat: Any, stub: StubOpenAI) -> None:
    stub.script(
        stub.tool_calls(
            [stub.call(DEMO, {"query": "sso"}, call_id="c1"), stub.call(CATALOG, "{bad json")]
        ),
        stub.text("Answer."),
    )
    events: list[Event] = []

    result = chat(messages=USER, on_event=events.append)

    summary = [(e.type, e.turn, getattr(e, "name", None)) for e in events]
    assert summary == [
        ("thinking", 1, None),
        ("tool_call", 1, DEMO),
        ("tool_call", 1, CATALOG),
        ("tool_result", 1, DEMO),
        ("tool_result", 1, CATALOG),
        ("thinking", 2, None),
        ("message", 2, None),
        ("done", 2, None),
    ]
    assert events == result.events
    call_a, call_b, result_a, result_b = events[1:5]
    assert call_a.type == "tool_call" and call_a.call_id == "c1"
    assert call_a.arguments == {"query": "sso"}
    assert call_b.type == "tool_call" and call_b.arguments is None  # not JSON
    assert result_a.type == "tool_result" and result_a.ok and result_a.error_kind is None
    assert result_b.type == "tool_result" and not result_b.ok and result_b.error_kind
    assert result_b.output == result.calls[1].output
    done = events[-1]
    assert done.type == "done" and done.content == "Answer." and done.usage == result.usage


def test_max_turns_raise(chat: Any, stub: StubOpenAI) -> None:
    stub.script(
        stub.tool_call(DEMO, {"query": "a"}),
        stub.tool_call(DEMO, {"query": "b"}),
        stub.tool_call(DEMO, {"query": "c"}),
    )

    with pytest.raises(MaxTurnsExceededError) as info:
        chat(messages=USER, max_turns=2)

    err = info.value
    assert err.max_turns == 2 and err.turns == 2
    assert len(chat_bodies(stub)) == 2
    assert len(err.calls) == 2
    # The last turn's calls were answered: the transcript is valid to continue.
    assert err.messages is not None
    assert [m["role"] for m in err.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert err.usage.requests == 2


def test_max_turns_forced_answer(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "a"}), stub.text("Best effort answer."))

    result = chat(messages=USER, max_turns=2, on_max_turns="answer", tool_choice="required")

    assert result.content == "Best effort answer."
    bodies = chat_bodies(stub)
    assert bodies[0]["tool_choice"] == "required"
    assert bodies[1]["tool_choice"] == "none"
    assert len(bodies) == 2


def test_truncated_output_raises_with_usage(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "a"}, usage=(10, 5)))
    stub.script(stub.truncated("Partial ans", usage=(20, 4096)))

    with pytest.raises(OutputTruncatedError) as info:
        chat(messages=USER)

    err = info.value
    assert err.usage == Usage(30, 4101, 4131, 2)
    assert err.partial == {"role": "assistant", "content": "Partial ans"}
    assert err.turns == 2
    assert err.messages is not None and err.messages[-1]["role"] == "tool"


def test_content_filter_raises_with_usage(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.content_filtered("", usage=(12, 0)))

    with pytest.raises(ContentFilteredError) as info:
        chat(messages=USER, stream=True)

    assert info.value.usage == Usage(12, 0, 12, 1)
    assert info.value.partial == {"role": "assistant", "content": None}


def test_create_kwargs_pass_through(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.text("ok"))
    chat(
        messages=USER,
        tool_choice="auto",
        parallel_tool_calls=False,
        temperature=0.2,
        max_completion_tokens=300,
    )
    body = chat_bodies(stub)[0]
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False
    assert body["temperature"] == 0.2
    assert body["max_completion_tokens"] == 300


def test_parallel_tool_calls_omitted_for_reasoning_models(chat: Any, stub: StubOpenAI) -> None:
    stub.script(stub.text("ok"))
    chat(model="o4-mini", messages=USER, parallel_tool_calls=True)
    assert "parallel_tool_calls" not in chat_bodies(stub)[0]


@pytest.mark.parametrize(
    ("model", "accepted"),
    [
        ("gpt-4o", True),
        ("gpt-4.1-mini", True),
        ("o1", False),
        ("o3-mini", False),
        ("o4-mini-2025-04-16", False),
        ("openai/o3", False),
        ("ft:o4-mini:acme::abc", False),
        ("omni-moderation", True),
    ],
)
def test_supports_parallel_tool_calls(model: str, accepted: bool) -> None:
    assert supports_parallel_tool_calls(model) is accepted


def test_configuration_mistakes_raise_before_any_request(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    with pytest.raises(ConfigurationError, match="n must be 1"):
        run_chat(stub.client(), tools, model="gpt-4o", messages=USER, n=2)
    with pytest.raises(ConfigurationError, match="max_turns"):
        run_chat(stub.client(), tools, model="gpt-4o", messages=USER, max_turns=0)
    assert stub.requests == []


def test_api_errors_propagate(chat: Any, stub: StubOpenAI) -> None:
    import openai

    stub.script(stub.error(400, message="bad request"))
    with pytest.raises(openai.BadRequestError):
        chat(messages=USER)
