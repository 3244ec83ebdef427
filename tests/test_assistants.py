"""run_assistant / arun_assistant against StubOpenAI + FakeMixpeek through the real clients.

No test sleeps: the runner's ``sleep`` and ``clock`` are a fake clock that only advances
when the runner "sleeps".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import openai
import pytest

from mixpeek_openai.assistants import (
    AssistantResult,
    acreate_assistant,
    arun_assistant,
    create_assistant,
    run_assistant,
)
from mixpeek_openai.errors import (
    ActiveRunError,
    ConfigurationError,
    RunCancelledError,
    RunDeadlineExceededError,
    RunExpiredError,
    RunFailedError,
    RunIncompleteError,
)
from mixpeek_openai.events import Event, Usage
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
CATALOG = "search_catalog"


class FakeClock:
    """A monotonic clock that moves only when the runner sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def stub() -> StubOpenAI:
    return StubOpenAI(poll_after_ms=250)


@pytest.fixture
def assistant_id(stub: StubOpenAI, tools: MixpeekTools) -> str:
    return create_assistant(stub.client(), tools, model="gpt-4o", name="Demo finder").id


class Runner:
    """Runs the assistant runner with the sync or the async client and a fake clock."""

    def __init__(self, mode: str, stub: StubOpenAI, tools: MixpeekTools, assistant_id: str):
        self.mode = mode
        self.stub = stub
        self.tools = tools
        self.assistant_id = assistant_id
        self.clock = FakeClock()

    def __call__(self, **kwargs: Any) -> AssistantResult:
        kwargs.setdefault("assistant_id", self.assistant_id)
        kwargs.setdefault("clock", self.clock)
        if self.mode == "sync":
            kwargs.setdefault("sleep", self.clock.sleep)
            return run_assistant(self.stub.client(), self.tools, **kwargs)
        kwargs.setdefault("sleep", self.clock.asleep)
        return asyncio.run(arun_assistant(self.stub.async_client(), self.tools, **kwargs))


@pytest.fixture(params=["sync", "async"])
def run(
    request: pytest.FixtureRequest, stub: StubOpenAI, tools: MixpeekTools, assistant_id: str
) -> Runner:
    return Runner(request.param, stub, tools, assistant_id)


def submissions(stub: StubOpenAI) -> list[dict[str, Any]]:
    return [r.body for r in stub.requests_to("/v1/threads/*/runs/*/submit_tool_outputs", "POST")]


def cancels(stub: StubOpenAI) -> int:
    return len(stub.requests_to("/v1/threads/*/runs/*/cancel", "POST"))


def two_tool_rounds(stub: StubOpenAI) -> None:
    stub.script(
        stub.tool_calls(
            [
                stub.call(DEMO, {"query": "sso setup"}, call_id="call_1"),
                stub.call(CATALOG, {"query": "sso"}, call_id="call_2"),
            ]
        ),
        stub.tool_call(DEMO, {"query": "sso audit"}, call_id="call_3"),
        stub.text("Open Settings, then SSO."),
    )


