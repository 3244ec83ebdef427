"""The loop events: vocabulary, callback + iterator delivery, early close, no secrets."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from mixpeek_openai.assistants import aiter_assistant, create_assistant, iter_assistant
from mixpeek_openai.chat import aiter_chat, iter_chat
from mixpeek_openai.events import (
    DoneEvent,
    Event,
    MessageEvent,
    ThinkingEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from mixpeek_openai.responses import aiter_responses, iter_responses
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
USER = [{"role": "user", "content": "sso setup"}]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.now += seconds


def latest_run_status(stub: StubOpenAI) -> str:
    (create,) = stub.requests_to("/v1/threads/*/runs", "POST")
    thread_id = create.path.split("/")[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        page = stub.client().beta.threads.runs.list(thread_id=thread_id)
    return str(page.data[0].status)


# --- vocabulary -------------------------------------------------------------------------


def test_event_vocabulary_and_to_dict() -> None:
    usage = Usage(3, 2, 5, 1)
    events: list[Event] = [
        ThinkingEvent(1, "gpt-4o"),
        ToolCallEvent(1, "call_1", DEMO, {"query": "sso"}),
        ToolResultEvent(1, "call_1", DEMO, True, '{"total":0}', duration_s=0.5),
        MessageEvent(2, "Hel", delta=True),
        DoneEvent(2, "Hello", usage),
    ]
    assert [e.type for e in events] == ["thinking", "tool_call", "tool_result", "message", "done"]
    assert events[1].to_dict() == {
        "type": "tool_call",
        "turn": 1,
        "call_id": "call_1",
        "name": DEMO,
        "arguments": {"query": "sso"},
    }
    assert events[4].to_dict() == {
        "type": "done",
        "turn": 2,
        "content": "Hello",
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "total_tokens": 5,
            "requests": 1,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
        },
    }
    for event in events:
        json.dumps(event.to_dict())  # JSON-ready


def test_usage_sums_and_reads_every_api_shape() -> None:
    chat = Usage.from_api({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14})
    responses = Usage.from_api({"input_tokens": 7, "output_tokens": 3, "total_tokens": 10})
    assert chat + responses == Usage(17, 7, 24, 2)
    assert Usage.from_api(None) == Usage(requests=1)
    assert Usage.from_api({"input_tokens": 2, "output_tokens": 1}).total_tokens == 3


def test_usage_sums_cached_and_reasoning_tokens_from_both_shapes() -> None:
    chat = Usage.from_api(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 25},
        }
    )
    responses = Usage.from_api(
        {
            "input_tokens": 50,
            "output_tokens": 10,
            "total_tokens": 60,
            "input_tokens_details": {"cached_tokens": 32},
            "output_tokens_details": {"reasoning_tokens": 6},
        }
    )
    run = Usage.from_api({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6})
    total = chat + responses + run
    assert (total.cached_tokens, total.reasoning_tokens) == (96, 31)
    assert (total.prompt_tokens, total.completion_tokens, total.requests) == (155, 51, 3)
    # Details the API leaves out (or reports as null) read as zero.
    nulls = {"input_tokens": 1, "output_tokens": 1, "input_tokens_details": None}
    assert Usage.from_api(nulls).cached_tokens == 0


# --- iterators --------------------------------------------------------------------------


def test_iter_chat_yields_the_callback_events_and_keeps_the_result(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Found it."))
    seen: list[Event] = []

    stream = iter_chat(
        stub.client(), tools, model="gpt-4o", messages=USER, stream=True, on_event=seen.append
    )
    with pytest.raises(RuntimeError):
        _ = stream.result
    with stream:
        events = list(stream)

    assert events == seen == stream.result.events
    assert stream.result.content == "Found it."
    kinds = [e.type for e in events]
    # The streamed arguments come first as fragments, then the assembled call.
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert kinds[0] == "thinking" and kinds[1 : 1 + len(deltas)] == ["tool_call_delta"] * len(
        deltas
    )
    assert kinds[1 + len(deltas) : 4 + len(deltas)] == ["tool_call", "tool_result", "thinking"]
    call = next(e for e in events if isinstance(e, ToolCallEvent))
    assert len(deltas) >= 2
    assert {(d.call_id, d.name) for d in deltas} == {(call.call_id, DEMO)}
    assert json.loads("".join(d.delta for d in deltas)) == call.arguments == {"query": "sso"}
    assert events[-1].type == "done"


async def test_aiter_chat_and_aiter_responses(stub: StubOpenAI, tools: MixpeekTools) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Chat answer."))
    async with aiter_chat(stub.async_client(), tools, model="gpt-4o", messages=USER) as chat:
        chat_events = [e async for e in chat]
    assert chat.result.content == "Chat answer."
    assert chat_events == chat.result.events

    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Responses answer."))
    stream = aiter_responses(stub.async_client(), tools, model="gpt-4o", input="sso", stream=True)
    types = [e.type async for e in stream]
    assert stream.result.content == "Responses answer."
    assert types[0] == "thinking" and types[-1] == "done" and "message" in types


def test_iter_responses(stub: StubOpenAI, tools: MixpeekTools) -> None:
    stub.script(stub.text("Direct answer."))
    stream = iter_responses(stub.client(), tools, model="gpt-4o", input="hello")
    assert [e.type for e in stream] == ["thinking", "message", "done"]
    assert stream.result.content == "Direct answer."


def test_closing_an_assistant_stream_early_cancels_the_run(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    assistant = create_assistant(stub.client(), tools, model="gpt-4o")
    stub.script(stub.tool_call(DEMO, {"query": "sso"}))
    clock = Clock()

    with iter_assistant(
        stub.client(),
        tools,
        assistant_id=assistant.id,
        message="hi",
        sleep=clock.sleep,
        clock=clock,
    ) as events:
        for event in events:
            if event.type == "tool_call":
                break

    with pytest.raises(RuntimeError):
        _ = events.result

    assert latest_run_status(stub) == "cancelled"
    assert len(stub.requests_to("/v1/threads/*/runs/*/cancel", "POST")) == 1


async def test_closing_an_async_assistant_stream_early_cancels_the_run(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    assistant = create_assistant(stub.client(), tools, model="gpt-4o")
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("never", polls=1000))
    clock = Clock()

    stream = aiter_assistant(
        stub.async_client(),
        tools,
        assistant_id=assistant.id,
        message="hi",
        sleep=clock.asleep,
        clock=clock,
    )
    async with stream:
        async for event in stream:
            if event.type == "tool_result":
                break

    assert latest_run_status(stub) == "cancelled"
    assert stub.requests_to("/v1/threads/*/runs/*/submit_tool_outputs", "POST") == []


# --- no secrets -------------------------------------------------------------------------


def test_events_carry_no_secrets(stub: StubOpenAI, tools: MixpeekTools, fake: FakeMixpeek) -> None:
    stub.script(
        stub.tool_call(DEMO, {"query": "sso"}),
        stub.text("a"),
        stub.tool_call(DEMO, "{not json"),
        stub.text("b"),
    )
    events: list[Any] = []
    list(iter_chat(stub.client(), tools, model="gpt-4o", messages=USER, on_event=events.append))
    list(iter_responses(stub.client(), tools, model="gpt-4o", input="sso", on_event=events.append))

    dumped = json.dumps([e.to_dict() for e in events]) + repr(events)
    for secret in ("sk-stub", fake.api_key, "Bearer", "authorization"):
        assert secret not in dumped
