"""run_responses(background=True): polling, cancelling and endings, sync and async.

The loop's clock and sleep are fakes (a sleep only moves the clock), so nothing waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mixpeek_openai import responses
from mixpeek_openai.errors import (
    ConfigurationError,
    LoopError,
    OutputTruncatedError,
    ResponseDeadlineExceededError,
    ResponseFailedError,
)
from mixpeek_openai.responses import ResponsesResult, arun_responses, run_responses
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"


class FakeClock:
    """A monotonic clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture(params=["sync", "async"])
def respond(request: pytest.FixtureRequest, tools: MixpeekTools) -> Any:
    def run(stub: StubOpenAI, clock: FakeClock, **kwargs: Any) -> ResponsesResult:
        kwargs.setdefault("model", "gpt-4o")
        kwargs.setdefault("input", "How do I set up SSO?")
        kwargs.setdefault("background", True)
        kwargs["clock"] = clock
        if request.param == "sync":
            return run_responses(stub.client(), tools, sleep=clock.sleep, **kwargs)
        return asyncio.run(arun_responses(stub.async_client(), tools, sleep=clock.asleep, **kwargs))

    return run


def polls(stub: StubOpenAI) -> list[str]:
    return [r.path for r in stub.requests_to("/v1/responses/*", "GET")]


def cancels(stub: StubOpenAI) -> list[str]:
    return [r.path for r in stub.requests_to("/v1/responses/*/cancel", "POST")]


def test_polls_until_done_and_dispatches_function_calls(respond: Any) -> None:
    stub = StubOpenAI(background_polls=3)
    clock = FakeClock()
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Open Settings."))

    result = respond(stub, clock, poll_interval_s=0.5)

    assert result.content == "Open Settings."
    assert [c.name for c in result.calls] == [DEMO] and result.calls[0].ok
    created = [r.body for r in stub.requests_to("/v1/responses", "POST")]
    assert len(created) == 2 and all(b["background"] is True for b in created)
    # Each response: 3 polls still running, the 4th sees it done; one sleep before each.
    assert len(polls(stub)) == 8
    assert clock.sleeps == [0.5] * 8
    assert result.response.status == "completed"
    assert result.usage.requests == 2 and result.usage.total_tokens > 0
    assert cancels(stub) == []


def test_cancels_on_the_deadline(respond: Any) -> None:
    stub = StubOpenAI(background_polls=1000)
    clock = FakeClock()

    with pytest.raises(ResponseDeadlineExceededError) as info:
        respond(stub, clock, poll_interval_s=0.5, deadline_s=2.0)

    assert info.value.response.status == "cancelled"
    assert len(cancels(stub)) == 1
    assert sum(clock.sleeps) == pytest.approx(2.0)  # never slept past the deadline
    assert "2 s" in str(info.value) and "deadline_s" in str(info.value)
    assert isinstance(info.value, ResponseFailedError)


def test_deadline_covers_the_whole_exchange(respond: Any) -> None:
    stub = StubOpenAI(background_polls=2)
    clock = FakeClock()
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("Late."))

    with pytest.raises(ResponseDeadlineExceededError) as info:
        respond(stub, clock, poll_interval_s=1.0, deadline_s=4.5)

    # The first response took 3 s; the second was cancelled when 4.5 s had passed.
    assert info.value.turns == 2 and len(info.value.calls) == 1
    assert len(cancels(stub)) == 1


@pytest.mark.parametrize(
    ("turn", "error"),
    [
        (StubOpenAI.run_failed("The model broke.", code="server_error"), ResponseFailedError),
        (StubOpenAI.run_cancelled(), ResponseFailedError),
        (StubOpenAI.truncated("Half"), OutputTruncatedError),
    ],
)
def test_terminal_failures_raise_the_loop_errors(
    respond: Any, turn: Any, error: type[Exception]
) -> None:
    stub = StubOpenAI(background_polls=2)
    stub.script(turn)

    with pytest.raises(error) as info:
        respond(stub, FakeClock(), poll_interval_s=0.1)

    assert not isinstance(info.value, ResponseDeadlineExceededError)
    assert cancels(stub) == []  # it had ended on its own
    assert len(polls(stub)) == 3


def test_keyboard_interrupt_while_waiting_cancels_the_response(tools: MixpeekTools) -> None:
    stub = StubOpenAI(background_polls=1000)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_responses(
            stub.client(),
            tools,
            model="gpt-4o",
            input="x",
            background=True,
            poll_interval_s=0.2,
            sleep=sleep,
            clock=clock,
        )

    assert len(cancels(stub)) == 1
    response_id = cancels(stub)[0].split("/")[3]
    assert stub.client().responses.retrieve(response_id).status == "cancelled"


def test_a_raising_callback_cancels_the_response(tools: MixpeekTools) -> None:
    stub = StubOpenAI(background_polls=1000)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    def on_event(event: Any) -> None:
        raise RuntimeError("UI went away")

    stub.script(stub.text("never seen"))
    with pytest.raises(RuntimeError, match="UI went away"):
        run_responses(
            stub.client(),
            tools,
            model="gpt-4o",
            input="x",
            background=True,
            sleep=sleep,
            clock=clock,
            on_event=on_event,
        )
    # The callback failed on the first event, before anything was created: nothing to cancel.
    assert stub.requests_to("/v1/responses", "POST") == [] and cancels(stub) == []


async def test_task_cancellation_cancels_the_response(tools: MixpeekTools) -> None:
    stub = StubOpenAI(background_polls=1000)
    clock = FakeClock()
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) >= 2:
            waiting.set()
            await asyncio.Event().wait()  # parked until the task is cancelled

    task = asyncio.ensure_future(
        arun_responses(
            stub.async_client(),
            tools,
            model="gpt-4o",
            input="x",
            background=True,
            poll_interval_s=0.3,
            sleep=sleep,
            clock=clock,
        )
    )
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(cancels(stub)) == 1
    assert len(polls(stub)) == 1


def test_configuration_mistakes(stub: StubOpenAI, tools: MixpeekTools) -> None:
    client = stub.client()
    with pytest.raises(ConfigurationError, match="stream"):
        run_responses(client, tools, model="gpt-4o", input="x", background=True, stream=True)
    with pytest.raises(ConfigurationError, match="store"):
        run_responses(
            client, tools, model="gpt-4o", input="x", background=True, store=False, chain="replay"
        )
    with pytest.raises(ConfigurationError, match="deadline_s"):
        run_responses(client, tools, model="gpt-4o", input="x", background=True, deadline_s=0)
    with pytest.raises(ConfigurationError, match="poll_interval_s"):
        run_responses(client, tools, model="gpt-4o", input="x", background=True, poll_interval_s=-1)
    assert stub.requests == []


def test_the_deadline_error_is_a_typed_loop_error_where_the_others_are() -> None:
    assert issubclass(ResponseDeadlineExceededError, ResponseFailedError)
    assert issubclass(ResponseDeadlineExceededError, LoopError)
    # Still importable from where it was first defined.
    assert responses.ResponseDeadlineExceededError is ResponseDeadlineExceededError
