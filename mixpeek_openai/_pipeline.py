"""One tool call, from the model's arguments to the output it reads.

::

    ToolCall -> find the tool -> decode the arguments once (bounded) -> validate
        -> the tool's MixpeekRequest (or its function, or a local answer, or the cache)
        -> send with retries within the deadline   (retries + _transport)
        -> read: status, secrets out of the bytes, bounded decode, contract check
        -> shape for the model                     (results)
        -> ToolCallResult, built in one place (_finish)

:class:`Pipeline` runs it sync (:meth:`Pipeline.run`) or async (:meth:`Pipeline.arun`).
Both drive one generator, :meth:`Pipeline._core`, which holds every decision and
yields only what needs I/O (sending with retries, calling a user function); the drivers
perform that sync or async and send the outcome back, or throw the exception in.
Nothing the model or the server sends can make a step raise: every such problem ends
in :meth:`Pipeline._finish` with an output that says what happened. An ``internal_error``
output means a bug in this package (it is logged with its traceback).

Callbacks (``DispatchConfig.on_call_event``) are the caller's code: an exception one
raises is not turned into an output but stops the batch (:class:`CallbackFailed` carries
it past the pipeline's own error handling; the dispatcher re-raises the original).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic

from mixpeek_openai import _outputs, results, tracing
from mixpeek_openai._deadline import Deadline
from mixpeek_openai._decode import BadJSON, decode_arguments, decode_body
from mixpeek_openai._outputs import Notice
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai._search_cache import SearchCache
from mixpeek_openai._secrets import Scrubber
from mixpeek_openai._transport import (
    AsyncTransport,
    CancelScope,
    Endpoint,
    Response,
    SyncTransport,
)
from mixpeek_openai.calls import CallError, CallEvent, ToolCall, ToolCallResult
from mixpeek_openai.config import DispatchConfig
from mixpeek_openai.definitions import ToolDefinition
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.retries import Failure, InvalidBody, RetryOutcome, StatusFailure
from mixpeek_openai.schema import parse_arguments

__all__ = ["CallbackFailed", "Job", "Pipeline"]

_log = logging.getLogger("mixpeek_openai.dispatch")

_QUIET_KINDS = frozenset(
    {"invalid_arguments", "unknown_tool", "duplicate_call", "execution_failed"}
)


class CallbackFailed(BaseException):
    """An ``on_call_event`` callback raised ``error``; the batch stops and re-raises it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


@dataclass
class Job:
    """One call of a batch: its deadline, its progress, and whether it was answered."""

    call: ToolCall
    duplicate: bool
    deadline: Deadline
    started_at: float = field(default_factory=time.time)
    scope: CancelScope = field(default_factory=CancelScope)
    attempts: int = 0
    last_status: int | None = None
    trace: tracing.CallTrace | None = None
    _answered: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self) -> bool:
        """``True`` for the first answer only (the call's own, or the overdue one)."""
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
class _Step:
    """A call whose arguments validated: what to run, and how to shape its answer."""

    tool: ToolDefinition
    arguments: dict[str, Any]
    validated: pydantic.BaseModel
    options: results.ShapeOptions
    request: MixpeekRequest | None = None
    cache_key: str | None = None


@dataclass(frozen=True)
class _CallFunction:
    """What the core asks its driver for: call the tool's user function."""

    step: _Step


@dataclass(frozen=True)
class _Send:
    """What the core asks its driver for: send the request, with retries, and read it."""

    step: _Step
    request: MixpeekRequest
    on_retry: Callable[[int, Failure, float], None]


_Effect = _CallFunction | _Send


class _Stepper:
    """Steps a call's core: :attr:`effect` is what it waits for, ``None`` once it returned."""

    __slots__ = ("_core", "_result", "effect")

    def __init__(self, core: Generator[_Effect, Any, ToolCallResult]) -> None:
        self._core = core
        self._result: ToolCallResult | None = None
        self.effect: _Effect | None = None
        self._advance(core.send, None)

    def _advance(self, step: Callable[[Any], _Effect], value: Any) -> None:
        try:
            self.effect = step(value)
        except StopIteration as done:
            self.effect, self._result = None, done.value

    def send(self, value: Any) -> None:
        """Give the core the outcome of its effect."""
        self._advance(self._core.send, value)

    def throw(self, exc: BaseException) -> None:
        """Raise ``exc`` inside the core, where its effect was awaited."""
        self._advance(self._core.throw, exc)

    def result(self) -> ToolCallResult:
        """What the core returned."""
        if self._result is None:
            raise RuntimeError("the call's core has not returned yet")
        return self._result


