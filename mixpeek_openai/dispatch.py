"""Running the model's tool calls: validate, send (with retries and a deadline), shape.

:class:`Dispatcher` is what ``MixpeekTools.handle`` / ``ahandle`` / ``dispatch`` /
``adispatch`` delegate to. For every call, one function runs the whole pipeline::

    arguments text -> size cap -> JSON object -> validated arguments model
        -> ToolDefinition.to_request(...)           (the model reaches only the inputs)
        -> send with retries within the deadline  (mixpeek_openai.retries)
        -> shape for the model                     (mixpeek_openai.results)

and returns a :class:`ToolCallResult`: the shaped ``output`` the model sees, plus the raw
response, attempts, timings and the error, if any, for the caller. The sync path runs the
calls of one turn on a bounded thread pool (a turn of one call runs in the caller's thread
when the deadline-bounded transport is in use); the async path runs each in a worker thread
under an ``asyncio.Semaphore``, so the event loop is never blocked (the ``mixpeek`` client
is synchronous). Both share the same per-call function.

Guarantees:

* Every call id is answered exactly once, in the order of the calls, whatever failed.
  Model mistakes (arguments that are not JSON or not an object, validation errors,
  unknown tool names, oversized arguments) become outputs that say what to fix. An
  unexpected exception inside this package becomes an output saying an internal error
  occurred; it is logged with its traceback and kept on the result.
* A repeated call id (the OpenAI APIs never send one) is run once; each later repeat
  still gets an output (a ``duplicate_call`` error), so there is one output per input.
* Each call has a deadline (``DispatchConfig.deadline_s``, 20 s by default, counted from
  the moment the batch is dispatched) that bounds everything, including waits the
  ``mixpeek`` client would otherwise make on 429/503 for up to three minutes: the request
  goes through a sibling of the user's client whose connection pool enforces the deadline
  and hands 429/503 to the one retry layer here (see :mod:`mixpeek_openai._transport`).
  Past the deadline, the model is told the search is temporarily unavailable and the
  result says why (``error.kind == "deadline_exceeded"``, attempts, last status). The
  dispatcher itself never waits more than a second beyond the deadline, even for a
  worker stuck somewhere no timeout reaches.
* Secrets never reach outputs, events, log records or error messages: no headers are ever
  recorded, and the client's API key is scrubbed from any text emitted, as a safety net.

Observability: the ``mixpeek_openai.dispatch`` logger, and ``DispatchConfig.on_call_event``,
called with a :class:`CallEvent` when a call starts, is retried, finishes or fails
(from worker threads; keep it quick and thread-safe).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pydantic

from mixpeek_openai import results, tracing
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai._transport import Sender
from mixpeek_openai.calls import CallStyle, ToolCall, format_output, normalize_calls
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.retries import (
    DEFAULT_RETRY_STATUSES,
    Deadline,
    ErrorKind,
    Failure,
    RetryPolicy,
)
from mixpeek_openai.schema import parse_arguments

if TYPE_CHECKING:
    from mixpeek_openai.results import TokenCounter

__all__ = [
    "CallError",
    "CallEvent",
    "DispatchConfig",
    "Dispatcher",
    "ToolCallResult",
]

_log = logging.getLogger("mixpeek_openai.dispatch")

_GRACE_S = 1.0  # how long past the deadline the dispatcher waits for a stuck worker
_MIN_BUDGET_TOKENS = 64
_THREAD_PREFIX = "mixpeek-openai-call"
_UNAVAILABLE_HINT = "Try again later, or continue without this tool."


# -- public data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallError:
    """Why a tool call did not produce a clean result."""

    kind: ErrorKind
    """Category: ``invalid_arguments``, ``unknown_tool``, ``duplicate_call``, ``http_error``,
    ``connection_error``, ``timeout``, ``deadline_exceeded``, ``invalid_response``,
    ``response_too_large``, ``execution_failed`` or ``internal_error``."""
    message: str
    """What happened, for logs and the caller (no secrets)."""
    status: int | None = None
    """The last HTTP status seen, if any."""
    retryable: bool = False
    """Whether trying again later could help."""


@dataclass(frozen=True)
class CallEvent:
    """A step in the life of one tool call, for ``DispatchConfig.on_call_event``."""

    kind: Literal["started", "retried", "finished", "failed"]
    """``started``; ``retried`` (an attempt failed and another follows after ``wait_s``);
    ``finished`` (an output was produced without error); ``failed`` (an error output)."""
    call_id: str
    """The call's id."""
    name: str
    """The tool name the model called."""
    attempt: int
    """Attempts made so far (0 before anything was sent)."""
    elapsed_s: float
    """Seconds since the call was dispatched."""
    error: CallError | None = None
    """The failure, for ``retried`` (the attempt's) and ``failed`` (the final one)."""
    wait_s: float | None = None
    """For ``retried``: the wait before the next attempt."""


