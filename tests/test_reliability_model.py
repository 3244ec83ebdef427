"""Faults on the model's side (StubOpenAI), through every loop.

Model mistakes become tool outputs that say what to fix and the conversation goes on;
API failures of OpenAI itself are retried by the openai client alone (never a second
layer of ours) and otherwise surface as the SDK's typed exceptions, unwrapped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from _reliability import (
    CATALOG,
    DEMO,
    LOOPS,
    LoopRunner,
    assert_answered_in_order,
    leftover_threads,
    settle,
    thread_baseline,
)

from mixpeek_openai import DispatchConfig, MixpeekTools
from mixpeek_openai.dispatch import CallEvent
from mixpeek_openai.errors import OutputTruncatedError, RunExpiredError, RunIncompleteError
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as server:
        yield server


@pytest.fixture(scope="module")
def tools(fake: FakeMixpeek) -> MixpeekTools:
    return MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos", "ret_catalog"])


@pytest.fixture
def stub() -> StubOpenAI:
    return StubOpenAI()


@pytest.fixture
def runner(stub: StubOpenAI, tools: MixpeekTools, fake: FakeMixpeek) -> Iterator[LoopRunner]:
    settle(fake)
    fake.clear_requests()
    baseline = thread_baseline()
    yield LoopRunner(stub, tools)
    settle(fake)
    assert leftover_threads(baseline) == []


def error_type(output: str) -> str:
    payload = json.loads(output)
    assert set(payload) == {"error"}, output
    return str(payload["error"]["type"])


def model_requests(stub: StubOpenAI, loop: str) -> int:
    if loop.startswith("chat"):
        return len(stub.requests_to("/v1/chat/completions", "POST"))
    if loop.startswith("responses"):
        return len(stub.requests_to("/v1/responses", "POST"))
    return len(stub.requests_to("/v1/threads/*/runs", "POST"))


@pytest.mark.parametrize("loop", LOOPS)
def test_model_mistakes_become_outputs_and_the_conversation_goes_on(
    loop: str, runner: LoopRunner, stub: StubOpenAI, fake: FakeMixpeek
) -> None:
    mistakes: list[tuple[str, Any, str, str]] = [
        ("bad_json", '{"query": "sso', DEMO, "invalid_arguments"),
        ("not_object", '["sso", 1]', DEMO, "invalid_arguments"),
        ("json_string", '"sso"', DEMO, "invalid_arguments"),
        ("unknown", {"query": "sso"}, "delete_all_documents", "unknown_tool"),
        ("missing", {"category": "crm"}, DEMO, "invalid_arguments"),
        ("extra", {"query": "sso", "drop_table": True}, DEMO, "invalid_arguments"),
        ("types", {"query": ["a"], "top_k": "ten", "include_transcript": "maybe"}, DEMO, ""),
        ("one_mb", {"query": "x" * 1_000_000}, CATALOG, "arguments_too_large"),
        ("valid", {"query": "sso setup"}, DEMO, ""),
    ]
    stub.script(
        stub.tool_calls([stub.call(name, args, call_id=cid) for cid, args, name, _ in mistakes]),
        stub.text("done"),
    )

    outcome = runner.run(loop)

    assert outcome.error is None, repr(outcome.error)
    assert outcome.result.content == "done"
    assert_answered_in_order(outcome, [m[0] for m in mistakes])
    by_id = {c.call_id: c for c in outcome.calls}
    for cid, _, _, expected in mistakes[:-1]:
        call = by_id[cid]
        assert call.error is not None and call.attempts == 0, cid
        assert error_type(call.output) == (expected or "invalid_arguments"), cid
        hint = json.loads(call.output)["error"].get("hint", "")
        assert hint, f"{cid}: the model is told what to fix"
    assert "query" in json.loads(by_id["types"].output)["error"]["message"]
    assert DEMO in json.loads(by_id["unknown"].output)["error"]["hint"]
    assert by_id["valid"].ok
    # Only the valid call reached Mixpeek.
    assert len(fake.requests_for("execute")) == 1
    # What went back to the model is small even though it sent 1 MB.
    assert all(len(out) < 2000 for cid, out in outcome.sent_outputs[0] if cid != "valid")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_repeated_call_id_is_answered_once(
    loop: str, runner: LoopRunner, stub: StubOpenAI, fake: FakeMixpeek
) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, {"query": "sso"}, call_id="dup"),
                stub.call(CATALOG, {"query": "crm"}, call_id="other"),
                stub.call(DEMO, {"query": "again"}, call_id="dup"),
            ]
        ),
        stub.text("done"),
    )

    outcome = runner.run(loop)

    # Before the fix the next request carried two answers for "dup" and the API refused it.
    assert outcome.error is None, repr(outcome.error)
    assert outcome.result.content == "done"
    assert [c.call_id for c in outcome.calls] == ["dup", "other", "dup"]
    assert outcome.calls[2].error is not None
    assert outcome.calls[2].error.kind == "duplicate_call"
    [sent] = outcome.sent_outputs
    assert [cid for cid, _ in sent] == ["dup", "other"]
    assert sent[0][1] == outcome.calls[0].output
    assert len(fake.requests_for("execute")) == 2
    if loop.startswith("chat"):
        [assistant] = [m for m in outcome.result.messages if m.get("tool_calls")]
        assert [c["id"] for c in assistant["tool_calls"]] == ["dup", "other"]


@pytest.mark.parametrize("loop", LOOPS)
def test_32_parallel_calls(
    loop: str, runner: LoopRunner, stub: StubOpenAI, fake: FakeMixpeek, tools: MixpeekTools
) -> None:
    ids = [f"call_{i:02d}" for i in range(32)]
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO if i % 2 else CATALOG, {"query": f"topic {i}"}, call_id=cid)
                for i, cid in enumerate(ids)
            ]
        ),
        stub.text("done"),
    )

    outcome = runner.run(loop)

    assert outcome.error is None, repr(outcome.error)
    assert_answered_in_order(outcome, ids)
    assert all(c.ok for c in outcome.calls)
    assert len(fake.requests_for("execute")) == 32
    assert fake.max_overlap("execute") <= tools.config.max_concurrency


@pytest.mark.parametrize("loop", LOOPS)
def test_output_limit_after_a_tool_round_is_a_typed_error(
    loop: str, runner: LoopRunner, stub: StubOpenAI
) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="c1"), stub.truncated("Open Se"))

    outcome = runner.run(loop)

    expected = RunIncompleteError if loop.startswith("assistants") else OutputTruncatedError
    assert isinstance(outcome.error, expected), repr(outcome.error)
    # The tool round is not lost: the records travel on the exception.
    assert [c.call_id for c in outcome.calls] == ["c1"] and outcome.calls[0].ok
    assert [cid for cid, _ in outcome.sent_outputs[0]] == ["c1"]
    if loop.startswith("chat"):
        assert isinstance(outcome.error, OutputTruncatedError)
        messages = outcome.error.messages or []
        assert [m["role"] for m in messages] == ["user", "assistant", "tool"]


def inject_openai_errors(stub: StubOpenAI, loop: str, status: int, times: int) -> None:
    if loop.startswith("assistants"):
        stub.inject_error(status, path="/v1/threads/*/runs", method="POST", times=times)
    else:
        stub.script(*[stub.error(status) for _ in range(times)])


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("loop", LOOPS)
def test_openai_retries_are_the_only_retry_layer(
    loop: str, status: int, stub: StubOpenAI, tools: MixpeekTools
) -> None:
    inject_openai_errors(stub, loop, status, times=2)
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="c1"), stub.text("done"))

    outcome = LoopRunner(stub, tools, max_retries=2).run(loop)

    assert outcome.error is None, repr(outcome.error)
    # Two failures, then the openai client's third attempt: 3 requests for the first
    # model call, 1 for the second (assistants: the run is created once it succeeds).
    first_call = 3
    later = 0 if loop.startswith("assistants") else 1
    assert model_requests(stub, loop) == first_call + later


@pytest.mark.parametrize("loop", LOOPS)
def test_an_openai_error_without_retries_is_raised_typed_and_unwrapped(
    loop: str, stub: StubOpenAI, tools: MixpeekTools
) -> None:
    inject_openai_errors(stub, loop, 500, times=1)

    outcome = LoopRunner(stub, tools, max_retries=0).run(loop)

    assert type(outcome.error) is openai.InternalServerError
    assert outcome.error.status_code == 500
    assert model_requests(stub, loop) == 1


@pytest.mark.parametrize("loop", ["assistants-sync", "assistants-async"])
def test_a_refused_submit_cancels_the_run(loop: str, stub: StubOpenAI, tools: MixpeekTools) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="c1"))
    stub.inject_error(500, path="/v1/threads/*/runs/*/submit_tool_outputs", method="POST")

    outcome = LoopRunner(stub, tools, max_retries=0).run(loop)

    assert type(outcome.error) is openai.InternalServerError
    # The thread is not left locked by a run nobody drives.
    assert len(stub.requests_to("/v1/threads/*/runs/*/cancel", "POST")) == 1
    [create] = stub.requests_to("/v1/threads/*/runs", "POST")
    assert create.status == 200


class _StubClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("loop", ["assistants-sync", "assistants-async"])
def test_a_run_expiring_while_its_tools_run(loop: str, fake: FakeMixpeek) -> None:
    """The run's TTL passes between ``requires_action`` and the submit."""
    clock = _StubClock()
    stub = StubOpenAI(run_ttl_s=60, clock=clock)

    def on_call_event(event: CallEvent) -> None:
        if event.kind == "started":
            stub.advance_clock(120)  # the tool took longer than the run may wait

    tools = MixpeekTools.from_retrievers(
        fake.client(), ["ret_product_demos"], config=DispatchConfig(on_call_event=on_call_event)
    )
    stub.script(stub.tool_call(DEMO, {"query": "sso"}, call_id="c1"))

    outcome = LoopRunner(stub, tools).run(loop)

    assert isinstance(outcome.error, RunExpiredError), repr(outcome.error)
    assert outcome.error.status == "expired"
    assert [c.call_id for c in outcome.calls] == ["c1"] and outcome.calls[0].ok
    assert stub.requests_to("/v1/threads/*/runs/*/cancel", "POST") == []