@dataclass
class _Answer:
    """What a step ended with, before it becomes a :class:`ToolCallResult`."""

    output: str
    error: CallError | None = None
    raw: Any = None
    images: tuple[str, ...] = ()
    cached: bool = False
    arguments: dict[str, Any] | None = None


class Pipeline:
    """Runs single tool calls for one tool set and one :class:`DispatchConfig`."""

    def __init__(
        self,
        *,
        tools: Callable[[], Mapping[str, ToolDefinition]],
        client: Any,
        config: DispatchConfig,
    ) -> None:
        """``tools()`` gives the current definitions by name; ``client`` the Mixpeek client
        (``None`` when no tool sends requests)."""
        self._tools = tools
        self._client = client
        self.config = config
        key = getattr(client, "api_key", None)
        self.scrub = Scrubber(key if isinstance(key, str) else None)
        self._fits = results.budget_check(config.output_budget_tokens, config.token_counter)
        self._lock = threading.Lock()
        self._endpoint: Endpoint | None = None
        self._sync: SyncTransport | None = None
        self._async: AsyncTransport | None = None
        self._cache = (
            SearchCache(config.search_cache_ttl_s, config.search_cache_size, config.retry.clock)
            if config.search_cache_ttl_s is not None
            else None
        )

    # -- transports ----------------------------------------------------------------------

    def endpoint(self) -> Endpoint:
        """Where requests go (read off the client once; raises ConfigurationError)."""
        with self._lock:
            if self._endpoint is None:
                if self._client is None:
                    raise ConfigurationError(
                        "This tool set has no Mixpeek client to send requests with; pass one."
                    )
                self._endpoint = Endpoint.from_client(self._client)
            return self._endpoint

    def check_client(self) -> None:
        """Raise :class:`ConfigurationError` now if the client cannot send requests."""
        if self._client is not None:
            self.endpoint()

    def sync_transport(self) -> SyncTransport:
        endpoint = self.endpoint()
        with self._lock:
            if self._sync is None:
                self._sync = SyncTransport(
                    endpoint,
                    max_connections=self.config.max_connections,
                    max_response_bytes=self.config.max_response_bytes,
                )
            return self._sync

    def async_transport(self) -> AsyncTransport:
        endpoint = self.endpoint()
        with self._lock:
            if self._async is None:
                self._async = AsyncTransport(
                    endpoint,
                    max_connections=self.config.max_connections,
                    max_response_bytes=self.config.max_response_bytes,
                )
            return self._async

    def close(self) -> None:
        """Close every connection (a later call opens new ones)."""
        with self._lock:
            sync, self._sync = self._sync, None
            async_, self._async = self._async, None
        if sync is not None:
            sync.close()
        if async_ is not None:
            async_.close()
        if self._cache is not None:
            self._cache.clear()

    # -- the call, once; two drivers --------------------------------------------------

    def _core(self, job: Job) -> Generator[_Effect, Any, ToolCallResult]:
        """The whole call, written once: it yields what needs I/O (sending the request
        with retries, calling a user function) and is sent the outcome, or has the
        exception thrown in, so the same ``except`` clauses decide in both drivers."""
        trace = self._start(job)
        try:
            step = self._prepare(job)
            if isinstance(step, _Answer):
                return self._finish(job, trace, step)
            answer = self._without_request(job, step)
            if answer is None:
                if step.tool.function is not None:
                    answer = yield _CallFunction(step)
                else:
                    request = self._request(step)
                    outcome = yield _Send(step, request, self._on_retry(job, trace))
                    answer = self._concluded(job, step, outcome)
            return self._finish(job, trace, answer, step)
        except (CallbackFailed, ConfigurationError) as exc:
            trace.abandon("callback_failed" if isinstance(exc, CallbackFailed) else "configuration")
            raise  # the caller's own mistake: not something to tell the model
        except Exception as exc:
            return self._internal(job, trace, exc)
        except BaseException as exc:
            # Cancelled, interrupted, or the generator closed: no result, but the span ends.
            trace.abandon("interrupted" if isinstance(exc, KeyboardInterrupt) else "cancelled")
            raise

    def run(self, job: Job) -> ToolCallResult:
        """Run ``job`` in this thread; never raises but for the caller's own callbacks."""
        core = _Stepper(self._core(job))
        while (effect := core.effect) is not None:
            try:
                if isinstance(effect, _CallFunction):
                    value: Any = self._function_sync(job, effect.step)
                else:
                    value = self._send_sync(job, effect)
            except BaseException as exc:
                core.throw(exc)
            else:
                core.send(value)
        return core.result()

    async def arun(self, job: Job) -> ToolCallResult:
        """:meth:`run` on the event loop; nothing is sent from a thread."""
        core = _Stepper(self._core(job))
        while (effect := core.effect) is not None:
            try:
                if isinstance(effect, _CallFunction):
                    value: Any = await self._function_async(job, effect.step)
                else:
                    value = await self._send_async(job, effect)
            except BaseException as exc:
                core.throw(exc)
            else:
                core.send(value)
        return core.result()

    def _send_sync(self, job: Job, send: _Send) -> RetryOutcome[Any]:
        transport = self.sync_transport()
        request, step = send.request, send.step
        return self.config.retry.call(
            lambda: self._read(step, transport.send(request, job.deadline, job.scope)),
            deadline=job.deadline,
            idempotent=request.idempotent,
            on_retry=send.on_retry,
            sleep=job.scope.sleep,
        )

    async def _send_async(self, job: Job, send: _Send) -> RetryOutcome[Any]:
        transport = self.async_transport()
        request, step = send.request, send.step

        async def attempt() -> Any:
            return self._read(step, await transport.send(request, job.deadline))

        return await self.config.retry.acall(
            attempt,
            deadline=job.deadline,
            idempotent=request.idempotent,
            on_retry=send.on_retry,
        )

    def overdue(self, job: Job) -> ToolCallResult:
        """The answer for a call that did not finish in time (a last line of defence)."""
        failure = Failure(
            kind="deadline_exceeded",
            message=f"no result within the {job.deadline.seconds:g} s deadline",
            status=job.last_status,
        )
        answer = _Answer(
            _outputs.service_failure(failure, None, self.scrub.text).render(self._fits),
            _outputs.call_error(failure, last_status=job.last_status),
        )
        trace = job.trace or tracing.start_call(**_trace_fields(job, None))
        return self._finish(job, trace, answer)

    # -- steps shared by both drivers ----------------------------------------------------

    def _start(self, job: Job) -> tracing.CallTrace:
        self._emit(job, "started")
        tool = self._tools().get(job.call.name)
        job.trace = tracing.start_call(**_trace_fields(job, tool))
        return job.trace

    def _prepare(self, job: Job) -> _Step | _Answer:
        """Find the tool and validate the arguments, or say what the model must fix."""
        call = job.call
        if job.duplicate:
            return self._mistake(_outputs.duplicate_call(), "duplicate_call")
        tools = self._tools()
        tool = tools.get(call.name)
        if tool is None:
            return self._mistake(_outputs.unknown_tool(call.name, list(tools)), "unknown_tool")
        try:
            data = decode_arguments(call.arguments_json, max_bytes=self.config.max_argument_bytes)
        except BadJSON as exc:
            return self._mistake(_outputs.unusable_arguments(str(exc)), "invalid_arguments")
        if not isinstance(data, dict):
            return self._mistake(_outputs.not_an_object(data), "invalid_arguments")
        model = tool.arguments_model
        try:
            validated = parse_arguments(model, data)
        except pydantic.ValidationError as exc:
            answer = self._mistake(_outputs.invalid_arguments(exc, model), "invalid_arguments")
            answer.arguments = data
            return answer
        options = results.ShapeOptions(
            budget_tokens=self.config.output_budget_tokens,
            max_text_chars=self.config.max_text_chars,
            score_digits=self.config.score_digits,
            projection=tool.projection,
            count_tokens=self.config.token_counter,
            query=_query_text(validated, tool.page_size_field),
            layout=tool.layout,
            images=tool.images if call.style == "responses" else 0,
            offset=_offset(validated, tool),
            offset_field=tool.offset_field,
        )
        return _Step(tool=tool, arguments=data, validated=validated, options=options)

    def _without_request(self, job: Job, step: _Step) -> _Answer | None:
        """A describe tool's local answer, or a cached search; ``None`` if neither."""
        tool = step.tool
        if tool.function is None and tool.local_answer is not None:
            local = tool.local_output(step.validated)
            if local is not None:
                return self._shaped(step, local)
        if self._cache is not None and tool.kind == "search":
            step.cache_key = SearchCache.key(
                tool.name, step.validated.model_dump(mode="json", exclude_none=True)
            )
            hit = self._cache.get(step.cache_key)
            if hit is not None:
                answer = self._shaped(step, hit)
                answer.cached = True
                return answer
        return None

    def _request(self, step: _Step) -> MixpeekRequest:
        try:
            step.request = step.tool.to_request(step.validated)
        except ConfigurationError:
            raise
        except pydantic.ValidationError as exc:
            raise _Rejected(_outputs.format_validation(exc)) from None
        except ValueError as exc:
            raise _Rejected(_outputs.exception_line(exc)) from None
        return step.request

    def _read(self, step: _Step, response: Response) -> Any:
        """A response as data, or an exception the retry layer classifies."""
        body = self.scrub.data(response.body)
        if not 200 <= response.status < 300:
            raise StatusFailure(Response(response.status, response.headers, body))
        value = decode_body(body)
        _check_contract(step.tool.kind, value)
        return value

    def _concluded(self, job: Job, step: _Step, outcome: RetryOutcome[Any]) -> _Answer:
        job.attempts = outcome.attempts
        failure = outcome.failure
        if failure is not None:
            if failure.status is not None:
                job.last_status = failure.status
            if failure.kind == "internal_error" and outcome.exception is not None:
                raise outcome.exception
            notice = _outputs.service_failure(failure, step.request, self.scrub.text)
            return _Answer(
                notice.render(self._fits),
                _outputs.call_error(failure, last_status=job.last_status),
            )
        raw = outcome.value
        answer = self._shaped(step, raw)
        status = raw.get("status") if isinstance(raw, dict) else None
        if isinstance(raw, dict) and isinstance(status, str) and status.lower() == "failed":
            message = "the retriever execution failed"
            server = _outputs.server_message({"error": raw.get("error")})
            answer.error = CallError(
                kind="execution_failed", message=f"{message}: {server}" if server else message
            )
        elif self._cache is not None and step.cache_key is not None:
            self._cache.put(step.cache_key, raw)
        return answer

    def _shaped(self, step: _Step, raw: Any) -> _Answer:
        """``raw`` shaped for the model (a too-deep value is the server's fault)."""
        try:
            if step.tool.kind == "search":
                output = results.shape_search(raw, step.options)
                images = (
                    tuple(results.search_images(raw, step.options)) if step.options.images else ()
                )
            elif isinstance(raw, str) and self._fits(text := results.utf8_safe(raw)):
                output, images = text, ()
            else:
                output, images = results.shape_value(raw, step.options), ()
        except RecursionError:
            failure = Failure(kind="invalid_response", message="the response is nested too deeply")
            return _Answer(
                _outputs.service_failure(failure, step.request, self.scrub.text).render(self._fits),
                _outputs.call_error(failure),
            )
        return _Answer(output, raw=raw, images=images)

    # -- user functions ------------------------------------------------------------------

    def _function_sync(self, job: Job, step: _Step) -> _Answer:
        function = step.tool.function
        assert function is not None  # only function tools get here
        try:
            value = function(**_keywords(step.validated))
            if inspect.isawaitable(value):
                value = _run_coroutine(value, job.deadline)
        except (TimeoutError, asyncio.TimeoutError):
            return self._function_timeout(job)
        except Exception as exc:
            return self._function_error(exc)
        return self._shaped(step, value)

    async def _function_async(self, job: Job, step: _Step) -> _Answer:
        function = step.tool.function
        assert function is not None  # only function tools get here
        remaining = job.deadline.remaining()
        try:
            if inspect.iscoroutinefunction(function):
                value = await asyncio.wait_for(function(**_keywords(step.validated)), remaining)
            else:
                # A blocking function must not stall the event loop.
                value = await asyncio.wait_for(
                    asyncio.to_thread(function, **_keywords(step.validated)), remaining
                )
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, job.deadline.remaining())
        except (TimeoutError, asyncio.TimeoutError):
            return self._function_timeout(job)
        except Exception as exc:
            return self._function_error(exc)
        return self._shaped(step, value)

    def _function_timeout(self, job: Job) -> _Answer:
        failure = Failure(
            kind="deadline_exceeded",
            message=f"the function did not return within the {job.deadline.seconds:g} s deadline",
        )
        notice = Notice(
            "temporarily_unavailable",
            "The tool did not finish in time.",
            "Try again later, or continue without this tool.",
        )
        return _Answer(notice.render(self._fits), _outputs.call_error(failure))

    def _function_error(self, exc: Exception) -> _Answer:
        notice = _outputs.function_failed(exc, self.scrub.text)
        message = self.scrub.text(f"{type(exc).__name__}: {_outputs.exception_line(exc)}")
        return _Answer(
            notice.render(self._fits), CallError(kind="execution_failed", message=message)
        )

    # -- results, events, logs -----------------------------------------------------------

    def _mistake(self, notice: Notice, kind: Any) -> _Answer:
        return _Answer(notice.render(self._fits), CallError(kind=kind, message=notice.message))

    def _finish(
        self, job: Job, trace: tracing.CallTrace, answer: _Answer, step: _Step | None = None
    ) -> ToolCallResult:
        """The one place a :class:`ToolCallResult` is built."""
        output = self.scrub.text(answer.output)  # a safety net: the body was scrubbed
        error = answer.error
        if error is not None and self.scrub.contains(error.message):
            error = CallError(
                kind=error.kind,
                message=self.scrub.text(error.message),
                status=error.status,
                retryable=error.retryable,
            )
        arguments = step.arguments if step is not None else answer.arguments
        result = ToolCallResult(
            call_id=job.call.call_id,
            name=job.call.name,
            arguments=arguments,
            output=output,
            raw=answer.raw,
            error=error,
            attempts=job.attempts,
            started_at=job.started_at,
            duration_s=job.deadline.elapsed(),
            request=step.request if step is not None else None,
            style=job.call.style,
            images=answer.images if error is None else (),
            cached=answer.cached,
        )
        if job.claim():
            trace.end(result)
            self._log_result(result)
            self._emit(job, "failed" if error is not None else "finished", error=error)
        return result

    def _internal(self, job: Job, trace: tracing.CallTrace, exc: Exception) -> ToolCallResult:
        if isinstance(exc, _Rejected):
            notice = _outputs.rejected_arguments(exc.message)
            return self._finish(
                job,
                trace,
                _Answer(notice.render(self._fits), CallError("invalid_arguments", exc.message)),
            )
        said = _outputs.exception_line(exc)
        text = self.scrub.text(f"internal error: {type(exc).__name__}: {said}")
        if job.answered:
            return self._finish(job, trace, _Answer(_outputs.internal().render(self._fits)))
        # Logged pre-formatted and scrubbed (not via exc_info), so no exception text can
        # carry a secret into a log record.
        formatted = self.scrub.text("".join(traceback.format_exception(exc)))
        _log.error(
            "tool call %s (%s) failed with an internal error\n%s",
            job.call.call_id,
            self.scrub.text(job.call.name),
            formatted,
        )
        answer = _Answer(
            _outputs.internal().render(self._fits), CallError(kind="internal_error", message=text)
        )
        return self._finish(job, trace, answer)

    def _on_retry(
        self, job: Job, trace: tracing.CallTrace
    ) -> Callable[[int, Failure, float], None]:
        def on_retry(number: int, failure: Failure, wait_s: float) -> None:
            job.attempts = number
            if failure.status is not None:
                job.last_status = failure.status
            error = _outputs.call_error(failure)
            error = CallError(
                kind=error.kind,
                message=self.scrub.text(error.message),
                status=error.status,
                retryable=error.retryable,
            )
            _log.info(
                "tool call %s (%s) attempt %d failed (%s); retrying in %.3g s",
                job.call.call_id,
                self.scrub.text(job.call.name),
                number,
                error.message,
                wait_s,
            )
            trace.retried(number, error, wait_s)
            self._emit(job, "retried", error=error, wait_s=wait_s)

        return on_retry

    def _log_result(self, result: ToolCallResult) -> None:
        name = self.scrub.text(result.name)
        if result.error is None:
            _log.debug(
                "tool call %s (%s) finished in %.3f s after %d attempt(s)",
                result.call_id,
                name,
                result.duration_s,
                result.attempts,
            )
            return
        level = logging.INFO if result.error.kind in _QUIET_KINDS else logging.WARNING
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
        job: Job,
        kind: Literal["started", "retried", "finished", "failed"],
        *,
        error: CallError | None = None,
        wait_s: float | None = None,
    ) -> None:
        callback = self.config.on_call_event
        if callback is None:
            return
        event = CallEvent(
            kind=kind,
            call_id=job.call.call_id,
            name=job.call.name,
            attempt=job.attempts,
            elapsed_s=job.deadline.elapsed(),
            error=error,
            wait_s=wait_s,
        )
        try:
            callback(event)
        except Exception as exc:
            raise CallbackFailed(exc) from None