@dataclass(frozen=True)
class ToolCallResult:
    """What happened to one tool call. Only :attr:`output` goes to the model."""

    call_id: str
    """The call's id."""
    name: str
    """The tool name the model called."""
    arguments: dict[str, Any] | None
    """The arguments as the model sent them, when they were a JSON object."""
    output: str
    """The text the model sees (compact JSON)."""
    raw: Any = field(default=None, repr=False)
    """The raw API response, or ``None`` if there was none."""
    error: CallError | None = None
    """Why the call did not produce a clean result, or ``None``."""
    attempts: int = 0
    """Requests sent (0 when nothing was sent)."""
    started_at: float = 0.0
    """Wall-clock time (``time.time()``) when the call was dispatched."""
    duration_s: float = 0.0
    """Seconds from dispatch to the output."""
    request: MixpeekRequest | None = None
    """The request built from the arguments, when one was built."""
    style: CallStyle = "chat"
    """The API the call came from (decides the shape of :meth:`as_output`)."""
    images: tuple[str, ...] = ()
    """Image URLs sent with the output as ``input_image`` parts (Responses only)."""

    @property
    def ok(self) -> bool:
        """Whether the call produced a clean result."""
        return self.error is None

    def as_output(self) -> dict[str, Any]:
        """The answer in the shape its API expects (tool message / tool output / item)."""
        return format_output(self.call_id, self.output, self.style, images=self.images)


@dataclass(frozen=True)
class DispatchConfig:
    """How tool calls are run. Frozen; derive variants with :meth:`replace`."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """The retry policy (also carries the injectable clock and sleep)."""
    deadline_s: float = 20.0
    """Upper bound on one call, retries and waits included."""
    max_concurrency: int = 8
    """Calls of one turn that run at the same time."""
    output_budget_tokens: int = 2000
    """Upper bound on one output's tokens."""
    max_argument_bytes: int = 64_000
    """Larger arguments are refused (and the model told so)."""
    max_text_chars: int = 600
    """Longest text value kept in an output."""
    score_digits: int = 3
    """Decimal digits kept in scores."""
    max_response_bytes: int = 32 * 1024 * 1024
    """Larger response bodies are refused without being parsed."""
    token_counter: TokenCounter | None = field(default=None, compare=False, repr=False)
    """How output tokens are counted (``None``: tiktoken if cached locally, else an estimate)."""
    on_call_event: Callable[[CallEvent], None] | None = field(
        default=None, compare=False, repr=False
    )
    """Called for every :class:`CallEvent` (from worker threads)."""

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ConfigurationError("DispatchConfig.deadline_s must be positive.")
        if self.max_concurrency < 1:
            raise ConfigurationError("DispatchConfig.max_concurrency must be at least 1.")
        if self.output_budget_tokens < _MIN_BUDGET_TOKENS:
            raise ConfigurationError(
                f"DispatchConfig.output_budget_tokens must be at least {_MIN_BUDGET_TOKENS}."
            )
        if self.max_argument_bytes < 1 or self.max_response_bytes < 1:
            raise ConfigurationError("DispatchConfig byte limits must be positive.")
        if self.max_text_chars < 20:
            raise ConfigurationError("DispatchConfig.max_text_chars must be at least 20.")
        if self.score_digits < 0:
            raise ConfigurationError("DispatchConfig.score_digits must not be negative.")

    def replace(self, **changes: Any) -> DispatchConfig:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