def deprecated_ok(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the SDK's deprecated Assistants API directly (test setup only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args, **kwargs)


# --- the happy paths --------------------------------------------------------------------


def test_requires_action_twice_with_parallel_calls(run: Runner, stub: StubOpenAI) -> None:
    two_tool_rounds(stub)

    result = run(message="How do I set up SSO?")

    assert result.content == "Open Settings, then SSO."
    assert result.run.status == "completed"
    assert result.turns == 3
    assert [c.call_id for c in result.calls] == ["call_1", "call_2", "call_3"]
    assert all(c.ok for c in result.calls)
    # All outputs of a requires_action go in ONE request.
    sent = submissions(stub)
    assert [[o["tool_call_id"] for o in s["tool_outputs"]] for s in sent] == [
        ["call_1", "call_2"],
        ["call_3"],
    ]
    assert sent[0]["tool_outputs"][0]["output"] == result.calls[0].output
    assert [m.role for m in result.messages] == ["assistant"]
    assert result.messages[0].run_id == result.run.id
    assert result.usage == Usage.from_api(result.run.usage)
    assert result.usage.total_tokens > 0
    # The thread was created with the user message.
    messages = stub.thread_messages(result.thread_id)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    # Polls waited what the openai-poll-after-ms header asked for.
    assert run.clock.sleeps and set(run.clock.sleeps) == {0.25}
    assert stub.poll_count(result.run.id) == len(run.clock.sleeps)


def test_continue_on_the_same_thread(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso"}), stub.text("First."))
    first = run(message="How do I set up SSO?")
    stub.script(stub.text("Second."))

    second = run(thread_id=first.thread_id, message="And audit logs?")

    assert second.thread_id == first.thread_id
    assert second.content == "Second."
    assert [m.run_id for m in second.messages] == [second.run.id]
    roles = [m["role"] for m in stub.thread_messages(first.thread_id)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_poll_interval_overrides_the_header(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.text("Done.", polls=3))
    run(message="hi", poll_interval_s=0.5)
    assert run.clock.sleeps == [0.5] * 5


def test_default_interval_without_header(tools: MixpeekTools, fake: FakeMixpeek) -> None:
    stub = StubOpenAI(poll_after_ms=None)
    runner = Runner("sync", stub, tools, create_assistant(stub.client(), tools, model="m").id)
    stub.script(stub.text("Done."))
    runner(message="hi")
    assert set(runner.clock.sleeps) == {1.0}


def test_streaming_makes_no_polls(run: Runner, stub: StubOpenAI) -> None:
    two_tool_rounds(stub)
    events: list[Event] = []

    result = run(message="How do I set up SSO?", stream=True, on_event=events.append)

    assert result.content == "Open Settings, then SSO."
    assert result.run.status == "completed"
    assert [c.call_id for c in result.calls] == ["call_1", "call_2", "call_3"]
    assert stub.poll_count() == 0
    assert stub.requests_to("/v1/threads/*/messages", "GET") == []
    assert run.clock.sleeps == []
    sent = submissions(stub)
    assert len(sent) == 2 and all(s["stream"] is True for s in sent)
    deltas = [e for e in events if e.type == "message"]
    assert len(deltas) > 1 and all(e.delta for e in deltas)
    assert "".join(e.text for e in deltas) == result.content
    assert result.usage.total_tokens > 0


def test_events_sequence(run: Runner, stub: StubOpenAI) -> None:
    two_tool_rounds(stub)
    events: list[Event] = []

    result = run(message="hi", on_event=events.append)

    assert [(e.type, e.turn, getattr(e, "call_id", None)) for e in events] == [
        ("thinking", 1, None),
        ("tool_call", 1, "call_1"),
        ("tool_call", 1, "call_2"),
        ("tool_result", 1, "call_1"),
        ("tool_result", 1, "call_2"),
        ("thinking", 2, None),
        ("tool_call", 2, "call_3"),
        ("tool_result", 2, "call_3"),
        ("thinking", 3, None),
        ("message", 3, None),
        ("done", 3, None),
    ]
    assert events == result.events
    assert events[0].type == "thinking" and events[0].model == run.assistant_id
    done = events[-1]
    assert done.type == "done" and done.content == result.content and done.usage == result.usage


def test_run_kwargs_and_attach_tools(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.text("ok"))
    run(message="hi", instructions="Be brief.", attach_tools=True, metadata={"k": "v"})
    body = stub.requests_to("/v1/threads/*/runs", "POST")[0].body
    assert body["instructions"] == "Be brief."
    assert body["metadata"] == {"k": "v"}
    assert [t["function"]["name"] for t in body["tools"]] == [DEMO, CATALOG]


# --- every way a run can end badly ------------------------------------------------------


def test_failed_run_carries_last_error(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "x"}), stub.run_failed("Model overloaded."))

    with pytest.raises(RunFailedError) as info:
        run(message="hi")

    err = info.value
    assert type(err) is RunFailedError
    assert err.status == "failed"
    assert err.last_error.code == "server_error"
    assert err.last_error.message == "Model overloaded."
    assert err.run_id == err.run.id and err.thread_id
    assert len(err.calls) == 1
    assert "Model overloaded." in str(err)


@pytest.mark.parametrize("stream", [False, True])
def test_expired_mid_run(run: Runner, stub: StubOpenAI, stream: bool) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "x"}), stub.run_expired())

    with pytest.raises(RunExpiredError) as info:
        run(message="hi", stream=stream)

    assert info.value.status == "expired"
    assert isinstance(info.value, RunFailedError)
    assert cancels(stub) == 0


@pytest.mark.parametrize("stream", [False, True])
def test_expired_while_tools_run(run: Runner, stub: StubOpenAI, stream: bool) -> None:
    """The run expires waiting for tool outputs: the refused submit becomes RunExpiredError."""
    stub.script(stub.tool_call(DEMO, {"query": "x"}, call_id="call_x"))
    run_ids: list[str] = []

    def on_event(event: Event) -> None:
        if event.type == "tool_call" and not run_ids:
            run_ids.append(latest_run(stub))
            stub.expire_run(run_ids[0])

    with pytest.raises(RunExpiredError) as info:
        run(message="hi", stream=stream, on_event=on_event)

    assert info.value.run_id == run_ids[0]
    assert cancels(stub) == 0


