"""Shared machinery for the tool loops: effects, drivers, event streams.

Each loop (chat, responses, assistants) is written once, as a *sans-IO core*: a generator
that yields effect objects (:class:`ApiCall`, :class:`Dispatch`, :class:`Sleep`, ...) and
receives each effect's result through ``send()``. It never touches a client, a clock or
the network itself. Two drivers perform the effects: :func:`drive` with a sync OpenAI
client and ``tools.dispatch``, :func:`adrive` with an async client and
``await tools.adispatch``. So sync and async behaviour cannot drift apart: there is one
decision-making implementation, and two thin I/O layers.

Failures while performing an effect (including ``KeyboardInterrupt`` and
``asyncio.CancelledError``) are thrown *into* the core, so it can clean up with more
effects (the Assistants runner cancels its run and waits for the cancel to land) before
the exception propagates. Closing an event stream early does the same.

Events (:class:`Emit`) go to the ``on_event`` callback and are yielded by the drivers, which
is what makes :class:`EventStream` / :class:`AsyncEventStream` work without threads.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import types
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast
from urllib.parse import urlencode

from .errors import LoopError
from .events import Event, EventHandler, ToolCallEvent, ToolResultEvent

if TYPE_CHECKING:
    from .dispatch import ToolCallResult

__all__ = [
    "END",
    "ApiCall",
    "AsyncEventStream",
    "CloseStream",
    "Core",
    "Dispatch",
    "Effect",
    "Emit",
    "EventStream",
    "HttpCall",
    "NextItem",
    "Now",
    "OpenStream",
    "Sleep",
    "ToolSet",
    "Trace",
    "adrive",
    "async_stream",
    "decode_arguments",
    "drive",
    "first_per_call_id",
    "run_tools",
    "sync_stream",
]

R = TypeVar("R")
T = TypeVar("T")


class ToolSet(Protocol):
    """What the loops need from a tool set (``MixpeekTools`` provides it)."""

    def chat_tools(self) -> Sequence[Any]:
        """Function tools in the Chat Completions / Assistants format."""
        ...

    def responses_tools(self) -> Sequence[Any]:
        """Function tools in the Responses format."""
        ...

    def dispatch(self, calls: Any, /) -> Sequence[ToolCallResult]:
        """Execute tool calls (concurrently), one result per call, in order."""
        ...

    async def adispatch(self, calls: Any, /) -> Sequence[ToolCallResult]:
        """Async :meth:`dispatch`."""
        ...


# --- effects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """Call an OpenAI client method, named by its attribute path from the client."""

    path: str
    """e.g. ``"chat.completions.create"`` or ``"beta.threads.runs.retrieve"``."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the method."""

    undeprecated: bool = False
    """Call the function under the SDK's ``@deprecated`` wrapper (no warning)."""


@dataclass(frozen=True)
class HttpCall:
    """Send one request with the client's generic public methods (``client.get`` /
    ``client.post`` with ``cast_to=httpx2.Response``, as the SDK documents for endpoints
    it has no method for); the result is the ``httpx2.Response``, headers included.

    The Assistants loop reads the ``openai-poll-after-ms`` header this way: the SDK's own
    ``with_raw_response`` would go through the deprecated methods, which warn.
    """

    method: Literal["get", "post"]
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with the client's own default headers (authentication included)."""

    query: dict[str, Any] = field(default_factory=dict)
    timeout: Any = None


@dataclass(frozen=True)
class OpenStream:
    """Perform ``call`` (which returns an SDK stream); the result is an opaque handle."""

    call: ApiCall


@dataclass(frozen=True)
class NextItem:
    """Read the next item of an open stream; the result is the item or :data:`END`."""

    handle: Any


@dataclass(frozen=True)
class CloseStream:
    """Close an open stream (releases the HTTP connection)."""

    handle: Any


