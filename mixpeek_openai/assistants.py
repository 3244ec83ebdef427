"""The Assistants thread runner: ``run_assistant`` / ``arun_assistant`` and ``create_assistant``.

Drives one run on a thread to a terminal state:

* **polling** (default): after creating the run (and after each tool-output submission),
  wait, then ``GET`` the run; the wait is the ``openai-poll-after-ms`` header the API sends
  with each run (1 s when absent), or ``poll_interval_s`` when you set it.
* **streaming** (``stream=True``): the run and each tool-output submission are server-sent
  event streams; text arrives as ``message`` events and no ``GET`` polling happens at all.

On ``requires_action`` every pending call is executed at once and *all* outputs go back in
one ``submit_tool_outputs`` request. The whole run has a deadline (``deadline_s``). If the
deadline passes, or anything goes wrong on our side (an exception, ``KeyboardInterrupt``,
``asyncio.CancelledError``, an ``on_event`` callback raising, an event stream closed early),
the run is cancelled and the cancel is confirmed (polled until the run is terminal, for at
most ``cancel_timeout_s``) before the exception propagates, so the thread is not left
locked by a run nobody drives.

The SDK marks the Assistants API deprecated (in favour of the Responses API) and every
method warns when called. The runner calls the functions under those ``@deprecated``
wrappers, so it emits no ``DeprecationWarning`` and works under ``python -W error``,
without touching the process-wide warning filters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import pydantic
from typing_extensions import TypedDict, Unpack

from ._loop import (
    END,
    ApiCall,
    AsyncEventStream,
    CloseStream,
    Core,
    EventStream,
    HttpCall,
    NextItem,
    Now,
    OpenStream,
    Sleep,
    Trace,
    async_stream,
    first_per_call_id,
    run_tools,
    sync_stream,
)
from .errors import (
    ActiveRunError,
    ConfigurationError,
    LoopError,
    MalformedReplyError,
    RunCancelledError,
    RunDeadlineExceededError,
    RunExpiredError,
    RunFailedError,
    RunIncompleteError,
)
from .events import DoneEvent, Event, EventHandler, MessageEvent, ThinkingEvent, Usage
from .toolbox import ToolsArg, as_toolset, tools_for_api

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from openai.types.beta import Assistant
    from openai.types.beta.threads import Message, Run

    from .dispatch import ToolCallResult

__all__ = [
    "AssistantOptions",
    "AssistantResult",
    "AsyncAssistantOptions",
    "acreate_assistant",
    "aiter_assistant",
    "arun_assistant",
    "create_assistant",
    "iter_assistant",
    "run_assistant",
]

IfActiveRun = Literal["wait", "fail", "cancel"]

ACTIVE_STATUSES = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
_DEFAULT_POLL_S = 1.0
_MAX_HINTED_POLL_S = 10.0
"""Longest wait between polls a server's ``openai-poll-after-ms`` hint can ask for: a
bogus hint must not turn into a wait until the deadline."""
_RESERVED = frozenset({"thread_id", "assistant_id", "stream"})


class _AssistantOptions(TypedDict, total=False):
    thread_id: str | None
    message: str | Mapping[str, Any] | None
    stream: bool
    poll_interval_s: float | None
    deadline_s: float
    if_active_run: IfActiveRun
    cancel_timeout_s: float
    attach_tools: bool
    on_event: EventHandler | None
    clock: Callable[[], float] | None
    # passed through to beta.threads.runs.create
    include: list[str]
    additional_instructions: str | None
    additional_messages: list[Any] | None
    instructions: str | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    metadata: dict[str, str] | None
    model: str | None
    parallel_tool_calls: bool
    reasoning_effort: str | None
    response_format: Any
    temperature: float | None
    tool_choice: Any
    top_p: float | None
    truncation_strategy: Any
    extra_headers: dict[str, str] | None
    extra_query: dict[str, object] | None
    extra_body: object | None
    timeout: Any


class AssistantOptions(_AssistantOptions, total=False):
    """The options of ``run_assistant`` / ``iter_assistant`` (see :func:`run_assistant`).

    The loop's own options come first; every other key is passed to ``runs.create``, as
    the SDK takes it (parameters newer than this list go through ``extra_body``).
    """

    sleep: Callable[[float], None] | None


class AsyncAssistantOptions(_AssistantOptions, total=False):
    """The options of ``arun_assistant`` / ``aiter_assistant``: :class:`AssistantOptions`
    with an async ``sleep``."""

    sleep: Callable[[float], Awaitable[None]] | None


_LOOP_OPTIONS = frozenset(
    {
        "thread_id",
        "message",
        "stream",
        "poll_interval_s",
        "deadline_s",
        "if_active_run",
        "cancel_timeout_s",
        "attach_tools",
        "on_event",
        "sleep",
        "clock",
    }
)
_ERRORS: dict[str, type[RunFailedError]] = {
    "failed": RunFailedError,
    "expired": RunExpiredError,
    "cancelled": RunCancelledError,
    "incomplete": RunIncompleteError,
}


@dataclass
class AssistantResult:
    """What ``run_assistant`` returns."""

    content: str
    """The text of the assistant's reply messages of this run (joined by blank lines)."""

    messages: list[Message]
    """The assistant messages this run added to the thread, oldest first."""

    run: Run
    """The run in its final (``completed``) state."""

    calls: list[ToolCallResult]
    """One record per tool call made during the run, in order."""

    usage: Usage
    """The run's token usage (as reported on the completed run)."""

    thread_id: str
    """The thread (created when none was given); pass it again to continue."""

    turns: int
    """Model steps: 1 + the number of tool-output submissions."""

    events: list[Event] = field(default_factory=list)
    """Every event the runner emitted, in order."""