# -- what the dispatcher needs from a tool set --------------------------------------------------


class _ToolLike(Protocol):
    name: str
    arguments_model: type[pydantic.BaseModel]

    def to_request(self, arguments: pydantic.BaseModel) -> MixpeekRequest: ...


# -- secrets ----------------------------------------------------------------------------------

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_REDACTED = "[redacted]"


class _Scrubber:
    def __init__(self, secret: str | None) -> None:
        self._secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, _REDACTED)
        return _BEARER.sub(r"\1" + _REDACTED, text)


# -- per-call bookkeeping ----------------------------------------------------------------------


class _Job:
    """One call of a batch: its deadline, progress, and who answered it first."""

    def __init__(self, call: ToolCall, *, duplicate: bool, deadline: Deadline) -> None:
        self.call = call
        self.duplicate = duplicate
        self.deadline = deadline
        self.attempts = 0
        self.last_status: int | None = None
        self._lock = threading.Lock()
        self._answered = False

    def claim(self) -> bool:
        """True for the first caller only: the worker, or the overdue path."""
        with self._lock:
            if self._answered:
                return False
            self._answered = True
            return True

    @property
    def answered(self) -> bool:
        with self._lock:
            return self._answered


@dataclass
class _Draft:
    """A result under construction inside the pipeline."""

    arguments: dict[str, Any] | None = None
    request: MixpeekRequest | None = None
    raw: Any = None
    images: tuple[str, ...] = ()


