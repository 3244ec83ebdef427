"""The one retry layer: which failures are retried, how long to wait, when to give up.

Every request a tool call sends goes through :meth:`RetryPolicy.call` (sync) or
:meth:`RetryPolicy.acall` (async), built on `tenacity <https://tenacity.readthedocs.io>`_:
the policy supplies tenacity ``retry``, ``wait`` and ``stop`` strategies, shared by both,
and tenacity's ``Retrying`` / ``AsyncRetrying`` runs the loop. Nothing underneath retries
on its own (the transport sends each attempt exactly once, see
:mod:`mixpeek_openai._transport`), so the attempt count a caller sees is the number of
requests the server saw.

What is retried (by default):

* connection errors and timeouts;
* HTTP 429, 500, 502, 503 and 504 (``retry_statuses``);
* but never a response whose body says ``retryable: false``, never any other 4xx, and
  never a request that is not idempotent (one with a write option), unless the failure
  provably happened before anything was sent (the connection could not be opened).

How long to wait: the server's advice when it gives one (the ``Retry-After`` header, or the
error body's ``error.details.retry_after_seconds``, or the older
``detail.error.details.retry_after_seconds``), capped by ``max_wait_s``; otherwise an
exponential backoff with jitter. When the next wait would run past the call's
:class:`Deadline`, the layer gives up at once instead of sleeping for nothing.

Sleeping and the clock are injectable (``sleep=``, ``clock=``), so tests can observe the
waits without really waiting (the async loop awaits ``asyncio.sleep`` unless a ``sleep``
is injected, which it then calls)::

    clock = ManualClock()
    policy = RetryPolicy(sleep=clock.sleep, clock=clock.now)
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

import tenacity

from mixpeek_openai._deadline import Deadline, ManualClock
from mixpeek_openai._decode import BadJSON, decode_body
from mixpeek_openai._http11 import ProtocolViolation, ResponseTooLarge
from mixpeek_openai._transport import (
    Cancelled,
    ConnectFailed,
    ConnectionDropped,
    DeadlineReached,
    ReadTimedOut,
    Response,
)
from mixpeek_openai.calls import ErrorKind
from mixpeek_openai.errors import ConfigurationError

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Deadline",
    "ErrorKind",
    "Failure",
    "InvalidBody",
    "ManualClock",
    "RetryOutcome",
    "RetryPolicy",
    "StatusFailure",
    "classify_exception",
]

T = TypeVar("T")

DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses retried by default."""


@dataclass(frozen=True)
class Failure:
    """What one failed attempt tells the retry layer (and, in the end, the caller)."""

    kind: ErrorKind
    """The category of failure."""
    message: str
    """Short human-readable description (never contains headers or secrets)."""
    status: int | None = None
    """HTTP status, when there was a response."""
    retry_after_s: float | None = None
    """The server's advised wait, when it gave one."""
    retryable: bool | None = None
    """The server's ``retryable`` flag from the error body, when it gave one."""
    sent: bool = True
    """Whether the request may have reached the server (``False`` only when provably not)."""
    detail: Any = None
    """The parsed error body, when there was one."""


@dataclass(frozen=True)
class RetryOutcome(Generic[T]):
    """What :meth:`RetryPolicy.call` ended with: a value, or the last failure and why."""

    value: T | None
    """The function's return value on success."""
    failure: Failure | None
    """The last failure (``kind`` is ``deadline_exceeded`` when the deadline ended it)."""
    exception: BaseException | None
    """The last exception raised by the function, if it failed."""
    attempts: int
    """How many times the function ran."""
    gave_up: Literal["success", "not_retryable", "max_attempts", "deadline"]
    """Why the loop ended."""

    @property
    def ok(self) -> bool:
        """Whether the function eventually returned."""
        return self.failure is None


def _default_random() -> float:
    return random.random()