class _DeadlinePassed(Exception):
    """Internal: the run's deadline passed (turned into RunDeadlineExceededError)."""


@dataclass
class _Run:
    """Mutable state of the run being driven (shared by the sub-steps and the cleanup)."""

    thread_id: str
    assistant_id: str
    poll_interval_s: float | None
    deadline_at: float
    run: Any = None
    header_interval_s: float | None = None
    turn: int = 1
    messages: list[Any] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        return getattr(self.run, "id", None)

    @property
    def status(self) -> str | None:
        return getattr(self.run, "status", None)

    def interval(self) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        if self.header_interval_s is not None:
            return self.header_interval_s
        return _DEFAULT_POLL_S


def _read_raw(state: _Run, raw: Any) -> Any:
    """Parse a raw run response, remembering the server's suggested poll interval.

    A body that is not a run (a proxy's HTML page, a run without id or status) raises
    :class:`MalformedReplyError` and leaves the state as it was, so the cleanup still
    knows which run to cancel.
    """
    header = raw.headers.get("openai-poll-after-ms")
    if header is not None:
        with contextlib.suppress(ValueError):  # a malformed hint is just ignored
            state.header_interval_s = min(_MAX_HINTED_POLL_S, max(0.0, int(header) / 1000))
    try:
        run = _run_from(raw.json())
    except ValueError:
        run = None
    if run is None:
        raise MalformedReplyError(
            "The API answered with something that is not a run (no id or status); the run "
            "is cancelled.",
            partial=raw.text[:500],
            turns=state.turn,
        )
    return run


def _run_from(data: Any) -> Any:
    """``data`` as a ``Run``, or ``None`` when it is not one (no id or status)."""
    from openai.types.beta.threads import Run

    if not isinstance(data, dict) or not data.get("id") or not isinstance(data.get("status"), str):
        return None
    try:
        return Run.model_validate(data)
    except pydantic.ValidationError:
        return None


_BETA = {"OpenAI-Beta": "assistants=v2"}
"""The header the Assistants endpoints require (the SDK's methods add it themselves)."""

# Options of the SDK's methods that are not body fields.
_REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