def latest_run(stub: StubOpenAI) -> str:
    """Id of the run created last (from the run-create answer recorded by the stub)."""
    threads = {r.path.split("/")[3] for r in stub.requests_to("/v1/threads/*/runs", "POST")}
    thread_id = sorted(threads)[-1]
    page = deprecated_ok(stub.client().beta.threads.runs.list, thread_id=thread_id)
    return str(page.data[0].id)


def test_incomplete_run(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.run_incomplete("max_completion_tokens", text="Partial"))

    with pytest.raises(RunIncompleteError) as info:
        run(message="hi")

    assert info.value.status == "incomplete"
    assert info.value.incomplete_details.reason == "max_completion_tokens"
    assert info.value.usage.total_tokens > 0


def test_cancelled_elsewhere(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.run_cancelled())
    with pytest.raises(RunCancelledError) as info:
        run(message="hi")
    assert info.value.status == "cancelled"


@pytest.mark.parametrize("stream", [False, True])
def test_deadline_cancels_and_confirms(run: Runner, stub: StubOpenAI, stream: bool) -> None:
    if stream:
        # A streamed step answers at once: make the deadline pass while the tools run.
        stub.script(stub.tool_call(DEMO, {"query": "x"}), stub.text("late"))

        def slow_tools(event: Event) -> None:
            if event.type == "tool_result":
                run.clock.now += 10
    else:
        stub.script(stub.text("never", polls=1000))
        slow_tools = None  # type: ignore[assignment]

    with pytest.raises(RunDeadlineExceededError) as info:
        run(message="hi", deadline_s=3, poll_interval_s=1, stream=stream, on_event=slow_tools)

    err = info.value
    assert err.cancel_confirmed is True
    assert err.final_status == "cancelled"
    assert err.run_id is not None
    assert stub.run(err.run_id)["status"] == "cancelled"
    assert cancels(stub) == 1
    if not stream:
        assert sum(run.clock.sleeps[:3]) == 3  # polled until the deadline, then cancelled


def test_keyboard_interrupt_cancels_the_run(
    stub: StubOpenAI, tools: MixpeekTools, assistant_id: str
) -> None:
    stub.script(stub.text("never", polls=1000))
    clock = FakeClock()
    interrupted = False

    def sleep(seconds: float) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt
        clock.sleep(seconds)

    with pytest.raises(KeyboardInterrupt):
        run_assistant(
            stub.client(), tools, assistant_id=assistant_id, message="hi", sleep=sleep, clock=clock
        )

    (run_create,) = stub.requests_to("/v1/threads/*/runs", "POST")
    thread_id = run_create.path.split("/")[3]
    page = deprecated_ok(stub.client().beta.threads.runs.list, thread_id=thread_id)
    assert page.data[0].status == "cancelled"
    assert cancels(stub) == 1


def test_callback_error_cancels_the_run(run: Runner, stub: StubOpenAI) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "x"}))

    def boom(event: Event) -> None:
        if event.type == "tool_result":
            raise RuntimeError("ui crashed")

    with pytest.raises(RuntimeError, match="ui crashed"):
        run(message="hi", on_event=boom)

    assert cancels(stub) == 1
    assert submissions(stub) == []


async def test_task_cancellation_cancels_the_run(
    stub: StubOpenAI, tools: MixpeekTools, assistant_id: str
) -> None:
    stub.script(stub.text("never", polls=1000))
    clock = FakeClock()
    waiting = asyncio.Event()
    blocked = False

    async def sleep(seconds: float) -> None:
        nonlocal blocked
        if not blocked:
            blocked = True
            waiting.set()
            await asyncio.Event().wait()  # blocks until the task is cancelled
        clock.sleep(seconds)

    task = asyncio.create_task(
        arun_assistant(
            stub.async_client(),
            tools,
            assistant_id=assistant_id,
            message="hi",
            sleep=sleep,
            clock=clock,
        )
    )
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert cancels(stub) == 1
    (run_create,) = stub.requests_to("/v1/threads/*/runs", "POST")
    thread_id = run_create.path.split("/")[3]
    page = deprecated_ok(stub.client().beta.threads.runs.list, thread_id=thread_id)
    assert page.data[0].status == "cancelled"


