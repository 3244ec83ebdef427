"""Running a batch of the model's tool calls: one output per call id, in order.

:class:`Dispatcher` is what ``MixpeekTools.handle`` / ``ahandle`` / ``dispatch`` /
``adispatch`` delegate to. It reads the calls (:func:`~mixpeek_openai.calls.normalize_calls`),
gives each its deadline (counted from the moment the batch is dispatched, so a call queued
behind others gets no extra time), runs each through the single-call pipeline
(:mod:`mixpeek_openai._pipeline`) and returns one :class:`ToolCallResult` per call, in
the order of the calls, whatever failed.

How calls run:

* **Sync, one call:** in the caller's thread. The transport bounds every socket operation
  by the deadline, so no thread is needed to enforce it.
* **Sync, several calls:** on one long-lived pool of ``max_concurrency`` worker threads per
  tool set, all started before the first batch is submitted. If the caller is interrupted
  (KeyboardInterrupt) or a callback raises, every call of the batch is cancelled: its
  sockets are shut down and its retry waits end, so no worker is left busy, and the
  exception propagates.
* **Async:** on the event loop, natively: no thread per call. Each call is a task; at most
  ``max_concurrency`` run at once. Cancelling the caller cancels them all and aborts their
  connections.

Guarantees: model mistakes become outputs that say what to fix; a repeated call id (the
OpenAI APIs never send one) is run once and each repeat answered with a
``duplicate_call`` error; the API key is scrubbed from everything emitted; and a call
returns by its deadline plus a fraction of a second whatever the server does.

Observability: the ``mixpeek_openai.dispatch`` logger, ``DispatchConfig.on_call_event``
(:class:`CallEvent`), and OpenTelemetry spans when ``opentelemetry-api`` is installed
(:mod:`mixpeek_openai.tracing`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mixpeek_openai._pipeline import CallbackFailed, Job, Pipeline
from mixpeek_openai.calls import (
    CallError,
    CallEvent,
    CallStyle,
    ToolCall,
    ToolCallResult,
    normalize_calls,
)
from mixpeek_openai.config import DispatchConfig
from mixpeek_openai.definitions import ToolDefinition

__all__ = [
    "CallError",
    "CallEvent",
    "DispatchConfig",
    "Dispatcher",
    "ToolCallResult",
    "ToolSource",
]

_GRACE_S = 1.0  # how long past the deadline a batch waits for a worker (never needed)
_SLICE_S = 0.2  # longest a waiting caller goes without looking for a pending Ctrl-C
_THREAD_PREFIX = "mixpeek-openai-call"


class ToolSource(Protocol):
    """What a dispatcher runs calls against (``MixpeekTools`` is one)."""

    @property
    def definitions(self) -> Sequence[ToolDefinition]:
        """The tool definitions, names unique."""
        ...

    @property
    def client(self) -> Any:
        """The Mixpeek client requests are sent with (``None`` if no tool sends any)."""
        ...


class Dispatcher:
    """Runs tool calls against a :class:`ToolSource`. Keep one per tool set: it owns the
    connections and the worker threads; :meth:`close` releases them."""

    def __init__(self, tools: ToolSource, config: DispatchConfig | None = None) -> None:
        """Bind to ``tools``; its ``config`` is used unless ``config`` is given here."""
        self._source = tools
        self._config = config
        self._lock = threading.Lock()
        self._pipeline: Pipeline | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._by_name: tuple[Sequence[ToolDefinition], dict[str, ToolDefinition]] | None = None

    @property
    def config(self) -> DispatchConfig:
        """The configuration in effect (the given one, else the tool set's, else defaults)."""
        if self._config is not None:
            return self._config
        config = getattr(self._source, "config", None)
        return config if isinstance(config, DispatchConfig) else DispatchConfig()

    # -- entry points ------------------------------------------------------------------------

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        """Run every call in ``calls`` and return one result per call, in order."""
        pipeline = self._get_pipeline()
        jobs = _plan(normalize_calls(calls, style=style), pipeline.config)
        if len(jobs) <= 1:
            return [self._unwrap(pipeline.run, job) for job in jobs]
        pipeline.check_client()
        executor = self._get_executor(pipeline.config)
        # Each call runs in a copy of the caller's context (so its span nests under the
        # caller's, and context variables set by the caller are seen by its functions).
        futures = [
            executor.submit(contextvars.copy_context().run, pipeline.run, job) for job in jobs
        ]
        try:
            done = _wait_interruptibly(futures, pipeline.config.deadline_s + _GRACE_S)
            failed = next(
                (e for f in futures if f in done and (e := f.exception()) is not None), None
            )
            if failed is not None:
                raise _original(failed)  # a raising callback stops the batch at once
            return [
                _collected(future) if future in done else pipeline.overdue(job)
                for job, future in zip(jobs, futures, strict=True)
            ]
        except BaseException:
            _cancel(jobs, futures)
            raise
        finally:
            for job in jobs:
                job.scope.cancel()  # stops anything still running (only if overdue)

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        """Async :meth:`dispatch`: the calls run as tasks on the event loop."""
        pipeline = self._get_pipeline()
        jobs = _plan(normalize_calls(calls, style=style), pipeline.config)
        if len(jobs) <= 1:
            return [await self._aunwrap(pipeline, job) for job in jobs]
        pipeline.check_client()
        semaphore = asyncio.Semaphore(pipeline.config.max_concurrency)

        async def run(job: Job) -> ToolCallResult:
            async with semaphore:
                return await pipeline.arun(job)

        tasks = [asyncio.ensure_future(run(job)) for job in jobs]
        try:
            done, pending = await asyncio.wait(
                tasks,
                timeout=pipeline.config.deadline_s + _GRACE_S,
                return_when=asyncio.FIRST_EXCEPTION,  # a raising callback stops the batch at once
            )
        except BaseException:
            await _cancel_tasks(tasks)
            raise
        if pending:
            await _cancel_tasks(list(pending))
        failed = next(
            (t.exception() for t in tasks if t in done and t.exception() is not None), None
        )
        if failed is not None:
            await _cancel_tasks(tasks)
            raise _original(failed)
        return [
            task.result() if task in done else pipeline.overdue(job)
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
        """Close connections and stop the worker threads (a later call starts anew)."""
        with self._lock:
            pipeline, self._pipeline = self._pipeline, None
            executor, self._executor = self._executor, None
        if pipeline is not None:
            pipeline.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    # -- plumbing ----------------------------------------------------------------------------

    def _definitions(self) -> Mapping[str, ToolDefinition]:
        definitions = self._source.definitions
        cached = self._by_name
        if cached is None or cached[0] is not definitions:
            cached = (definitions, {d.name: d for d in definitions})
            self._by_name = cached
        return cached[1]

    def _get_pipeline(self) -> Pipeline:
        config = self.config
        with self._lock:
            pipeline = self._pipeline
            if pipeline is None or pipeline.config is not config:
                if pipeline is not None:
                    pipeline.close()
                pipeline = Pipeline(
                    tools=self._definitions, client=self._source.client, config=config
                )
                self._pipeline = pipeline
            return pipeline

    def _get_executor(self, config: DispatchConfig) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                workers = config.max_concurrency
                executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=workers, thread_name_prefix=_THREAD_PREFIX
                )
                # Start every worker now, not one per submitted call during a batch.
                barrier = threading.Barrier(workers)
                for future in [executor.submit(barrier.wait) for _ in range(workers)]:
                    future.result()
                self._executor = executor
            return self._executor

    @staticmethod
    def _unwrap(run: Any, job: Job) -> ToolCallResult:
        try:
            result: ToolCallResult = run(job)
        except CallbackFailed as failed:
            raise _original(failed) from None
        return result

    @staticmethod
    async def _aunwrap(pipeline: Pipeline, job: Job) -> ToolCallResult:
        try:
            return await pipeline.arun(job)
        except CallbackFailed as failed:
            raise _original(failed) from None


def _plan(calls: Sequence[ToolCall], config: DispatchConfig) -> list[Job]:
    seen: set[str] = set()
    jobs = []
    for call in calls:
        jobs.append(
            Job(
                call,
                duplicate=call.call_id in seen,
                deadline=config.retry.new_deadline(config.deadline_s),
            )
        )
        seen.add(call.call_id)
    return jobs


def _collected(future: concurrent.futures.Future[ToolCallResult]) -> ToolCallResult:
    exc = future.exception()
    if exc is None:
        return future.result()
    raise _original(exc)


def _original(exc: BaseException) -> BaseException:
    """The caller's own exception inside a :class:`CallbackFailed`, else ``exc``."""
    if isinstance(exc, CallbackFailed):
        return exc.error
    return exc


def _wait_interruptibly(
    futures: Sequence[concurrent.futures.Future[Any]], timeout: float
) -> set[concurrent.futures.Future[Any]]:
    """The futures done within ``timeout`` (or until one raised), waited for in short slices.

    A signal normally wakes the waiting thread at once, but one only flagged for Python
    (``_thread.interrupt_main()``, a signal landing while the wait restarts) is acted on
    when the thread next runs Python code: slices keep Ctrl-C prompt in every case.
    """
    deadline = time.monotonic() + timeout
    pending = set(futures)
    done: set[concurrent.futures.Future[Any]] = set()
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        finished, pending_now = concurrent.futures.wait(
            pending, timeout=min(left, _SLICE_S), return_when=concurrent.futures.FIRST_EXCEPTION
        )
        done |= finished
        pending = set(pending_now)
        if any(f.exception() is not None for f in finished):
            break
    return done


def _cancel(jobs: Sequence[Job], futures: Sequence[concurrent.futures.Future[Any]]) -> None:
    """Stop every call of an interrupted batch and wait (briefly) for its workers."""
    for job in jobs:
        job.scope.cancel()
    for future in futures:
        future.cancel()
    concurrent.futures.wait(futures, timeout=_GRACE_S)


async def _cancel_tasks(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