def _http(path: str, kwargs: dict[str, Any], *, drop: tuple[str, ...] = ()) -> HttpCall:
    """A POST of ``kwargs`` (SDK method keyword arguments) to ``path``, read raw."""
    body = {k: v for k, v in kwargs.items() if k not in _REQUEST_OPTIONS and k not in drop}
    query = dict(kwargs.get("extra_query") or {})
    if "include" in body:  # a query parameter of runs.create
        query["include[]"] = body.pop("include")
    return HttpCall(
        "post",
        path,
        body={**body, **(kwargs.get("extra_body") or {})},
        headers={**_BETA, **(kwargs.get("extra_headers") or {})},
        query=query,
        timeout=kwargs.get("timeout"),
    )


def _run_path(thread_id: str, run_id: str | None = None, action: str = "") -> str:
    path = f"/threads/{quote(thread_id, safe='')}/runs"
    if run_id is not None:
        path += f"/{quote(run_id, safe='')}"
    return path + (f"/{action}" if action else "")


def _message_text(message: Any) -> str:
    parts = []
    for part in getattr(message, "content", None) or []:
        if getattr(part, "type", None) == "text":
            parts.append(part.text.value)
    return "".join(parts)


def _retrieve(thread_id: str, run_id: str) -> HttpCall:
    return HttpCall("get", _run_path(thread_id, run_id), headers=_BETA)


def _wait_until(state: _Run, run: Any, until: float, stop: frozenset[str]) -> Core[Any]:
    """Poll ``run`` (not necessarily ours) until its status is in ``stop`` or ``until`` passes.

    Returns the last run seen (check its status: it may still be outside ``stop``).
    """
    while run.status not in stop:
        now = yield Now()
        if now >= until:
            break
        yield Sleep(min(state.interval(), until - now))
        run = _read_raw(state, (yield _retrieve(state.thread_id, run.id)))
    return run


def _cancel_and_confirm(state: _Run, run: Any, timeout_s: float) -> Core[Any]:
    """Cancel ``run`` and poll until it is terminal (for at most ``timeout_s``).

    Returns the last run seen. A failing cancel request (e.g. the run just finished) is not
    an error: the polling tells what happened.
    """
    try:
        run = _read_raw(
            state,
            (yield HttpCall("post", _run_path(state.thread_id, run.id, "cancel"), headers=_BETA)),
        )
    except Exception:
        run = _read_raw(state, (yield _retrieve(state.thread_id, run.id)))
    now = yield Now()
    return (yield from _wait_until(state, run, now + timeout_s, TERMINAL_STATUSES))


def _submit_outputs(
    state: _Run, trace: Trace, calls: list[Any], stream: bool
) -> Core[list[ToolCallResult]]:
    """Execute the pending calls of a ``requires_action`` run and submit all outputs at once."""
    action = state.run.required_action
    submit = getattr(action, "submit_tool_outputs", None)
    pending = list(getattr(submit, "tool_calls", None) or [])
    if action is not None and (
        getattr(action, "type", None) != "submit_tool_outputs"
        or submit is None
        or not all(
            isinstance(getattr(c, "id", None), str)
            and c.id
            and getattr(c, "function", None) is not None
            for c in pending
        )
    ):
        raise MalformedReplyError(
            "The run requires an action this loop cannot take (not submit_tool_outputs, or "
            "a tool call without an id or function); the run is cancelled.",
            partial=action,
            calls=calls,
            turns=state.turn,
        )
    described = [(c.id, c.function.name, c.function.arguments) for c in pending]
    results = yield from run_tools(trace, state.turn, pending, described)
    calls.extend(results)
    now = yield Now()
    if now >= state.deadline_at:
        raise _DeadlinePassed
    kwargs: dict[str, Any] = {
        "thread_id": state.thread_id,
        "run_id": state.run_id,
        "tool_outputs": [
            {"tool_call_id": r.call_id, "output": r.output}
            for r in first_per_call_id(results, lambda r: r.call_id)
        ],
    }
    state.turn += 1
    yield trace.emit(ThinkingEvent(state.turn, state.assistant_id))
    try:
        if stream:
            kwargs["stream"] = True
            yield from _consume_stream(
                state,
                trace,
                ApiCall("beta.threads.runs.submit_tool_outputs", kwargs, undeprecated=True),
            )
        else:
            state.run = _read_raw(
                state,
                (
                    yield _http(
                        _run_path(state.thread_id, state.run_id, "submit_tool_outputs"),
                        kwargs,
                        drop=("thread_id", "run_id"),
                    )
                ),
            )
    except _DeadlinePassed:
        raise
    except Exception:
        # The run may have ended while the tools ran (typically: it expired waiting for
        # the outputs), and the API then refuses them. Report how the run ended rather
        # than the refusal.
        run = _read_raw(state, (yield _retrieve(state.thread_id, state.run_id or "")))
        if run.status not in TERMINAL_STATUSES:
            raise
        state.run = run
    return results