# --- a thread that already has an active run -------------------------------------------


def foreign_run(stub: StubOpenAI, assistant_id: str) -> tuple[str, str]:
    client = stub.client()
    thread = deprecated_ok(client.beta.threads.create)
    created = deprecated_ok(
        client.beta.threads.runs.create, thread_id=thread.id, assistant_id=assistant_id
    )
    return thread.id, created.id


def test_active_run_wait(run: Runner, stub: StubOpenAI) -> None:
    thread_id, other = foreign_run(stub, run.assistant_id)
    stub.script(stub.text("Their answer."), stub.text("Our answer."))

    result = run(thread_id=thread_id, message="hi", if_active_run="wait")

    assert stub.run(other)["status"] == "completed"
    assert result.content == "Our answer."
    assert cancels(stub) == 0


def test_active_run_fail(run: Runner, stub: StubOpenAI) -> None:
    thread_id, other = foreign_run(stub, run.assistant_id)

    with pytest.raises(ActiveRunError) as info:
        run(thread_id=thread_id, message="hi", if_active_run="fail")

    assert info.value.run_id == other
    assert info.value.thread_id == thread_id
    assert stub.thread_messages(thread_id) == []  # nothing was added
    assert stub.run(other)["status"] == "queued"


def test_active_run_cancel(run: Runner, stub: StubOpenAI) -> None:
    thread_id, other = foreign_run(stub, run.assistant_id)
    stub.script(stub.text("Our answer."))

    result = run(thread_id=thread_id, message="hi", if_active_run="cancel")

    assert stub.run(other)["status"] == "cancelled"
    assert result.content == "Our answer."


def test_waiting_for_a_stuck_run_gives_up_at_the_deadline(run: Runner, stub: StubOpenAI) -> None:
    thread_id, other = foreign_run(stub, run.assistant_id)
    stub.script(stub.tool_call(DEMO, {"query": "x"}))  # their run waits for outputs forever

    with pytest.raises(ActiveRunError) as info:
        run(thread_id=thread_id, message="hi", deadline_s=5, poll_interval_s=1)

    assert info.value.status == "requires_action"
    assert stub.run(other)["status"] == "requires_action"  # never cancel a run we do not own
    assert cancels(stub) == 0


# --- deprecation warnings and configuration ---------------------------------------------


def test_no_deprecation_warning_escapes(run: Runner, stub: StubOpenAI) -> None:
    two_tool_rounds(stub)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(message="hi")
        streamed = run(thread_id=result.thread_id, message="again", stream=True)
    assert streamed.run.status == "completed"


def test_python_w_error_smoke() -> None:
    code = textwrap.dedent(
        """
        from mixpeek_openai.assistants import create_assistant, run_assistant
        from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
        from mixpeek_openai.tools import MixpeekTools

        with FakeMixpeek() as fake:
            tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"])
            stub = StubOpenAI()
            client = stub.client()
            asst = create_assistant(client, tools, model="gpt-4o")
            result = run_assistant(client, tools, assistant_id=asst.id, message="sso setup",
                                   sleep=lambda s: None)
            assert result.run.status == "completed", result.run.status
            result = run_assistant(client, tools, assistant_id=asst.id, message="more",
                                   thread_id=result.thread_id, stream=True)
            assert result.run.status == "completed", result.run.status
            print("ok", len(result.calls))
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_create_assistant_with_tools(stub: StubOpenAI, tools: MixpeekTools) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sync = create_assistant(
            stub.client(), tools, model="gpt-4o", name="n", instructions="Use the tools."
        )
        other = asyncio.run(acreate_assistant(stub.async_client(), tools, model="gpt-4o"))
    assert [t.function.name for t in sync.tools] == [DEMO, CATALOG]  # type: ignore[union-attr]
    assert sync.instructions == "Use the tools."
    assert other.id != sync.id


def test_configuration_mistakes(stub: StubOpenAI, tools: MixpeekTools) -> None:
    client = stub.client()
    with pytest.raises(ConfigurationError):
        run_assistant(client, tools, assistant_id="a", if_active_run="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        run_assistant(client, tools, assistant_id="a", deadline_s=0)
    with pytest.raises(ConfigurationError):
        run_assistant(client, tools, assistant_id="a", message={"role": "user"})
    assert stub.requests == []


def test_api_errors_propagate(run: Runner, stub: StubOpenAI) -> None:
    stub.inject_error(404, path="/v1/threads", method="POST")
    with pytest.raises(openai.NotFoundError):
        run(message="hi")