class _ModelMistake(Exception):
    """Arguments the model must fix; the message and hint go to the model."""

    def __init__(self, kind: ErrorKind, type_: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.type_ = type_
        self.message = message
        self.hint = hint


# -- the dispatcher ----------------------------------------------------------------------------


class Dispatcher:
    """Runs tool calls against a tool set (``MixpeekTools`` or anything shaped like it).

    ``tools`` must provide ``definitions`` (or ``get(name)``) and ``client``; its
    ``config`` is used unless ``config`` is given here. Keep one dispatcher per tool set:
    it owns the deadline-bounded connection pool.
    """

    def __init__(self, tools: Any, config: DispatchConfig | None = None) -> None:
        """Bind to ``tools``; nothing is sent until the first call."""
        self._tools = tools
        self._config = config
        self._sender: Sender | None = None
        self._sender_lock = threading.Lock()

    @property
    def config(self) -> DispatchConfig:
        """The configuration in effect (the given one, else the tool set's, else defaults)."""
        if self._config is not None:
            return self._config
        config = getattr(self._tools, "config", None)
        return config if isinstance(config, DispatchConfig) else DispatchConfig()

    # -- entry points ------------------------------------------------------------------------

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        """Run every call in ``calls`` (see :func:`~mixpeek_openai.calls.normalize_calls`)
        and return one result per call, in order."""
        config = self.config
        jobs = self._plan(normalize_calls(calls, style=style), config)
        if not jobs:
            return []
        # Built here, in the caller's thread, so a warning about the transport is raised
        # where the caller can see (or filter) it rather than inside a worker.
        sender = self._get_sender(config)
        if len(jobs) == 1 and sender.mode == "deadline_transport":
            # One call and a transport whose per-attempt timeouts end at the deadline: the
            # caller's thread is bounded as well as a worker's wait would be, and no thread
            # has to be started (which costs more than the whole pipeline).
            return [self._run_job(jobs[0], config)]
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(len(jobs), config.max_concurrency), thread_name_prefix=_THREAD_PREFIX
        )
        all_done = False
        try:
            futures = [executor.submit(self._run_job, job, config) for job in jobs]
            done, _ = concurrent.futures.wait(futures, timeout=config.deadline_s + _GRACE_S)
            all_done = len(done) == len(futures)
            return [
                self._collect(job, future if future in done else None, config)
                for job, future in zip(jobs, futures, strict=True)
            ]
        finally:
            # Idle workers exit at once; a stuck one is left to finish on its own.
            executor.shutdown(wait=all_done, cancel_futures=True)

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        """Async :meth:`dispatch`: each call runs in a worker thread, at most
        ``max_concurrency`` at a time, without blocking the event loop."""
        config = self.config
        jobs = self._plan(normalize_calls(calls, style=style), config)
        if not jobs:
            return []
        # Built here, in the caller's thread, so a warning about the transport is raised
        # where the caller can see (or filter) it rather than inside a worker.
        self._get_sender(config)
        loop = asyncio.get_running_loop()
        semaphore = asyncio.Semaphore(config.max_concurrency)
        # A private pool (rather than the loop's default executor) keeps the threads bounded
        # and gone once the batch is answered.
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(len(jobs), config.max_concurrency), thread_name_prefix=_THREAD_PREFIX
        )

        async def run(job: _Job) -> ToolCallResult:
            async with semaphore:
                return await loop.run_in_executor(executor, self._run_job, job, config)

        tasks = [asyncio.ensure_future(run(job)) for job in jobs]
        try:
            done, pending = await asyncio.wait(tasks, timeout=config.deadline_s + _GRACE_S)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
        for task in pending:
            task.cancel()
        return [
            self._collect(job, task if task in done else None, config)
            for job, task in zip(jobs, tasks, strict=True)
        ]

    def handle(self, calls: Any, *, style: CallStyle | None = None) -> list[dict[str, Any]]:
        """Run the calls and return the outputs shaped like the input (tool messages,
        Assistants ``tool_outputs`` entries, or Responses ``function_call_output`` items)."""
        return [result.as_output() for result in self.dispatch(calls, style=style)]

    async def ahandle(self, calls: Any, *, style: CallStyle | None = None) -> list[dict[str, Any]]:
        """Async :meth:`handle`."""
        return [result.as_output() for result in await self.adispatch(calls, style=style)]

    def close(self) -> None:
        """Close pooled connections (a later call opens new ones)."""
        with self._sender_lock:
            if self._sender is not None:
                self._sender.close()

    # -- batch plumbing ----------------------------------------------------------------------

    def _plan(self, calls: Sequence[ToolCall], config: DispatchConfig) -> list[_Job]:
        seen: set[str] = set()
        jobs = []
        for call in calls:
            # Every call's deadline starts now: a call queued behind others gets no more time
            # than one started at once, so the whole batch is bounded too.
            jobs.append(
                _Job(
                    call,
                    duplicate=call.call_id in seen,
                    deadline=config.retry.new_deadline(config.deadline_s),
                )
            )
            seen.add(call.call_id)
        return jobs

    def _collect(
        self,
        job: _Job,
        future: concurrent.futures.Future[ToolCallResult] | asyncio.Future[ToolCallResult] | None,
        config: DispatchConfig,
    ) -> ToolCallResult:
        if future is not None:
            exc = future.exception()
            if exc is None:
                return future.result()
            # _run_job never raises; this is a last line of defence.
            return self._internal_error(job, config, exc, started=time.time())
        return self._overdue(job, config)

    def _overdue(self, job: _Job, config: DispatchConfig) -> ToolCallResult:
        """The answer for a call whose worker did not finish in time."""
        scrub = self._scrubber()
        error = CallError(
            kind="deadline_exceeded",
            message=f"no result within the {config.deadline_s:g} s deadline",
            status=job.last_status,
            retryable=True,
        )
        result = ToolCallResult(
            call_id=job.call.call_id,
            name=job.call.name,
            arguments=None,
            output=_unavailable_output("the service did not answer in time"),
            error=error,
            attempts=job.attempts,
            duration_s=config.deadline_s,
            style=job.call.style,
        )
        if job.claim():
            _log.warning(
                "tool call %s (%s) did not finish within its %.3g s deadline",
                job.call.call_id,
                scrub(job.call.name),
                config.deadline_s,
            )
            self._emit(config, job, "failed", error=error, elapsed=config.deadline_s)
        return result

    # -- the per-call pipeline (shared by the sync and async paths) -----------------------

    def _run_job(self, job: _Job, config: DispatchConfig) -> ToolCallResult:
        """Run one call start to finish; never raises."""
        started = time.time()
        try:
            return self._run(job, config, started)
        except Exception as exc:
            return self._internal_error(job, config, exc, started=started)

    def _run(self, job: _Job, config: DispatchConfig, started: float) -> ToolCallResult:
        call = job.call
        clock = config.retry.clock
        t0 = job.deadline.expires_at - job.deadline.seconds
        draft = _Draft()

        def finish(output: str, error: CallError | None, *, fitted: bool = False) -> ToolCallResult:
            scrub = self._scrubber()
            if error is not None:
                error = dataclasses.replace(error, message=scrub(error.message))
            scrubbed = scrub(output)
            if not fitted or scrubbed != output:
                # Shaped outputs already fit the budget; only a changed one is checked again.
                scrubbed = _fit_error_output(scrubbed, config)
            result = ToolCallResult(
                call_id=call.call_id,
                name=call.name,
                arguments=draft.arguments,
                output=scrubbed,
                raw=draft.raw,
                error=error,
                attempts=job.attempts,
                started_at=started,
                duration_s=max(0.0, clock() - t0),
                request=draft.request,
                style=call.style,
                images=draft.images if error is None else (),
            )
            if job.claim():
                trace.end(result)
                self._log_result(result)
                self._emit(
                    config,
                    job,
                    "failed" if error is not None else "finished",
                    error=error,
                    elapsed=result.duration_s,
                )
            return result

        self._emit(config, job, "started", elapsed=max(0.0, clock() - t0))
        known = self._definitions().get(call.name)
        trace = tracing.start_call(
            call_id=call.call_id,
            name=call.name,
            retriever_id=getattr(known, "retriever_id", None),
            kind=str(getattr(known, "kind", "unknown")),
        )
        try:
            tool, draft.arguments, arguments = self._prepare(job, config)
        except _ModelMistake as mistake:
            return finish(
                results.error_output(mistake.type_, mistake.message, mistake.hint),
                CallError(kind=mistake.kind, message=mistake.message),
            )

        options = results.ShapeOptions(
            budget_tokens=config.output_budget_tokens,
            max_text_chars=config.max_text_chars,
            score_digits=config.score_digits,
            projection=getattr(tool, "projection", None),
            count_tokens=config.token_counter,
            layout=getattr(tool, "layout", "columns"),
            images=getattr(tool, "images", 0) if call.style == "responses" else 0,
        )
        function = getattr(tool, "function", None)
        if callable(function):
            value = function(**{k: getattr(arguments, k) for k in type(arguments).model_fields})
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
            draft.raw = value
            return finish(results.shape_value(value, options), None, fitted=True)
        local_output = getattr(tool, "local_output", None)
        if callable(local_output):
            local = local_output(arguments)
            if local is not None:
                draft.raw = local
                return finish(results.shape_value(local, options), None, fitted=True)

        try:
            draft.request = tool.to_request(arguments)
        except (pydantic.ValidationError, ValueError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            message = (
                _format_validation(exc)
                if isinstance(exc, pydantic.ValidationError)
                else _first_line(str(exc))
            )
            return finish(
                results.error_output(
                    "invalid_arguments", message, "Fix the arguments and call the tool again."
                ),
                CallError(kind="invalid_arguments", message=message),
            )

        request = draft.request
        sender = self._get_sender(config)

        def attempt() -> Any:
            job.attempts += 1
            return sender.send(request, job.deadline)

        def on_retry(number: int, failure: Failure, wait_s: float) -> None:
            job.last_status = failure.status
            scrub = self._scrubber()
            # The server's message may echo the key; scrub it before it reaches a log or event.
            error = _call_error(failure)
            error = dataclasses.replace(error, message=scrub(error.message))
            _log.info(
                "tool call %s (%s) attempt %d failed (%s); retrying in %.3g s",
                call.call_id,
                scrub(call.name),
                number,
                error.message,
                wait_s,
            )
            trace.retried(number, error, wait_s)
            self._emit(
                config,
                job,
                "retried",
                error=error,
                wait_s=wait_s,
                elapsed=max(0.0, clock() - t0),
            )

        outcome = config.retry.call(
            attempt, deadline=job.deadline, idempotent=request.idempotent, on_retry=on_retry
        )
        if outcome.failure is not None:
            failure = outcome.failure
            job.last_status = failure.status if failure.status is not None else job.last_status
            if failure.kind == "internal_error" and outcome.exception is not None:
                raise outcome.exception
            error = _call_error(failure, last_status=job.last_status)
            return finish(self._failure_output(failure, request), error)

        draft.raw = outcome.value
        if draft.raw is None:
            failure = Failure(kind="invalid_response", message="the response body was empty")
            return finish(self._failure_output(failure, request), _call_error(failure))
        kind = getattr(tool, "kind", "search")
        if kind == "search":
            output = results.shape_search(draft.raw, options)
            if options.images:
                draft.images = tuple(results.search_images(draft.raw, options))
        else:
            output = results.shape_value(draft.raw, options)
        status = draft.raw.get("status") if isinstance(draft.raw, Mapping) else None
        if isinstance(status, str) and status.lower() == "failed":
            message = "the retriever execution failed"
            error_detail = draft.raw.get("error") if isinstance(draft.raw, Mapping) else None
            if error_detail:
                message += f": {_server_message({'error': error_detail})}"
            return finish(output, CallError(kind="execution_failed", message=message), fitted=True)
        return finish(output, None, fitted=True)

    def _prepare(
        self, job: _Job, config: DispatchConfig
    ) -> tuple[_ToolLike, dict[str, Any] | None, pydantic.BaseModel]:
        """Find the tool and validate the arguments, or raise :class:`_ModelMistake`."""
        call = job.call
        if job.duplicate:
            raise _ModelMistake(
                "duplicate_call",
                "duplicate_call",
                "This call id was already used in this turn; the call was not run again.",
                "Use the output of the first call with this id.",
            )
        tools = self._definitions()
        tool = tools.get(call.name)
        if tool is None:
            available = ", ".join(sorted(tools)) or "none"
            raise _ModelMistake(
                "unknown_tool",
                "unknown_tool",
                f"There is no tool named {results.truncate_text(call.name, 64)!r}.",
                f"Available tools: {available}.",
            )
        size = len(call.arguments_json.encode("utf-8"))
        if size > config.max_argument_bytes:
            raise _ModelMistake(
                "invalid_arguments",
                "arguments_too_large",
                f"The arguments are {size} bytes; the limit is {config.max_argument_bytes}.",
                "Send shorter arguments.",
            )
        text = call.arguments_json
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise _ModelMistake(
                "invalid_arguments",
                "invalid_arguments",
                f"The arguments are not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}).",
                "Send the arguments as a single JSON object.",
            ) from None
        if not isinstance(data, dict):
            raise _ModelMistake(
                "invalid_arguments",
                "invalid_arguments",
                f"The arguments must be a JSON object, not {_json_type(data)}.",
                "Send the arguments as a single JSON object.",
            )
        try:
            arguments = parse_arguments(tool.arguments_model, data)
        except pydantic.ValidationError as exc:
            message = _format_validation(exc)
            raise _ModelMistake(
                "invalid_arguments",
                "invalid_arguments",
                message,
                f"Fix these and call the tool again. {_parameters_hint(tool.arguments_model)}",
            ) from None
        return tool, data, arguments

    # -- helpers -------------------------------------------------------------------------------

    def _definitions(self) -> dict[str, _ToolLike]:
        definitions = getattr(self._tools, "definitions", None)
        if definitions is not None:
            return {d.name: d for d in definitions}
        getter = getattr(self._tools, "get", None)
        names = getattr(self._tools, "names", ())
        return {n: getter(n) for n in names} if callable(getter) else {}

    def _get_sender(self, config: DispatchConfig) -> Sender:
        with self._sender_lock:
            if self._sender is None:
                self._sender = Sender(
                    getattr(self._tools, "client", None),
                    max_connections=max(10, config.max_concurrency),
                    max_response_bytes=config.max_response_bytes,
                    intercept_statuses=frozenset(config.retry.retry_statuses)
                    | DEFAULT_RETRY_STATUSES,
                )
            return self._sender

    def _scrubber(self) -> _Scrubber:
        client = getattr(self._tools, "client", None)
        key = getattr(client, "api_key", None)
        return _Scrubber(key if isinstance(key, str) else None)

    def _failure_output(self, failure: Failure, request: MixpeekRequest) -> str:
        scrub = self._scrubber()
        status = failure.status
        if failure.kind == "deadline_exceeded":
            return _unavailable_output("the service did not answer in time")
        if failure.kind in ("connection_error", "timeout"):
            return _unavailable_output("the service could not be reached")
        if failure.kind == "invalid_response":
            return results.error_output(
                "temporarily_unavailable",
                "The search service sent a response that could not be read.",
                _UNAVAILABLE_HINT,
            )
        if failure.kind == "response_too_large":
            return results.error_output(
                "response_too_large",
                "The search returned more data than can be read.",
                "Narrow the query or lower limit.",
            )
        if failure.kind != "http_error" or status is None:
            return _internal_output()
        server = scrub(_server_message(failure.detail))
        said = f" The service said: {server}" if server else ""
        if status == 429 or status >= 500:
            reason = "rate limited" if status == 429 else f"server error {status}"
            return _unavailable_output(reason)
        if status in (401, 403):
            return results.error_output(
                "not_authorized",
                "The search tool is not authorized to run (a configuration problem on the "
                "application side, not something the arguments can fix).",
                "Continue without this tool.",
            )
        if status == 404:
            target = request.retriever_id or request.path
            return results.error_output(
                "not_found",
                f"The search service could not find {target!r}.{said}",
                "Continue without this tool, or use another one.",
            )
        if status in (400, 422):
            return results.error_output(
                "invalid_request",
                f"The search service rejected the request (HTTP {status}).{said}",
                "Check the arguments against the tool's parameters and try again.",
            )
        return results.error_output(
            "request_failed",
            f"The search request failed (HTTP {status}).{said}",
            "Continue without this tool.",
        )

    def _internal_error(
        self, job: _Job, config: DispatchConfig, exc: BaseException, *, started: float
    ) -> ToolCallResult:
        scrub = self._scrubber()
        message = scrub(f"internal error: {type(exc).__name__}: {_first_line(str(exc))}")
        error = CallError(kind="internal_error", message=message)
        result = ToolCallResult(
            call_id=job.call.call_id,
            name=job.call.name,
            arguments=None,
            output=_internal_output(),
            error=error,
            attempts=job.attempts,
            started_at=started,
            duration_s=max(0.0, time.time() - started),
            style=job.call.style,
        )
        if job.claim():
            formatted = scrub(
                "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            )
            # The traceback is logged pre-formatted (and scrubbed) rather than via exc_info,
            # so no exception text can carry a secret into a log record.
            _log.error(
                "tool call %s (%s) failed with an internal error\n%s",
                job.call.call_id,
                scrub(job.call.name),
                formatted,
            )
            self._emit(config, job, "failed", error=error, elapsed=result.duration_s)
        return result

    def _log_result(self, result: ToolCallResult) -> None:
        scrub = self._scrubber()
        name = scrub(result.name)
        if result.error is None:
            _log.debug(
                "tool call %s (%s) finished in %.3f s after %d attempt(s)",
                result.call_id,
                name,
                result.duration_s,
                result.attempts,
            )
            return
        level = (
            logging.INFO
            if result.error.kind
            in ("invalid_arguments", "unknown_tool", "duplicate_call", "execution_failed")
            else logging.WARNING
        )
        _log.log(
            level,
            "tool call %s (%s) failed: %s: %s (attempts=%d, status=%s)",
            result.call_id,
            name,
            result.error.kind,
            result.error.message,
            result.attempts,
            result.error.status,
        )

    def _emit(
        self,
        config: DispatchConfig,
        job: _Job,
        kind: Literal["started", "retried", "finished", "failed"],
        *,
        elapsed: float,
        error: CallError | None = None,
        wait_s: float | None = None,
    ) -> None:
        callback = config.on_call_event
        if callback is None:
            return
        if kind in ("started", "retried") and job.answered:
            return  # the call was already answered as overdue; stay quiet
        event = CallEvent(
            kind=kind,
            call_id=job.call.call_id,
            name=job.call.name,
            attempt=job.attempts,
            elapsed_s=elapsed,
            error=error,
            wait_s=wait_s,
        )
        try:
            callback(event)
        except Exception as exc:
            _log.warning(
                "on_call_event raised %s; ignoring it: %s",
                type(exc).__name__,
                self._scrubber()(_first_line(str(exc))),
            )


# -- formatting helpers -------------------------------------------------------------------------


def _unavailable_output(reason: str) -> str:
    return results.error_output(
        "temporarily_unavailable",
        f"The search is temporarily unavailable ({reason}).",
        _UNAVAILABLE_HINT,
    )


def _internal_output() -> str:
    return results.error_output(
        "internal_error",
        "An internal error occurred while running this tool.",
        "Continue without this tool.",
    )


def _fit_error_output(output: str, config: DispatchConfig) -> str:
    """``output`` within the token budget: an error's message and hint are cut shorter
    until it fits (search results are already shaped into the budget)."""
    fits = results.budget_check(config.output_budget_tokens, config.token_counter)
    if fits(output):
        return output
    try:
        payload = json.loads(output)
    except ValueError:
        return output
    error = payload.get("error") if isinstance(payload, dict) and len(payload) == 1 else None
    if not isinstance(error, dict):
        return output
    type_ = results.truncate_text(str(error.get("type") or "error"), 40)
    message = str(error.get("message") or "")
    hint = error.get("hint")
    hint = str(hint) if hint else None
    limit = max(len(message), len(hint or ""))
    while limit > 20:
        limit //= 2
        candidate = results.error_output(type_, message, hint, max_chars=limit)
        if fits(candidate):
            return candidate
    # Smallest useful form; fits the smallest allowed budget.
    return results.error_output(type_, message, max_chars=20)


def _call_error(failure: Failure, *, last_status: int | None = None) -> CallError:
    status = failure.status if failure.status is not None else last_status
    retryable = failure.retryable is not False and (
        failure.kind in ("deadline_exceeded", "connection_error", "timeout", "invalid_response")
        or (
            failure.kind == "http_error" and status is not None and (status == 429 or status >= 500)
        )
    )
    message = failure.message
    if failure.kind == "http_error":
        server = _server_message(failure.detail)
        if server:
            message = f"{message}: {server}"
    return CallError(kind=failure.kind, message=message, status=status, retryable=retryable)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _server_message(detail: Any, *, limit: int = 300) -> str:
    """The human part of an error body, briefly (never the whole body)."""
    message: Any = None
    if isinstance(detail, Mapping):
        error = detail.get("error")
        if isinstance(error, Mapping):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        if message is None:
            inner = detail.get("detail")
            if isinstance(inner, str):
                message = inner
            elif isinstance(inner, list):
                parts = []
                for item in inner[:5]:
                    if isinstance(item, Mapping):
                        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                message = "; ".join(parts)
            elif isinstance(inner, Mapping):
                return _server_message(inner, limit=limit)
        if message is None:
            message = detail.get("message")
    elif isinstance(detail, str):
        message = detail
    if not message:
        return ""
    return results.truncate_text(" ".join(str(message).split()), limit)


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return results.truncate_text(text, 40)


def _format_validation(exc: pydantic.ValidationError, *, limit: int = 5) -> str:
    """Pydantic errors, briefly: ``field: problem (got value)``; at most ``limit``."""
    problems = []
    errors = exc.errors(include_url=False)
    for error in errors[:limit]:
        loc = ".".join(str(p) for p in error.get("loc", ())) or "arguments"
        kind = error.get("type", "")
        if kind == "missing":
            problems.append(f"{loc}: required")
        elif kind == "extra_forbidden":
            problems.append(f"{loc}: not a parameter of this tool")
        else:
            msg = str(error.get("msg", "invalid value"))
            problems.append(f"{loc}: {msg} (got {_short(error.get('input'))})")
    if len(errors) > limit:
        problems.append(f"and {len(errors) - limit} more")
    noun = "problem" if len(errors) == 1 else "problems"
    return f"Invalid arguments ({len(errors)} {noun}): " + "; ".join(problems) + "."


def _parameters_hint(model: type[pydantic.BaseModel]) -> str:
    names = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        names.append(f"{wire} (required)" if info.is_required() else wire)
    return f"Parameters: {', '.join(names)}." if names else ""