def _consume_stream(state: _Run, trace: Trace, call: ApiCall) -> Core[None]:
    """Read a run event stream until it ends, updating the run and collecting messages.

    The stream ends after ``thread.run.requires_action`` or a terminal run event.
    """
    handle = yield OpenStream(call)
    try:
        while True:
            event = yield NextItem(handle)
            if event is END:
                break
            kind = getattr(event, "event", "")
            data: Any = getattr(event, "data", None)
            if kind.startswith("thread.run.") and not kind.startswith("thread.run.step"):
                state.run = data
            elif kind == "thread.message.delta":
                for part in getattr(data.delta, "content", None) or []:
                    text = getattr(getattr(part, "text", None), "value", None)
                    if getattr(part, "type", None) == "text" and text:
                        yield trace.emit(MessageEvent(state.turn, text, delta=True))
            elif kind == "thread.message.completed":
                if getattr(data, "role", None) == "assistant":
                    state.messages.append(data)
            elif kind == "error":
                raise LoopError(
                    f"The run stream reported an error: {getattr(data, 'message', data)}"
                )
            now = yield Now()
            if now >= state.deadline_at and state.status not in TERMINAL_STATUSES:
                raise _DeadlinePassed
    finally:
        yield CloseStream(handle)


def _drive_polling(state: _Run, trace: Trace, calls: list[Any]) -> Core[None]:
    """Poll the run to a terminal state, answering each ``requires_action`` on the way."""
    while True:
        if state.status == "requires_action":
            yield from _submit_outputs(state, trace, calls, stream=False)
            continue
        if state.status in TERMINAL_STATUSES:
            return
        now = yield Now()
        if now >= state.deadline_at:
            raise _DeadlinePassed
        yield Sleep(min(state.interval(), state.deadline_at - now))
        state.run = _read_raw(state, (yield _retrieve(state.thread_id, state.run_id or "")))


def _drive_streaming(state: _Run, trace: Trace, calls: list[Any]) -> Core[None]:
    """Follow the run's event streams; fall back to polling only if a stream breaks off."""
    while state.status == "requires_action":
        yield from _submit_outputs(state, trace, calls, stream=True)
    if state.status not in TERMINAL_STATUSES and state.run_id is not None:
        # The stream ended without a terminal event (dropped connection): poll instead.
        yield from _drive_polling(state, trace, calls)


def _assistant_core(
    tools: ToolsArg, *, assistant_id: str, options: _AssistantOptions
) -> tuple[Any, Core[AssistantResult]]:
    """Check the arguments (mistakes raise here, at the call) and build the runner's core."""
    run_kwargs: dict[str, Any] = {k: v for k, v in options.items() if k not in _LOOP_OPTIONS}
    if_active_run = options.get("if_active_run", "wait")
    deadline_s = options.get("deadline_s", 300.0)
    poll_interval_s = options.get("poll_interval_s")
    message = options.get("message")
    if if_active_run not in ("wait", "fail", "cancel"):
        raise ConfigurationError(
            f"if_active_run must be 'wait', 'fail' or 'cancel', got {if_active_run!r}"
        )
    if deadline_s <= 0:
        raise ConfigurationError(f"deadline_s must be positive, got {deadline_s}")
    if poll_interval_s is not None and poll_interval_s < 0:
        raise ConfigurationError(f"poll_interval_s must be >= 0, got {poll_interval_s}")
    reserved = sorted(_RESERVED & run_kwargs.keys())
    if reserved:
        raise ConfigurationError(
            f"{', '.join(reserved)} cannot be passed through: use the parameters of the same name."
        )
    if isinstance(message, Mapping) and "content" not in message:
        raise ConfigurationError("A message mapping needs 'content' (messages.create arguments).")
    toolset = as_toolset(tools)
    if options.get("attach_tools", False):
        run_kwargs["tools"] = tools_for_api(toolset, "assistants")
    core = _assistant_loop(
        assistant_id=assistant_id,
        thread_id=options.get("thread_id"),
        message=message,
        stream=options.get("stream", False),
        poll_interval_s=poll_interval_s,
        deadline_s=deadline_s,
        if_active_run=if_active_run,
        cancel_timeout_s=options.get("cancel_timeout_s", 30.0),
        run_kwargs=run_kwargs,
    )
    return toolset, core