# -- helpers ----------------------------------------------------------------------------------


class _Rejected(Exception):
    """The tool refused validated arguments while building its request."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_contract(kind: str, value: Any) -> None:
    """Raise :class:`InvalidBody` when a success body breaks the API's contract."""
    if not isinstance(value, dict):
        raise InvalidBody(f"the body is {_outputs.json_type(value)}, not a JSON object")
    if kind != "search":
        return
    documents = value.get("documents")
    if documents is None:
        documents = value.get("results")
    if documents is None:
        status = value.get("status")
        if isinstance(status, str) and status.lower() == "failed":
            return
        raise InvalidBody("the body has no documents list")
    if not isinstance(documents, list):
        raise InvalidBody(f"documents is {_outputs.json_type(documents)}, not a list")
    for document in documents:
        if not isinstance(document, dict):
            raise InvalidBody("documents holds something other than objects")
        score = document.get("score")
        if isinstance(score, float) and score - score != 0.0:  # inf or nan
            raise InvalidBody("a document's score is not a finite number")


def _keywords(validated: pydantic.BaseModel) -> dict[str, Any]:
    return {name: getattr(validated, name) for name in type(validated).model_fields}


def _query_text(validated: pydantic.BaseModel, page_field: str | None) -> str | None:
    words = [
        value
        for name, value in validated
        if isinstance(value, str) and name != page_field and value.strip()
    ]
    return " ".join(words) or None


def _offset(validated: pydantic.BaseModel, tool: ToolDefinition) -> int:
    """Documents before the requested page (the offset, rounded down to a page boundary)."""
    if not tool.offset_field:
        return 0
    skip = getattr(validated, tool.offset_field, None)
    if not isinstance(skip, int) or isinstance(skip, bool) or skip <= 0:
        return 0
    size = getattr(validated, tool.page_size_field or "", None) or tool.max_page_size or 1
    return skip // size * size if skip >= size else 0


def _trace_fields(job: Job, tool: ToolDefinition | None) -> dict[str, Any]:
    return {
        "call_id": job.call.call_id,
        "name": job.call.name,
        "retriever_id": tool.retriever_id if tool is not None else None,
        "kind": tool.kind if tool is not None else "unknown",
    }


def _run_coroutine(awaitable: Any, deadline: Deadline) -> Any:
    """Run an async user function's coroutine to completion from sync code."""

    async def bounded() -> Any:
        return await asyncio.wait_for(awaitable, deadline.remaining())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # Called from inside a running event loop's thread: run it on a loop of its own.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(bounded())
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="mixpeek-openai-function", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