@dataclass(frozen=True)
class Dispatch:
    """Execute tool calls with the tool set; the result is a list of ``ToolCallResult``."""

    calls: list[Any]


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (with the caller's sleep function, so tests need not really wait)."""

    seconds: float


@dataclass(frozen=True)
class Now:
    """Read the caller's monotonic clock; the result is a float in seconds."""


@dataclass(frozen=True)
class Emit:
    """Report an event to the ``on_event`` callback and to an event-stream consumer."""

    event: Event


Effect = ApiCall | HttpCall | OpenStream | NextItem | CloseStream | Dispatch | Sleep | Now | Emit
"""Everything a loop core can ask its driver to do."""

Core = Generator[Effect, Any, R]
"""A sans-IO loop: yields effects, receives their results, returns the loop's result."""


class _End:
    def __repr__(self) -> str:
        return "END"


END: Any = _End()
"""Returned by :class:`NextItem` when a stream is exhausted."""


@dataclass
class _StreamHandle:
    stream: Any
    iterator: Any


# --- deprecation-free calls -------------------------------------------------------------


def _is_deprecation_wrapper(func: Any) -> bool:
    """Whether ``func`` is a ``@deprecated`` wrapper: PEP 702 has the decorator set
    ``__deprecated__`` on what it returns, and ``functools.wraps`` sets ``__wrapped__``."""
    return "__deprecated__" in getattr(func, "__dict__", {}) and hasattr(func, "__wrapped__")


def _undeprecated(method: Any) -> Any:
    """The bound method without the SDK's ``@deprecated`` wrappers.

    The Assistants API methods are wrapped by ``typing_extensions.deprecated``, which warns
    on every call; under ``-W error`` that warning is an exception. Silencing it with
    ``warnings.catch_warnings()`` would change process-wide state (not thread-safe), so we
    call the function the wrapper wraps instead. Some methods are wrapped more than once
    (deprecated -> argument check -> deprecated -> implementation): we take the layer just
    below the innermost deprecation wrapper, keeping any other wrapper above it that does
    not sit on top of a deprecation wrapper.
    """
    func = getattr(method, "__func__", None)
    owner = getattr(method, "__self__", None)
    if func is None or owner is None:
        return method
    chain = [func]
    while hasattr(chain[-1], "__wrapped__") and len(chain) < 16:
        chain.append(chain[-1].__wrapped__)
    innermost = max((i for i, f in enumerate(chain) if _is_deprecation_wrapper(f)), default=-1)
    if innermost < 0 or innermost + 1 >= len(chain):
        return method
    return types.MethodType(chain[innermost + 1], owner)


def _bind(client: Any, call: ApiCall) -> tuple[Callable[..., Any], dict[str, Any]]:
    target: Any = client
    for part in call.path.split("."):
        target = getattr(target, part)
    if call.undeprecated:
        target = _undeprecated(target)
    return target, dict(call.kwargs)


def _send_http(client: Any, call: HttpCall) -> Any:
    """Start ``call`` on ``client`` (the response, or its awaitable on an async client)."""
    import httpx2

    options: dict[str, Any] = {"default_headers": call.headers}
    if call.timeout is not None:
        options["timeout"] = call.timeout
    target = client.with_options(**options)
    path = call.path + (f"?{urlencode(call.query, doseq=True)}" if call.query else "")
    if call.method == "get":
        return target.get(path, cast_to=httpx2.Response)
    return target.post(path, cast_to=httpx2.Response, body=call.body)


# --- performers: the only I/O -----------------------------------------------------------


class _SyncPerformer:
    def __init__(
        self,
        client: Any,
        tools: ToolSet | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._tools = tools
        self._sleep = sleep
        self._clock = clock

    def __call__(self, effect: Effect) -> Any:
        if isinstance(effect, ApiCall):
            method, kwargs = _bind(self._client, effect)
            return method(**kwargs)
        if isinstance(effect, HttpCall):
            return _send_http(self._client, effect)
        if isinstance(effect, OpenStream):
            method, kwargs = _bind(self._client, effect.call)
            stream = method(**kwargs)
            return _StreamHandle(stream, iter(stream))
        if isinstance(effect, NextItem):
            return next(effect.handle.iterator, END)
        if isinstance(effect, CloseStream):
            close = getattr(effect.handle.stream, "close", None)
            if close is not None:
                close()
            return None
        if isinstance(effect, Dispatch):
            if self._tools is None:  # pragma: no cover - cores only dispatch with tools
                raise LoopError("no tool set to dispatch with")
            return list(self._tools.dispatch(effect.calls))
        if isinstance(effect, Sleep):
            if effect.seconds > 0:
                self._sleep(effect.seconds)
            return None
        if isinstance(effect, Now):
            return self._clock()
        raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover


class _AsyncPerformer:
    def __init__(
        self,
        client: Any,
        tools: ToolSet | None,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._tools = tools
        self._sleep = sleep
        self._clock = clock

    async def __call__(self, effect: Effect) -> Any:
        if isinstance(effect, ApiCall):
            method, kwargs = _bind(self._client, effect)
            result = method(**kwargs)
            # Paginated list methods return an awaitable paginator, not a coroutine.
            return await result if inspect.isawaitable(result) else result
        if isinstance(effect, HttpCall):
            return await _send_http(self._client, effect)
        if isinstance(effect, OpenStream):
            method, kwargs = _bind(self._client, effect.call)
            stream = method(**kwargs)
            if inspect.isawaitable(stream):
                stream = await stream
            return _StreamHandle(stream, stream.__aiter__())
        if isinstance(effect, NextItem):
            try:
                return await effect.handle.iterator.__anext__()
            except StopAsyncIteration:
                return END
        if isinstance(effect, CloseStream):
            close = getattr(effect.handle.stream, "close", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result
            return None
        if isinstance(effect, Dispatch):
            if self._tools is None:  # pragma: no cover
                raise LoopError("no tool set to dispatch with")
            return list(await self._tools.adispatch(effect.calls))
        if isinstance(effect, Sleep):
            if effect.seconds > 0:
                await self._sleep(effect.seconds)
            return None
        if isinstance(effect, Now):
            return self._clock()
        raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover


# --- drivers ----------------------------------------------------------------------------


class _Stepper(Generic[R]):
    """What both drivers share: advancing the core and routing failures back into it.

    Any exception while performing an effect, in ``on_event``, or thrown into the driver
    (``close()`` included) is thrown into the core so it can clean up. Once the consumer
    has closed the stream, cleanup effects still run but events are no longer yielded (a
    closing generator must not yield).
    """

    def __init__(self, core: Core[R], on_event: EventHandler | None) -> None:
        self._core = core
        self._on_event = on_event
        self._error: BaseException | None = None
        self._closing = False
        self.value: Any = None
        """What the core receives next (the last effect's result)."""

    def advance(self) -> Effect:
        """The core's next effect; raises ``StopIteration`` carrying its result."""
        value, error = self.value, self._error
        self.value, self._error = None, None
        return self._core.send(value) if error is None else self._core.throw(error)

    def fail(self, exc: BaseException) -> None:
        """Throw ``exc`` into the core at the next :meth:`advance`."""
        self._closing = self._closing or isinstance(exc, GeneratorExit)
        self._error = exc

    def deliver(self, event: Event) -> bool:
        """Give ``event`` to ``on_event``; whether the driver should also yield it."""
        try:
            if self._on_event is not None:
                self._on_event(event)
        except BaseException as exc:
            self.fail(exc)
            return False
        return not self._closing


def drive(
    core: Core[R],
    perform: Callable[[Effect], Any],
    on_event: EventHandler | None = None,
) -> Generator[Event, None, R]:
    """Run ``core`` performing effects with ``perform``; yield its events, return its result.

    Failures go back into the core (see :class:`_Stepper`).
    """
    step = _Stepper(core, on_event)
    while True:
        try:
            effect = step.advance()
        except StopIteration as stop:
            return cast(R, stop.value)
        if isinstance(effect, Emit):
            if step.deliver(effect.event):
                try:
                    yield effect.event
                except BaseException as exc:
                    step.fail(exc)
            continue
        try:
            step.value = perform(effect)
        except BaseException as exc:
            step.fail(exc)


@dataclass
class _Box(Generic[R]):
    done: bool = False
    value: Any = None


async def adrive(
    core: Core[R],
    perform: Callable[[Effect], Awaitable[Any]],
    on_event: EventHandler | None,
    box: _Box[R],
) -> AsyncGenerator[Event, None]:
    """The async twin of :func:`drive` (the core is the same); the result lands in ``box``.

    ``asyncio.CancelledError`` is thrown into the core like any other failure, so an
    Assistants run is cancelled before the cancellation propagates.
    """
    step = _Stepper(core, on_event)
    while True:
        try:
            effect = step.advance()
        except StopIteration as stop:
            box.value = stop.value
            box.done = True
            return
        if isinstance(effect, Emit):
            if step.deliver(effect.event):
                try:
                    yield effect.event
                except BaseException as exc:
                    step.fail(exc)
            continue
        try:
            step.value = await perform(effect)
        except BaseException as exc:
            step.fail(exc)


# --- event streams ----------------------------------------------------------------------


class EventStream(Generic[R]):
    """Iterate a loop's events as they happen; ``result`` holds its result afterwards.

    ::

        with iter_chat(client, tools, model="gpt-4o", messages=msgs, stream=True) as events:
            for event in events:
                if event.type == "message":
                    print(event.text, end="")
        print(events.result.usage)

    Leaving the ``with`` block (or calling :meth:`close`) before the end stops the loop;
    an Assistants run in progress is cancelled. Errors raise from the iteration.
    """

    def __init__(self, events: Generator[Event, None, R]) -> None:
        self._events = events
        self._done = False
        self._result: R | None = None

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        try:
            return next(self._events)
        except StopIteration as stop:
            self._result = cast(R, stop.value)
            self._done = True
            raise StopIteration from None

    @property
    def result(self) -> R:
        """The loop's result; only available once iteration has finished."""
        if not self._done:
            raise RuntimeError("The loop has not finished: iterate the stream to its end first.")
        return cast(R, self._result)

    def run(self) -> R:
        """Consume the remaining events and return the result."""
        for _ in self:
            pass
        return self.result

    def close(self) -> None:
        """Stop the loop early (cleaning up, e.g. cancelling an Assistants run)."""
        self._events.close()

    def __enter__(self) -> EventStream[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEventStream(Generic[R]):
    """Async-iterate a loop's events; ``result`` holds its result afterwards.

    ::

        async with aiter_chat(client, tools, model="gpt-4o", messages=msgs) as events:
            async for event in events:
                ...
        print(events.result.content)
    """

    def __init__(self, events: AsyncGenerator[Event, None], box: _Box[R]) -> None:
        self._events = events
        self._box = box

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    @property
    def result(self) -> R:
        """The loop's result; only available once iteration has finished."""
        if not self._box.done:
            raise RuntimeError("The loop has not finished: iterate the stream to its end first.")
        return cast(R, self._box.value)

    async def run(self) -> R:
        """Consume the remaining events and return the result."""
        async for _ in self:
            pass
        return self.result

    async def aclose(self) -> None:
        """Stop the loop early (cleaning up, e.g. cancelling an Assistants run)."""
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream[R]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def sync_stream(
    core: Core[R],
    client: Any,
    tools: ToolSet | None,
    *,
    on_event: EventHandler | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> EventStream[R]:
    """An :class:`EventStream` running ``core`` with a sync client."""
    perform = _SyncPerformer(client, tools, sleep or time.sleep, clock or time.monotonic)
    return EventStream(drive(core, perform, on_event))


def async_stream(
    core: Core[R],
    client: Any,
    tools: ToolSet | None,
    *,
    on_event: EventHandler | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncEventStream[R]:
    """An :class:`AsyncEventStream` running ``core`` with an async client."""
    perform = _AsyncPerformer(client, tools, sleep or asyncio.sleep, clock or time.monotonic)
    box: _Box[R] = _Box()
    return AsyncEventStream(adrive(core, perform, on_event, box), box)


# --- helpers shared by the cores --------------------------------------------------------


class Trace:
    """Records the events a core emits (they end up on the result as ``events``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> Emit:
        """Record ``event`` and wrap it in an :class:`Emit` effect for the core to yield."""
        self.events.append(event)
        return Emit(event)


MAX_ARGUMENT_CHARS = 64_000
"""Arguments longer than this are not decoded for events (the dispatcher refuses them too)."""

MAX_ARGUMENT_DEPTH = 64
"""Arguments nested deeper than this are not decoded (``json`` would recurse on them)."""

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


def decode_arguments(arguments: Any) -> dict[str, Any] | None:
    """The model's JSON arguments as a dict, or ``None`` when they are not a JSON object.

    Never raises, whatever the model sent: text over :data:`MAX_ARGUMENT_CHARS` or nested
    deeper than :data:`MAX_ARGUMENT_DEPTH` is refused *before* ``json.loads`` sees it (a
    100,000-deep array would otherwise raise ``RecursionError``), as is anything ``json``
    cannot read (invalid JSON, an integer with too many digits, invalid UTF-8).
    """
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, bytes | bytearray):
        try:
            arguments = bytes(arguments).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(arguments, str):
        return None
    if len(arguments) > MAX_ARGUMENT_CHARS or _too_deep(arguments, MAX_ARGUMENT_DEPTH):
        return None
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _too_deep(text: str, limit: int) -> bool:
    """Whether ``text`` opens more than ``limit`` arrays/objects inside one another.

    All in regex passes (no Python loop per character): text with at most ``limit``
    brackets cannot be too deep; otherwise strings are removed, then the brackets left,
    and each pass deletes the innermost empty pairs, so balanced brackets of depth ``d``
    vanish after ``d`` passes. Unbalanced brackets are not JSON, and count as too deep.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text) if '"' in text else text)
    for _ in range(limit):
        shorter = _EMPTY_PAIR.sub("", brackets)
        if not shorter:
            return False
        if shorter == brackets:
            return True
        brackets = shorter
    return True


def first_per_call_id(items: Sequence[T], call_id: Callable[[T], Any]) -> list[T]:
    """``items`` without repeated call ids (the first of each kept, order unchanged).

    The APIs never send a call id twice, but a model or proxy that does must not make the
    loop send two answers for one id: the next request would be refused (a 400), ending
    the conversation. The repeat's ``duplicate_call`` record stays on the result.
    """
    seen: set[Any] = set()
    kept: list[T] = []
    for item in items:
        key = call_id(item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def run_tools(
    trace: Trace,
    turn: int,
    calls: list[Any],
    described: Sequence[tuple[str, str, Any]],
) -> Generator[Effect, Any, list[ToolCallResult]]:
    """Emit ``tool_call`` events, dispatch all ``calls`` at once, emit ``tool_result`` events.

    ``described`` gives ``(call_id, name, raw_arguments)`` for each call, in order. Events
    are emitted here (not from the dispatcher's per-call hook) so each appears exactly once
    and in call order, whatever order the concurrent calls finish in.
    """
    for call_id, name, arguments in described:
        yield trace.emit(ToolCallEvent(turn, call_id, name, decode_arguments(arguments)))
    results: list[ToolCallResult] = list((yield Dispatch(list(calls))))
    if [r.call_id for r in results] != [d[0] for d in described]:
        raise LoopError(
            f"The tool set returned results for calls {[r.call_id for r in results]}, "
            f"expected {[d[0] for d in described]}: every call needs exactly one output."
        )
    for r in results:
        yield trace.emit(
            ToolResultEvent(
                turn,
                r.call_id,
                r.name,
                r.ok,
                r.output,
                error_kind=(r.error.kind if r.error is not None else None),
                duration_s=r.duration_s,
                attempts=r.attempts,
            )
        )
    return results