def _message_kwargs(message: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, str):
        return {"role": "user", "content": message}
    return {"role": "user", **message}


def _assistant_loop(
    *,
    assistant_id: str,
    thread_id: str | None,
    message: str | Mapping[str, Any] | None,
    stream: bool,
    poll_interval_s: float | None,
    deadline_s: float,
    if_active_run: IfActiveRun,
    cancel_timeout_s: float,
    run_kwargs: dict[str, Any],
) -> Core[AssistantResult]:
    trace = Trace()
    calls: list[ToolCallResult] = []
    started = yield Now()
    deadline_at = started + deadline_s
    if thread_id is None:
        body = {"messages": [_message_kwargs(message)]} if message is not None else {}
        thread = yield ApiCall("beta.threads.create", body, undeprecated=True)
        state = _Run(thread.id, assistant_id, poll_interval_s, deadline_at)
    else:
        state = _Run(thread_id, assistant_id, poll_interval_s, deadline_at)
        yield from _clear_active_run(state, if_active_run, cancel_timeout_s)
        if message is not None:
            yield ApiCall(
                "beta.threads.messages.create",
                {"thread_id": thread_id, **_message_kwargs(message)},
                undeprecated=True,
            )

    thread_id = state.thread_id
    create = {"thread_id": thread_id, "assistant_id": assistant_id, **run_kwargs}
    try:
        yield trace.emit(ThinkingEvent(state.turn, assistant_id))
        if stream:
            create["stream"] = True
            yield from _consume_stream(
                state, trace, ApiCall("beta.threads.runs.create", create, undeprecated=True)
            )
            yield from _drive_streaming(state, trace, calls)
        else:
            state.run = _read_raw(
                state,
                (yield _http(_run_path(thread_id), create, drop=("thread_id",))),
            )
            yield from _drive_polling(state, trace, calls)
    except _DeadlinePassed:
        if state.run_id is not None and state.status not in TERMINAL_STATUSES:
            # A failing cancel shows as cancel_confirmed=False rather than replacing the
            # deadline error.
            with contextlib.suppress(Exception):
                state.run = yield from _cancel_and_confirm(state, state.run, cancel_timeout_s)
        raise RunDeadlineExceededError(
            run_id=state.run_id,
            thread_id=state.thread_id,
            deadline_s=deadline_s,
            cancel_confirmed=state.status in TERMINAL_STATUSES,
            final_status=state.status,
            usage=Usage.from_api(getattr(state.run, "usage", None)),
            calls=calls,
            turns=state.turn,
        ) from None
    except BaseException:
        # Anything else (our bug, the network, Ctrl-C, task cancellation, a callback):
        # do not leave the thread locked by a run nobody drives.
        if state.run_id is not None and state.status not in TERMINAL_STATUSES:
            # The original error matters more than a failed cleanup.
            with contextlib.suppress(Exception):
                yield from _cancel_and_confirm(state, state.run, cancel_timeout_s)
        raise

    run = state.run
    usage = Usage.from_api(getattr(run, "usage", None))
    if run.status != "completed":
        error_cls = _ERRORS.get(run.status, RunFailedError)
        raise error_cls(
            run_id=run.id,
            thread_id=thread_id,
            status=run.status,
            last_error=getattr(run, "last_error", None),
            incomplete_details=getattr(run, "incomplete_details", None),
            run=run,
            usage=usage,
            calls=calls,
            turns=state.turn,
        )
    if stream:
        replies = [m for m in state.messages if getattr(m, "run_id", run.id) == run.id]
    else:
        page = yield ApiCall(
            "beta.threads.messages.list",
            {"thread_id": thread_id, "run_id": run.id, "order": "asc", "limit": 100},
            undeprecated=True,
        )
        replies = [m for m in page.data if m.role == "assistant"]
        for reply in replies:
            text = _message_text(reply)
            if text:
                yield trace.emit(MessageEvent(state.turn, text))
    content = "\n\n".join(t for t in (_message_text(m) for m in replies) if t)
    yield trace.emit(DoneEvent(state.turn, content, usage))
    return AssistantResult(
        content=content,
        messages=replies,
        run=run,
        calls=calls,
        usage=usage,
        thread_id=thread_id,
        turns=state.turn,
        events=trace.events,
    )


