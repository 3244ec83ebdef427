"""The fault matrix: every fault FakeMixpeek can inject, crossed with every loop.

Each cell runs one user turn in which the model makes two parallel tool calls while the
Mixpeek API misbehaves. In every cell: the conversation goes on with a useful tool output
(the next model request carries one output per call id, in call order); the server saw
exactly the attempts the one retry layer reports; each call stayed within its deadline;
and no thread, connection or asyncio task was left behind.

Retries wait on a manual clock, so a ``Retry-After: 1`` costs no real time; only the
read-timeout cell uses the real clock (with a sub-second deadline).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

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

from mixpeek_openai import DispatchConfig, MixpeekTools, RetryPolicy
from mixpeek_openai.results import estimate_tokens
from mixpeek_openai.retries import ManualClock
from mixpeek_openai.testing import FakeMixpeek, Fault, StubOpenAI

MANUAL_DEADLINE_S = 5.0
REAL_DEADLINE_S = 0.6
BUDGET = 800


@dataclass(frozen=True)
class Cell:
    """One fault and what the model should be told about the call it hit."""

    fault: Fault
    times: int | None = 1
    expect: str = "ok"
    """``ok`` (retried or harmless), or the error ``type`` the model sees."""
    kind: str | None = None
    """The ``CallError.kind`` recorded on the failed call."""
    real_clock: bool = False


CELLS = {
    "429-retry-after": Cell(Fault.status(429, retry_after=1)),
    "429-no-retry-after": Cell(Fault.status(429)),
    "503-storm": Cell(Fault.status(503), None, "temporarily_unavailable", kind="deadline_exceeded"),
    "500": Cell(Fault.status(500)),
    "502": Cell(Fault.status(502)),
    "504": Cell(Fault.status(504)),
    "reset": Cell(Fault.reset()),
    "read-timeout": Cell(
        Fault.hang(30), 1, "temporarily_unavailable", kind="deadline_exceeded", real_clock=True
    ),
    "malformed-json": Cell(
        Fault.malformed_json(), 1, "temporarily_unavailable", kind="invalid_response"
    ),
    "empty-body": Cell(Fault.empty_body(), 1, "temporarily_unavailable", kind="invalid_response"),
    "10mb-body": Cell(Fault.huge_body(10_000_000)),
    "status-failed": Cell(Fault.failed_execution(), 1, "execution_failed", kind="execution_failed"),
    "degraded": Cell(Fault.degraded_execution()),
    "401": Cell(Fault.status(401), 1, "not_authorized", kind="http_error"),
    "403": Cell(Fault.status(403), 1, "not_authorized", kind="http_error"),
    "404": Cell(Fault.status(404), 1, "not_found", kind="http_error"),
    "422": Cell(Fault.status(422, message="inputs.query: too short"), 1, "invalid_request"),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as server:
        yield server


@pytest.fixture(scope="module")
def stub() -> StubOpenAI:
    return StubOpenAI()


def _tools(fake: FakeMixpeek, retry: RetryPolicy, deadline_s: float) -> MixpeekTools:
    config = DispatchConfig(
        retry=retry,
        deadline_s=deadline_s,
        output_budget_tokens=BUDGET,
        token_counter=estimate_tokens,
    )
    return MixpeekTools.from_retrievers(
        fake.client(), ["ret_product_demos", "ret_catalog"], config=config
    )


@pytest.fixture(scope="module")
def runners(fake: FakeMixpeek, stub: StubOpenAI) -> dict[bool, LoopRunner]:
    """One runner on the manual clock, one on the real clock (for the read timeout)."""
    clock = ManualClock()
    manual = _tools(
        fake,
        RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0, max_attempts=50),
        MANUAL_DEADLINE_S,
    )
    real = _tools(fake, RetryPolicy(jitter=0), REAL_DEADLINE_S)
    return {False: LoopRunner(stub, manual), True: LoopRunner(stub, real)}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", list(CELLS))
def test_fault_matrix(
    name: str,
    loop: str,
    fake: FakeMixpeek,
    stub: StubOpenAI,
    runners: dict[bool, LoopRunner],
) -> None:
    cell = CELLS[name]
    runner = runners[cell.real_clock]
    deadline_s = REAL_DEADLINE_S if cell.real_clock else MANUAL_DEADLINE_S
    runner.assistant_id()  # set up outside the measured cell
    settle(fake)
    fake.clear_faults()
    fake.clear_requests()
    stub.clear_script()
    ids = [f"call_{name}_{loop}_a", f"call_{name}_{loop}_b"]
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, {"query": "sso setup"}, call_id=ids[0]),
                stub.call(CATALOG, {"query": "dashboards"}, call_id=ids[1]),
            ]
        ),
        stub.text("done"),
    )
    fake.inject("execute", cell.fault, times=cell.times)
    baseline = thread_baseline()

    started = time.monotonic()
    outcome = runner.run(loop)
    elapsed = time.monotonic() - started

    # The conversation went on: the model answered after seeing one output per call.
    assert outcome.error is None, repr(outcome.error)
    assert outcome.result.content == "done"
    assert_answered_in_order(outcome, ids)
    # The deadline held for each call, and for the turn as a whole (a bound, not a benchmark).
    for call in outcome.calls:
        assert call.duration_s <= deadline_s + 0.05, (call.call_id, call.duration_s)
    assert elapsed <= deadline_s + 2.0
    # Each output says what happened; the failed call is recorded with its cause.
    if cell.expect == "ok":
        assert all(c.ok for c in outcome.calls), [c.error for c in outcome.calls]
    else:
        expected_failures = len(ids) if cell.times is None else 1
        hit = [c for c in outcome.calls if not c.ok]
        assert len(hit) == expected_failures, [c.error for c in outcome.calls]
        for call in hit:
            assert call.error is not None
            if cell.kind is not None:
                assert call.error.kind == cell.kind
            if cell.times is None:
                assert call.error.status == 503 and call.error.retryable
            if cell.expect == "execution_failed":
                assert json.loads(call.output)["status"] == "failed"
            else:
                assert json.loads(call.output)["error"]["type"] == cell.expect
    for call in outcome.calls:
        assert estimate_tokens(call.output) <= BUDGET
        if call.ok:
            assert "rows" in json.loads(call.output) or "documents" in json.loads(call.output)
    # One retry layer: the server saw exactly the attempts we report (no hidden retries).
    settle(fake)
    executes = fake.requests_for("execute")
    assert len(executes) == sum(c.attempts for c in outcome.calls)
    # Nothing left running.
    assert leftover_threads(baseline) == []
    assert outcome.leftover_tasks == 0
    fake.clear_faults()
