"""RetryPolicy decisions and its tenacity loop, on a manual clock (no real waits)."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import tenacity

from mixpeek_openai._decode import BadJSON
from mixpeek_openai._http11 import ProtocolViolation, Response
from mixpeek_openai._transport import (
    ConnectFailed,
    ConnectionDropped,
    DeadlineReached,
    ReadTimedOut,
)
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.retries import (
    Deadline,
    Failure,
    InvalidBody,
    ManualClock,
    RetryPolicy,
    StatusFailure,
    classify_exception,
)


def http(status: int, headers: dict[str, str] | None = None, **details: Any) -> StatusFailure:
    body: dict[str, Any] = {"error": {"message": "boom"}}
    if details:
        body["error"]["details"] = details
    return StatusFailure(Response(status, headers or {}, json.dumps(body).encode()))


def failing(*errors: BaseException, value: str = "ok") -> Callable[[], str]:
    """A function raising ``errors`` one call at a time, then returning ``value``."""
    pending = list(errors)

    def fn() -> str:
        if pending:
            raise pending.pop(0)
        return value

    return fn


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def policy(clock: ManualClock) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0)


# -- decisions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "idempotent", "expected"),
    [
        (Failure("http_error", "x", status=429), True, True),
        (Failure("http_error", "x", status=500), True, True),
        (Failure("http_error", "x", status=502), True, True),
        (Failure("http_error", "x", status=503), True, True),
        (Failure("http_error", "x", status=504), True, True),
        (Failure("http_error", "x", status=400), True, False),
        (Failure("http_error", "x", status=404), True, False),
        (Failure("http_error", "x", status=409), True, False),
        (Failure("http_error", "x", status=422), True, False),
        (Failure("http_error", "x", status=503, retryable=False), True, False),
        (Failure("connection_error", "x", sent=True), True, True),
        (Failure("timeout", "x"), True, True),
        (Failure("invalid_response", "x"), True, False),
        (Failure("deadline_exceeded", "x"), True, False),
        # Not idempotent: only a failure that provably sent nothing is retried.
        (Failure("http_error", "x", status=503), False, False),
        (Failure("connection_error", "x", sent=True), False, False),
        (Failure("timeout", "x", sent=True), False, False),
        (Failure("connection_error", "x", sent=False), False, True),
        (Failure("timeout", "x", sent=False), False, True),
    ],
)
def test_should_retry(failure: Failure, idempotent: bool, expected: bool) -> None:
    assert RetryPolicy().should_retry(failure, idempotent=idempotent) is expected


def test_retry_statuses_are_configurable() -> None:
    policy = RetryPolicy(retry_statuses={429})  # type: ignore[arg-type]
    assert policy.retry_statuses == frozenset({429})
    assert not policy.should_retry(Failure("http_error", "x", status=503), idempotent=True)
    assert hash(policy) == hash(RetryPolicy(retry_statuses=frozenset({429})))


def test_backoff_grows_caps_and_jitters() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=3.0, jitter=0.5, random=lambda: 1.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [0.75, 1.5, 3.0, 4.5]
    assert RetryPolicy(jitter=0).backoff(1) == 0.5


def test_advised_waits_are_capped_and_not_jittered() -> None:
    policy = RetryPolicy(max_wait_s=5.0, jitter=1.0, random=lambda: 1.0)
    assert policy.wait_for(Failure("http_error", "x", retry_after_s=2.0), 1) == 2.0
    assert policy.wait_for(Failure("http_error", "x", retry_after_s=60.0), 1) == 5.0


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError, match="max_wait_s"):
        RetryPolicy(max_wait_s=-1)


def test_policies_compose_by_replacing() -> None:
    base = RetryPolicy(max_attempts=3)
    tighter = base.replace(max_wait_s=1.0)
    assert (tighter.max_attempts, tighter.max_wait_s) == (3, 1.0)
    assert base.max_wait_s != 1.0
    assert RetryPolicy.none().max_attempts == 1


# -- classification ----------------------------------------------------------------------------


def test_classifies_mixpeek_errors_with_advice() -> None:
    failure = classify_exception(http(503, retry_after_seconds=3, retryable=True))
    assert (failure.kind, failure.status, failure.retry_after_s, failure.retryable) == (
        "http_error",
        503,
        3.0,
        True,
    )
    legacy = {"detail": {"error": {"details": {"retry_after_seconds": 4}}}}
    response = Response(429, {}, json.dumps(legacy).encode())
    assert classify_exception(StatusFailure(response)).retry_after_s == 4.0


@pytest.mark.parametrize(
    ("exc", "kind", "sent"),
    [
        (ConnectFailed("could not connect (refused)", sent=False), "connection_error", False),
        (ConnectFailed("timed out connecting", sent=False), "timeout", False),
        (ReadTimedOut("timed out waiting for the response"), "timeout", True),
        (ConnectionDropped("reset", no_response=False), "connection_error", True),
        (DeadlineReached("late", sent=False), "deadline_exceeded", False),
        (ProtocolViolation("short body"), "invalid_response", True),
        (InvalidBody("not an object"), "invalid_response", True),
        (ValueError("Expecting value"), "internal_error", True),
        (RuntimeError("bug"), "internal_error", True),
    ],
)
def test_classifies_transport_errors(exc: BaseException, kind: str, sent: bool) -> None:
    failure = classify_exception(exc)
    assert (failure.kind, failure.sent) == (kind, sent)


def test_classifies_malformed_json() -> None:
    assert classify_exception(BadJSON("it is not valid JSON")).kind == "invalid_response"


def test_a_redirect_is_an_http_error_that_is_not_retried() -> None:
    failure = classify_exception(http(302, {"location": "/elsewhere"}))
    assert (failure.kind, failure.status) == ("http_error", 302)
    assert not RetryPolicy().should_retry(failure, idempotent=True)


# -- the loop ------------------------------------------------------------------------------------


def test_call_retries_then_succeeds(policy: RetryPolicy, clock: ManualClock) -> None:
    retries: list[tuple[int, int | None, float]] = []
    outcome = policy.call(
        failing(http(503), http(429, retry_after_seconds=2)),
        deadline=policy.new_deadline(20),
        on_retry=lambda n, f, w: retries.append((n, f.status, w)),
    )
    assert outcome.ok and outcome.value == "ok"
    assert (outcome.attempts, outcome.gave_up) == (3, "success")
    assert retries == [(1, 503, 0.5), (2, 429, 2.0)]
    assert clock.sleeps == [0.5, 2.0]


def test_call_stops_at_max_attempts(clock: ManualClock) -> None:
    policy = RetryPolicy(max_attempts=3, sleep=clock.sleep, clock=clock.now, jitter=0)
    outcome = policy.call(failing(*(http(502) for _ in range(5))), deadline=Deadline(60))
    assert not outcome.ok
    assert (outcome.attempts, outcome.gave_up) == (3, "max_attempts")
    assert outcome.failure is not None and outcome.failure.status == 502
    assert isinstance(outcome.exception, StatusFailure)


def test_call_does_not_retry_client_errors(policy: RetryPolicy, clock: ManualClock) -> None:
    outcome = policy.call(failing(http(422)), deadline=policy.new_deadline(20))
    assert (outcome.attempts, outcome.gave_up) == (1, "not_retryable")
    assert clock.sleeps == []


def test_call_gives_up_when_the_next_wait_passes_the_deadline(
    policy: RetryPolicy, clock: ManualClock
) -> None:
    outcome = policy.call(
        failing(http(429, retry_after_seconds=5)), deadline=policy.new_deadline(3)
    )
    assert (outcome.attempts, outcome.gave_up) == (1, "deadline")
    assert outcome.failure is not None
    assert (outcome.failure.kind, outcome.failure.status) == ("deadline_exceeded", 429)
    assert clock.sleeps == []


def test_call_never_sleeps_past_the_deadline(clock: ManualClock) -> None:
    policy = RetryPolicy(max_attempts=1000, sleep=clock.sleep, clock=clock.now, jitter=0)
    deadline = policy.new_deadline(20)
    outcome = policy.call(failing(*(http(503) for _ in range(1000))), deadline=deadline)
    assert outcome.gave_up == "deadline"
    assert sum(clock.sleeps) < 20
    assert 2 < outcome.attempts < 20


def test_non_idempotent_requests_are_not_retried_after_sending(policy: RetryPolicy) -> None:
    sent = ConnectionDropped("dropped", no_response=False)
    outcome = policy.call(failing(sent), deadline=policy.new_deadline(20), idempotent=False)
    assert outcome.attempts == 1
    unsent = ConnectFailed("could not connect (refused)", sent=False)
    outcome = policy.call(failing(unsent), deadline=policy.new_deadline(20), idempotent=False)
    assert outcome.ok and outcome.attempts == 2


def test_tenacity_kwargs_apply_the_policy_to_any_call(
    policy: RetryPolicy, clock: ManualClock
) -> None:
    retrying = tenacity.Retrying(**policy.tenacity_kwargs(deadline=policy.new_deadline(20)))
    assert retrying(failing(http(504))) == "ok"
    assert clock.sleeps == [0.5]


def test_an_http_date_retry_after_is_honoured(policy: RetryPolicy) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    failure = classify_exception(StatusFailure(Response(503, {"retry-after": when}, b"")))
    assert failure.retry_after_s is not None and 25 <= failure.retry_after_s <= 31
    garbage = classify_exception(StatusFailure(Response(503, {"retry-after": "soon"}, b"not json")))
    assert garbage.retry_after_s is None and garbage.detail == "not json"


@pytest.mark.parametrize("advice", ["-5", "nan", "inf", "-inf"])
def test_a_retry_after_that_is_no_delay_leaves_the_wait_to_the_backoff(
    policy: RetryPolicy, clock: ManualClock, advice: str
) -> None:
    failure = classify_exception(StatusFailure(Response(503, {"retry-after": advice}, b"")))
    assert failure.retry_after_s is None
    failing_503 = StatusFailure(Response(503, {"retry-after": advice}, b""))
    outcome = policy.call(failing(failing_503), deadline=policy.new_deadline(20))
    assert outcome.ok and clock.sleeps == [0.5]  # the first backoff, not "retry at once"


def test_deadline_on_a_manual_clock(clock: ManualClock) -> None:
    deadline = Deadline(2, clock=clock.now)
    assert deadline.remaining() == pytest.approx(2, abs=0.5) and not deadline.expired()
    clock.advance(2.5)
    assert deadline.remaining() == 0 and deadline.expired()


def test_a_manual_clock_cannot_stretch_a_deadline_past_real_time(clock: ManualClock) -> None:
    # The manual clock never moves, but the real one still ends the deadline (a nanosecond
    # passes between creating it and asking, on any machine).
    deadline = Deadline(1e-9, clock=clock.now)
    assert deadline.expired()


async def test_acall_shares_the_decisions_of_call(clock: ManualClock) -> None:
    policy = RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0)
    errors = [http(503), http(429, retry_after_seconds=2)]

    async def attempt() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    outcome = await policy.acall(attempt, deadline=policy.new_deadline(20))
    assert outcome.ok and outcome.value == "ok" and outcome.attempts == 3
    assert clock.sleeps == [0.5, 2.0]