def _clear_active_run(
    state: _Run, if_active_run: IfActiveRun, cancel_timeout_s: float
) -> Core[None]:
    """Deal with a run already active on the thread (it would refuse our message and run)."""
    page = yield ApiCall(
        "beta.threads.runs.list",
        {"thread_id": state.thread_id, "limit": 1, "order": "desc"},
        undeprecated=True,
    )
    latest = page.data[0] if page.data else None
    if latest is None or latest.status not in ACTIVE_STATUSES:
        return
    if if_active_run == "fail":
        raise ActiveRunError(thread_id=state.thread_id, run_id=latest.id, status=latest.status)
    if if_active_run == "cancel":
        latest = yield from _cancel_and_confirm(state, latest, cancel_timeout_s)
    else:
        latest = yield from _wait_until(state, latest, state.deadline_at, TERMINAL_STATUSES)
    if latest.status not in TERMINAL_STATUSES:
        # Not ours: we never cancel a run we were asked to wait for.
        raise ActiveRunError(thread_id=state.thread_id, run_id=latest.id, status=latest.status)


def iter_assistant(
    client: OpenAI,
    tools: ToolsArg,
    *,
    assistant_id: str,
    **options: Unpack[AssistantOptions],
) -> EventStream[AssistantResult]:
    """Run the Assistants runner as an iterator of events; ``.result`` holds the result.

    Takes the same arguments as :func:`run_assistant`. Closing the stream early cancels
    the run (and confirms the cancel).
    """
    toolset, core = _assistant_core(tools, assistant_id=assistant_id, options=options)
    return sync_stream(
        core,
        client,
        toolset,
        on_event=options.get("on_event"),
        sleep=options.get("sleep"),
        clock=options.get("clock"),
    )


def aiter_assistant(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    assistant_id: str,
    **options: Unpack[AsyncAssistantOptions],
) -> AsyncEventStream[AssistantResult]:
    """Async :func:`iter_assistant`; ``sleep`` is an async function (default ``asyncio.sleep``)."""
    toolset, core = _assistant_core(tools, assistant_id=assistant_id, options=options)
    return async_stream(
        core,
        client,
        toolset,
        on_event=options.get("on_event"),
        sleep=options.get("sleep"),
        clock=options.get("clock"),
    )