@dataclass(frozen=True)
class RetryPolicy:
    """How a tool call's request is retried. Frozen; derive variants with :meth:`replace`.

    Example::

        RetryPolicy(max_attempts=3, max_wait_s=5.0)
        RetryPolicy().replace(retry_statuses=RetryPolicy().retry_statuses - {500})
        RetryPolicy.none()                     # never retry
    """

    max_attempts: int = 4
    """Attempts in total, including the first (1 = no retry)."""
    initial_backoff_s: float = 0.5
    """First backoff when the server advises no wait; doubles each retry."""
    max_backoff_s: float = 8.0
    """Largest backoff (before jitter)."""
    jitter: float = 0.25
    """Random extra wait, as a fraction of the backoff (0 = none). Advised waits get none."""
    max_wait_s: float = 10.0
    """Largest wait honoured when the server advises one (``Retry-After``)."""
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    """HTTP statuses that are retried (4xx other than 429 should not be listed)."""
    retry_connection_errors: bool = True
    """Retry when the connection failed or dropped."""
    retry_timeouts: bool = True
    """Retry when an attempt timed out (within the call's deadline)."""
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    """How to wait between attempts (tenacity's ``sleep=``); inject one in tests."""
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    """Monotonic clock in seconds used for deadlines; inject one with ``sleep`` in tests."""
    random: Callable[[], float] = field(default=_default_random, compare=False, repr=False)
    """Source of jitter in ``[0, 1)``."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1.")
        for name in ("initial_backoff_s", "max_backoff_s", "jitter", "max_wait_s"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"RetryPolicy.{name} must not be negative.")
        # Accept any iterable of ints (a set, a list) but store a frozenset so the policy
        # stays hashable and immutable.
        object.__setattr__(self, "retry_statuses", frozenset(self.retry_statuses))

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # -- decisions -----------------------------------------------------------------------

    def should_retry(self, failure: Failure, *, idempotent: bool) -> bool:
        """Whether an attempt that failed this way is worth another try."""
        if failure.kind == "deadline_exceeded" or failure.retryable is False:
            return False
        if failure.kind == "connection_error":
            return self.retry_connection_errors and (idempotent or not failure.sent)
        if failure.kind == "timeout":
            return self.retry_timeouts and (idempotent or not failure.sent)
        if failure.kind == "http_error":
            return idempotent and failure.status in self.retry_statuses
        return False

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (1 = first retry) when none is advised."""
        base = min(self.max_backoff_s, self.initial_backoff_s * (2 ** max(0, retry_number - 1)))
        return float(base + base * self.jitter * self.random())

    def wait_for(self, failure: Failure, retry_number: int) -> float:
        """The wait before the next attempt after ``failure``."""
        if failure.retry_after_s is not None:
            return min(failure.retry_after_s, self.max_wait_s)
        return self.backoff(retry_number)

    def new_deadline(self, seconds: float) -> Deadline:
        """A :class:`Deadline` ``seconds`` from now on this policy's clock."""
        return Deadline(seconds, clock=self.clock)

    # -- the loop ------------------------------------------------------------------------

    def tenacity_kwargs(
        self,
        *,
        deadline: Deadline | None = None,
        idempotent: bool = True,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying`` implementing this policy.

        Use them to apply the same policy to your own calls
        (``tenacity.Retrying(**policy.tenacity_kwargs())(fn)``). Failures are classified
        with :func:`classify_exception`.
        """
        plan = _Plan(self, deadline or Deadline(float("inf")), idempotent)
        kwargs: dict[str, Any] = {
            "retry": plan.retry,
            "wait": plan.wait,
            "stop": plan.stop,
            "sleep": self.sleep,
            "reraise": True,
        }
        if before_sleep is not None:
            kwargs["before_sleep"] = before_sleep
        return kwargs

    def call(
        self,
        fn: Callable[[], T],
        *,
        deadline: Deadline,
        idempotent: bool = True,
        on_retry: Callable[[int, Failure, float], None] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> RetryOutcome[T]:
        """Run ``fn`` under this policy until it returns, fails for good, or the deadline.

        Never raises for failures of ``fn`` (``KeyboardInterrupt``, cancellation and
        friends pass through): the outcome says what happened. ``on_retry(attempt,
        failure, wait_s)`` is called before each wait. ``sleep`` replaces ``time.sleep``
        (not an injected sleep) for the waits, e.g. with one that a cancellation ends.
        """
        plan = _Plan(self, deadline, idempotent, on_retry)
        waiter = sleep if sleep is not None and self.sleep is time.sleep else self.sleep
        retrying = tenacity.Retrying(sleep=waiter, **plan.strategies())
        try:
            value = retrying(plan.guard(fn))
        except Exception as exc:
            return plan.failed(exc)
        return plan.succeeded(value)

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        deadline: Deadline,
        idempotent: bool = True,
        on_retry: Callable[[int, Failure, float], None] | None = None,
    ) -> RetryOutcome[T]:
        """:meth:`call` for a coroutine function: the same decisions, awaited waits."""
        plan = _Plan(self, deadline, idempotent, on_retry)
        retrying = tenacity.AsyncRetrying(sleep=self._async_sleep(), **plan.strategies())
        guarded = plan.guard(fn)

        async def attempt() -> T:
            return await guarded()

        try:
            value: T = await retrying(attempt)
        except Exception as exc:
            return plan.failed(exc)
        return plan.succeeded(value)

    def _async_sleep(self) -> Callable[[float], Awaitable[None]]:
        if self.sleep is time.sleep:
            return asyncio.sleep
        sleep = self.sleep

        async def injected(seconds: float) -> None:
            sleep(seconds)

        return injected


def _exception_of(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


def _internal(message: str) -> Failure:
    return Failure(kind="internal_error", message=message)


class _Plan:
    """The tenacity strategies of one call, sharing their decisions.

    The next wait is computed once per attempt and reused by both ``stop`` (to give up
    when it would pass the deadline) and ``wait``; tenacity versions differ in which of
    the two they ask first, and jitter must not make them disagree. The sync and async
    loops use the same plan; only tenacity's driver differs.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        deadline: Deadline,
        idempotent: bool,
        on_retry: Callable[[int, Failure, float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.deadline = deadline
        self.idempotent = idempotent
        self.on_retry = on_retry
        self.attempts = 0
        self.stopped_by: Literal["max_attempts", "deadline"] | None = None
        self._waits: dict[int, float] = {}
        self._classified: dict[int, Failure] = {}

    def strategies(self) -> dict[str, Any]:
        return {
            "retry": self.retry,
            "wait": self.wait,
            "stop": self.stop,
            "reraise": True,
            "before_sleep": self.before_sleep,
        }

    def guard(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn``, counted, and refused once the deadline has passed."""

        def attempt() -> T:
            self.attempts += 1
            if self.deadline.expired():
                raise DeadlineReached("the call's deadline passed before this attempt", sent=False)
            return fn()

        return attempt

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        if self.on_retry is None:
            return
        exc = _exception_of(state)
        failure = self.classify(exc) if exc is not None else _internal("no exception")
        self.on_retry(state.attempt_number, failure, self.planned_wait(state))

    def succeeded(self, value: T) -> RetryOutcome[T]:
        return RetryOutcome(
            value=value, failure=None, exception=None, attempts=self.attempts, gave_up="success"
        )

    def failed(self, exc: Exception) -> RetryOutcome[Any]:
        failure = self.classify(exc)
        if self.stopped_by is not None:
            gave_up: Literal["not_retryable", "max_attempts", "deadline"] = self.stopped_by
        else:
            gave_up = "deadline" if failure.kind == "deadline_exceeded" else "not_retryable"
        if gave_up == "deadline" or (
            failure.kind in ("timeout", "connection_error") and self.deadline.expired()
        ):
            gave_up = "deadline"
            if failure.kind != "deadline_exceeded":
                failure = dataclasses.replace(
                    failure,
                    kind="deadline_exceeded",
                    message=(
                        f"no answer within the {self.deadline.seconds:g} s deadline "
                        f"(last problem: {failure.message})"
                    ),
                )
        return RetryOutcome(
            value=None, failure=failure, exception=exc, attempts=self.attempts, gave_up=gave_up
        )

    def classify(self, exc: BaseException) -> Failure:
        key = id(exc)
        cached = self._classified.get(key)
        if cached is None:
            cached = classify_exception(exc)
            self._classified = {key: cached}  # only the latest exception is ever asked again
        return cached

    def planned_wait(self, state: tenacity.RetryCallState) -> float:
        number = state.attempt_number
        if number not in self._waits:
            exc = _exception_of(state)
            failure = self.classify(exc) if exc is not None else _internal("no exception")
            self._waits[number] = max(0.0, self.policy.wait_for(failure, number))
        return self._waits[number]

    def retry(self, state: tenacity.RetryCallState) -> bool:
        exc = _exception_of(state)
        if exc is None:
            return False
        return self.policy.should_retry(self.classify(exc), idempotent=self.idempotent)

    def wait(self, state: tenacity.RetryCallState) -> float:
        return self.planned_wait(state)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            self.stopped_by = "max_attempts"
            return True
        if self.deadline.remaining() <= self.planned_wait(state):
            self.stopped_by = "deadline"
            return True
        return False


# -- classification -------------------------------------------------------------------------


class StatusFailure(Exception):
    """A response whose status is not a success, raised so the retry layer can decide.

    ``str()`` shows only the status; the body is kept parsed (as JSON, or a short text).
    """

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.status = response.status
        self.headers = {k: v for k, v in response.headers.items() if k == "retry-after"}
        self.detail = _parse_body(response.body)


class InvalidBody(Exception):
    """A success status whose body breaks the API's contract (``str()`` says how)."""


def classify_exception(exc: BaseException) -> Failure:
    """Turn what an attempt raised into a :class:`Failure` the policy can decide on.

    Knows the transport's exceptions, :class:`StatusFailure` and :class:`InvalidBody`.
    Anything else is an ``internal_error`` (not retried).
    """
    if isinstance(exc, (DeadlineReached, Cancelled)):
        return Failure(kind="deadline_exceeded", message=str(exc), sent=exc.sent)
    if isinstance(exc, StatusFailure):
        advised = _retry_after_header(exc.headers)
        if advised is None:
            advised = _retry_after_body(exc.detail)
        return Failure(
            kind="http_error",
            message=f"HTTP {exc.status}",
            status=exc.status,
            retry_after_s=advised,
            retryable=_retryable_flag(exc.detail),
            detail=exc.detail,
        )
    if isinstance(exc, ResponseTooLarge):
        return Failure(kind="response_too_large", message=str(exc))
    if isinstance(exc, (InvalidBody, ProtocolViolation, BadJSON)):
        return Failure(kind="invalid_response", message=f"the response was unusable: {exc}")
    if isinstance(exc, ConnectFailed):
        kind: ErrorKind = "timeout" if "timed out" in str(exc) else "connection_error"
        return Failure(kind=kind, message=str(exc), sent=False)
    if isinstance(exc, ReadTimedOut):
        return Failure(kind="timeout", message=str(exc))
    if isinstance(exc, ConnectionDropped):
        return Failure(kind="connection_error", message=str(exc))
    return Failure(kind="internal_error", message=f"unexpected {type(exc).__name__}")


def _parse_body(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return decode_body(body)
    except BadJSON:
        return body[:500].decode("utf-8", errors="replace")


def _error_details(payload: Any) -> list[Mapping[str, Any]]:
    """The ``details`` objects of an error body: ``error.details`` and the older
    ``detail.error.details`` (the same places the ``mixpeek`` client looks)."""
    if not isinstance(payload, Mapping):
        return []
    found: list[Any] = []
    error = payload.get("error")
    if isinstance(error, Mapping):
        found.append(error.get("details"))
    detail = payload.get("detail")
    if isinstance(detail, Mapping):
        inner = detail.get("error")
        if isinstance(inner, Mapping):
            found.append(inner.get("details"))
    return [d for d in found if isinstance(d, Mapping)]


def _seconds(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    # NaN, infinities and negative delays are no advice: the backoff decides instead.
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return None
    return seconds


def _retry_after_header(headers: Mapping[str, str]) -> float | None:
    value = None
    for key, item in headers.items():
        if key.lower() == "retry-after":
            value = item
            break
    if value is None:
        return None
    seconds = _seconds(value.strip())
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _retry_after_body(payload: Any) -> float | None:
    for details in _error_details(payload):
        seconds = _seconds(details.get("retry_after_seconds"))
        if seconds is not None:
            return seconds
    return None


def _retryable_flag(payload: Any) -> bool | None:
    for details in _error_details(payload):
        flag = details.get("retryable")
        if isinstance(flag, bool):
            return flag
    return None
