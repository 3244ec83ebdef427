"""run_responses / arun_responses against StubOpenAI + FakeMixpeek through the real clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mixpeek_openai.errors import (
    ConfigurationError,
    ContentFilteredError,
    MaxTurnsExceededError,
    OutputTruncatedError,
)
from mixpeek_openai.events import Event, ToolCallDeltaEvent, Usage
from mixpeek_openai.responses import ResponsesResult, arun_responses, run_responses
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
CATALOG = "search_catalog"
QUESTION = "How do I set up SSO?"


@pytest.fixture(params=["sync", "async"])
def respond(request: pytest.FixtureRequest, stub: StubOpenAI, tools: MixpeekTools) -> Any:
    """Run the Responses loop with the sync or the async client."""

    def run(**kwargs: Any) -> ResponsesResult:
        kwargs.setdefault("model", "gpt-4o")
        if request.param == "sync":
            return run_responses(stub.client(), tools, **kwargs)
        return asyncio.run(arun_responses(stub.async_client(), tools, **kwargs))

    return run


def bodies(stub: StubOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in stub.requests_to("/v1/responses", "POST")]


def parallel_script(stub: StubOpenAI) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, {"query": "sso setup"}, call_id="call_1"),
                stub.call(CATALOG, {"query": "sso"}, call_id="call_2"),
            ],
            usage=(100, 20),
        ),
        stub.tool_call(DEMO, {"query": "sso audit"}, call_id="call_3", usage=(200, 10)),
        stub.text("Open Settings, then SSO.", usage=(300, 8)),
    )


def test_multi_turn_parallel_calls_chained_by_previous_response_id(
    respond: Any, stub: StubOpenAI
) -> None:
    parallel_script(stub)

    result = respond(input=QUESTION, instructions="Be brief.")

    assert result.content == result.output_text == "Open Settings, then SSO."
    assert result.turns == 3
    assert result.usage == Usage(600, 38, 638, 3)
    assert [c.call_id for c in result.calls] == ["call_1", "call_2", "call_3"]
    assert all(c.ok for c in result.calls)
    assert result.response.id == result.response_ids[-1]
    sent = bodies(stub)
    assert len(sent) == 3
    assert sent[0]["input"] == QUESTION
    assert "previous_response_id" not in sent[0]
    # Later turns send only the new outputs, chained to the previous response.
    assert sent[1]["previous_response_id"] == result.response_ids[0]
    assert [(i["type"], i["call_id"]) for i in sent[1]["input"]] == [
        ("function_call_output", "call_1"),
        ("function_call_output", "call_2"),
    ]
    assert sent[2]["previous_response_id"] == result.response_ids[1]
    assert all(b["instructions"] == "Be brief." for b in sent)
    assert [t["name"] for t in sent[0]["tools"]] == [DEMO, CATALOG]
    # The replayable items cover the whole exchange.
    kinds = [(i.get("type", "message"), i.get("call_id")) for i in result.items]
    assert kinds == [
        ("message", None),
        ("function_call", "call_1"),
        ("function_call", "call_2"),
        ("function_call_output", "call_1"),
        ("function_call_output", "call_2"),
        ("function_call", "call_3"),
        ("function_call_output", "call_3"),
        ("message", None),
    ]


def test_replay_mode_is_stateless(respond: Any, stub: StubOpenAI) -> None:
    parallel_script(stub)

    result = respond(input=QUESTION, chain="replay", store=False)

    sent = bodies(stub)
    assert all("previous_response_id" not in b for b in sent)
    assert all(b["store"] is False for b in sent)
    assert len(sent[1]["input"]) == 5  # user message, 2 calls, 2 outputs
    assert sent[2]["input"] == result.items[:7]
    assert result.content == "Open Settings, then SSO."


def test_replayed_items_continue_the_conversation(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("First."))
    first = respond(input=QUESTION, chain="replay", store=False)

    stub.script(stub.tool_call(CATALOG, {"query": "sso"}), stub.text("Second."))
    follow_up = [*first.items, {"role": "user", "content": "And the catalog?"}]
    second = respond(input=follow_up, chain="replay", store=False)

    assert second.content == "Second."
    assert second.items[: len(follow_up)] == follow_up
    assert bodies(stub)[2]["input"] == follow_up


def test_previous_response_id_continues_a_stored_chain(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.text("First."))
    first = respond(input=QUESTION)
    stub.script(stub.text("Second."))

    second = respond(input="And then?", previous_response_id=first.response_ids[-1])

    assert second.content == "Second."
    assert bodies(stub)[1]["previous_response_id"] == first.response_ids[-1]


def test_conversation_holds_the_state(respond: Any, stub: StubOpenAI) -> None:
    parallel_script(stub)

    result = respond(input=QUESTION, conversation=True)

    assert result.conversation_id is not None
    assert len(stub.requests_to("/v1/conversations", "POST")) == 1
    sent = bodies(stub)
    assert all(b["conversation"] == result.conversation_id for b in sent)
    assert all("previous_response_id" not in b for b in sent)
    assert [i["call_id"] for i in sent[1]["input"]] == ["call_1", "call_2"]
    stored = stub.conversation_items(result.conversation_id)
    assert [i["type"] for i in stored].count("function_call_output") == 3

    # An existing conversation id is used as is.
    stub.script(stub.text("Again."))
    again = respond(input="More?", conversation=result.conversation_id)
    assert again.content == "Again."
    assert len(stub.requests_to("/v1/conversations", "POST")) == 1


def test_streaming_emits_text_deltas(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Use the SSO page in Settings."))
    events: list[Event] = []

    result = respond(input=QUESTION, stream=True, on_event=events.append)

    assert result.content == "Use the SSO page in Settings."
    deltas = [e for e in events if e.type == "message"]
    assert len(deltas) > 2 and all(e.delta for e in deltas)
    assert "".join(e.text for e in deltas) == result.content
    kinds = [e.type for e in events if e.type != "tool_call_delta"]
    assert kinds[:4] == ["thinking", "tool_call", "tool_result", "thinking"]
    assert events[-1].type == "done"
    assert all(b["stream"] is True for b in bodies(stub))
    assert result.usage.requests == 2 and result.usage.total_tokens > 0


def test_streaming_reports_function_call_arguments_as_they_are_written(
    respond: Any, stub: StubOpenAI
) -> None:
    args = {"query": "single sign-on for enterprise accounts"}
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, args, call_id="call_1"),
                stub.call(CATALOG, {"query": "sso"}, call_id="call_2"),
            ]
        ),
        stub.text("Done."),
    )
    events: list[Event] = []

    result = respond(input=QUESTION, stream=True, on_event=events.append)

    assert result.content == "Done."
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert {(d.call_id, d.name) for d in deltas} == {("call_1", DEMO), ("call_2", CATALOG)}
    first = "".join(d.delta for d in deltas if d.call_id == "call_1")
    assert json.loads(first) == args
    last_delta = max(i for i, e in enumerate(events) if isinstance(e, ToolCallDeltaEvent))
    first_call = min(i for i, e in enumerate(events) if e.type == "tool_call")
    assert last_delta < first_call


@pytest.mark.parametrize("chain", [{}, {"chain": "replay", "store": False}])
def test_streaming_with_a_reasoning_model(
    respond: Any, stub: StubOpenAI, chain: dict[str, Any]
) -> None:
    # A reasoning model's output starts with a reasoning item, streamed as its own item.
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="call_1"), stub.text("Done."))
    events: list[Event] = []

    result = respond(model="o4-mini", input=QUESTION, stream=True, on_event=events.append, **chain)

    assert result.content == "Done."
    assert [c.call_id for c in result.calls] == ["call_1"] and result.calls[0].ok
    assert [i.type for i in result.response.output] == ["reasoning", "message"]
    if chain:
        replayed = [i for i in bodies(stub)[1]["input"] if i.get("type") == "reasoning"]
        assert len(replayed) == 1 and replayed[0]["encrypted_content"].startswith("enc_")
    assert events[-1].type == "done"


def test_usage_sums_cached_and_reasoning_tokens(respond: Any, stub: StubOpenAI) -> None:
    stub.report_usage_details(cached_tokens=50, reasoning_tokens=3)
    parallel_script(stub)

    result = respond(input=QUESTION)

    assert result.usage == Usage(600, 38, 638, 3, cached_tokens=150, reasoning_tokens=9)


def test_stateless_replay_sends_reasoning_back_encrypted(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="call_1"), stub.text("Done."))
    # A reasoning item from an earlier exchange without encrypted content cannot be sent
    # unstored (the API cannot find it); the loop leaves it out rather than fail.
    stale = {"type": "reasoning", "id": "rs_old", "summary": []}

    result = respond(
        model="o4-mini",
        input=[{"role": "user", "content": QUESTION}, stale],
        chain="replay",
        store=False,
        include=["message.output_text.logprobs"],
    )

    assert result.content == "Done."
    sent = bodies(stub)
    assert all(
        b["include"] == ["message.output_text.logprobs", "reasoning.encrypted_content"]
        for b in sent
    )
    assert all(i.get("id") != "rs_old" for b in sent for i in b["input"])
    replayed = [i for i in sent[1]["input"] if i.get("type") == "reasoning"]
    assert len(replayed) == 1 and replayed[0]["encrypted_content"].startswith("enc_")
    assert replayed[0]["id"].startswith("rs_") and "status" not in replayed[0]
    # The reasoning item sits before the call it led to, as the model produced them.
    kinds = [i.get("type") for i in sent[1]["input"]]
    assert kinds[kinds.index("reasoning") + 1] == "function_call"
    # The items of the result continue the exchange statelessly too.
    stub.script(stub.text("Again."))
    again = respond(
        model="o4-mini",
        input=[*result.items, {"role": "user", "content": "More?"}],
        chain="replay",
        store=False,
    )
    assert again.content == "Again."


def test_reasoning_is_not_requested_when_not_needed(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("A."))
    respond(model="gpt-4o", input=QUESTION, chain="replay", store=False)
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("B."))
    stored = respond(model="o3", input=QUESTION, chain="replay")

    assert all("include" not in b for b in bodies(stub))
    # Stored reasoning items are found by id, so they are replayed without encryption.
    assert any(i.get("type") == "reasoning" for i in bodies(stub)[-1]["input"])
    assert stored.content == "B."


def test_replayed_assistant_messages_are_plain_input_messages(
    respond: Any, stub: StubOpenAI
) -> None:
    stub.script(
        stub.tool_calls([stub.call(DEMO, {"query": "sso"})], text="Looking."), stub.text("Done.")
    )

    result = respond(input=QUESTION, chain="replay", store=False)

    messages = [i for i in result.items if i.get("role") == "assistant"]
    assert messages == [
        {"role": "assistant", "content": "Looking."},
        {"role": "assistant", "content": "Done."},
    ]
    assert all("id" not in i and "status" not in i for i in result.items)


def test_events_sequence(respond: Any, stub: StubOpenAI) -> None:
    parallel_script(stub)
    events: list[Event] = []

    result = respond(input=QUESTION, on_event=events.append)

    assert [(e.type, e.turn) for e in events] == [
        ("thinking", 1),
        ("tool_call", 1),
        ("tool_call", 1),
        ("tool_result", 1),
        ("tool_result", 1),
        ("thinking", 2),
        ("tool_call", 2),
        ("tool_result", 2),
        ("thinking", 3),
        ("message", 3),
        ("done", 3),
    ]
    assert events == result.events
    assert [getattr(e, "call_id", None) for e in events if e.type == "tool_result"] == [
        "call_1",
        "call_2",
        "call_3",
    ]


def test_max_turns_raise_and_answer(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "a"}), stub.tool_call(DEMO, {"query": "b"}))
    with pytest.raises(MaxTurnsExceededError) as info:
        respond(input=QUESTION, max_turns=2)
    assert info.value.turns == 2 and len(info.value.calls) == 2
    assert info.value.items is not None
    assert info.value.items[-1]["type"] == "function_call_output"

    stub.clear_script()
    stub.script(stub.tool_call(DEMO, {"query": "a"}), stub.text("Forced."))
    result = respond(input=QUESTION, max_turns=2, on_max_turns="answer")
    assert result.content == "Forced."
    assert bodies(stub)[-1]["tool_choice"] == "none"


def test_truncated_response_raises_with_usage(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.truncated("Partial", usage=(40, 512)))
    with pytest.raises(OutputTruncatedError) as info:
        respond(input=QUESTION, max_output_tokens=512)
    assert info.value.usage == Usage(40, 512, 552, 1)
    assert info.value.partial.status == "incomplete"


def test_content_filter_raises_with_usage(respond: Any, stub: StubOpenAI) -> None:
    stub.script(stub.content_filtered(usage=(30, 0)))
    with pytest.raises(ContentFilteredError) as info:
        respond(input=QUESTION, stream=True)
    assert info.value.usage == Usage(30, 0, 30, 1)


def test_configuration_mistakes(stub: StubOpenAI, tools: MixpeekTools) -> None:
    client = stub.client()
    with pytest.raises(ConfigurationError, match="replay"):
        run_responses(client, tools, model="gpt-4o", input="x", store=False)
    with pytest.raises(ConfigurationError, match="Conversation"):
        run_responses(client, tools, model="gpt-4o", input="x", chain="replay", conversation=True)
    with pytest.raises(ConfigurationError, match="chain"):
        run_responses(client, tools, model="gpt-4o", input="x", chain="bogus")  # type: ignore[arg-type]
    assert stub.requests == []