def run_assistant(
    client: OpenAI,
    tools: ToolsArg,
    *,
    assistant_id: str,
    **options: Unpack[AssistantOptions],
) -> AssistantResult:
    """Run an assistant on a thread until the run completes, executing its tool calls.

    Args:
        client: an ``openai.OpenAI`` client.
        tools: the tools whose calls the run may request (see :func:`create_assistant`):
            a ``MixpeekTools``, or a list with your own functions too (and
            ``code_interpreter`` / ``file_search`` when ``attach_tools``).
        assistant_id: the assistant to run.
        **options: see :class:`AssistantOptions`. The runner's own:

            * ``thread_id``: an existing thread; a new one is created when omitted.
            * ``message``: a user message to add first: text, or ``messages.create``
              arguments (``{"content": ..., "attachments": ...}``).
            * ``stream``: follow the run through its event streams instead of polling:
              text arrives as ``message`` events (``delta=True``) and the run is never
              ``GET``-polled.
            * ``poll_interval_s``: fixed polling interval; ``None`` (default) honours the
              API's ``openai-poll-after-ms`` header, 1 s without it.
            * ``deadline_s`` (default 300): overall deadline for the run; when it passes,
              the run is cancelled (cancel confirmed) and
              :class:`~mixpeek_openai.errors.RunDeadlineExceededError` raised. Checked
              between polls / stream events.
            * ``if_active_run``: what to do when the thread already has an active run:
              ``"wait"`` (default) for it to finish (within the deadline), ``"fail"`` with
              :class:`~mixpeek_openai.errors.ActiveRunError`, or ``"cancel"`` it.
            * ``cancel_timeout_s`` (default 30): how long to poll for a cancel to land.
            * ``attach_tools``: send the tools with the run, overriding the assistant's own
              tools for this run (useful when the assistant was not created with them).
            * ``on_event``: called with every event; ``sleep``: the function used to wait
              between polls (default ``time.sleep``; tests pass a fake); ``clock``:
              monotonic clock used for the deadline (default ``time.monotonic``).

            Everything else goes to ``runs.create`` (``instructions``,
            ``additional_instructions``, ``model``, ``tool_choice``,
            ``parallel_tool_calls``, ``metadata``, ...).

    Returns:
        An :class:`AssistantResult` with the reply messages, their text, the run,
        per-call records and usage.

    Raises:
        RunFailedError: the run ended ``failed`` (``last_error``); its subclasses
            RunExpiredError, RunCancelledError and RunIncompleteError (``incomplete_details``)
            cover the other non-completed endings.
        RunDeadlineExceededError: the deadline passed (the run was cancelled).
        ActiveRunError: the thread has an active run and ``if_active_run="fail"`` (or
            waiting for it ran past the deadline).
    """
    return iter_assistant(client, tools, assistant_id=assistant_id, **options).run()


async def arun_assistant(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    assistant_id: str,
    **options: Unpack[AsyncAssistantOptions],
) -> AssistantResult:
    """Async :func:`run_assistant` (``openai.AsyncOpenAI``, ``tools.adispatch``).

    ``sleep`` is an async function (default ``asyncio.sleep``). When the awaiting task is
    cancelled, the run is cancelled (and confirmed) before ``CancelledError`` propagates.
    """
    return await aiter_assistant(client, tools, assistant_id=assistant_id, **options).run()


def _create_assistant_core(kwargs: dict[str, Any]) -> Core[Assistant]:
    assistant: Assistant = yield ApiCall("beta.assistants.create", kwargs, undeprecated=True)
    return assistant


def _assistant_kwargs(
    tools: ToolsArg, model: str, name: str | None, instructions: str | None, kw: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    toolset = as_toolset(tools)
    kwargs: dict[str, Any] = {"model": model, "tools": tools_for_api(toolset, "assistants"), **kw}
    if name is not None:
        kwargs["name"] = name
    if instructions is not None:
        kwargs["instructions"] = instructions
    return toolset, kwargs


def create_assistant(
    client: OpenAI,
    tools: ToolsArg,
    *,
    model: str,
    name: str | None = None,
    instructions: str | None = None,
    **kwargs: Any,
) -> Assistant:
    """Create an assistant whose tools are the given ones (no deprecation warning).

    ``tools`` is a ``MixpeekTools`` or a list that may add your own functions and the
    Assistants API's hosted tools (``{"type": "code_interpreter"}``, ``{"type":
    "file_search"}``). ``**kwargs`` go to ``beta.assistants.create`` (``description``,
    ``metadata``, ``temperature``, ...).
    """
    toolset, body = _assistant_kwargs(tools, model, name, instructions, kwargs)
    return sync_stream(_create_assistant_core(body), client, toolset).run()


async def acreate_assistant(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    model: str,
    name: str | None = None,
    instructions: str | None = None,
    **kwargs: Any,
) -> Assistant:
    """Async :func:`create_assistant`."""
    toolset, body = _assistant_kwargs(tools, model, name, instructions, kwargs)
    return await async_stream(_create_assistant_core(body), client, toolset).run()
