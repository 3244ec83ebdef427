"""The deadline of one tool call, and a clock tests can move by hand.

A :class:`Deadline` is measured on two clocks at once: the retry policy's clock (which
tests replace with a :class:`ManualClock` so retry waits cost no real time) and the real
monotonic clock. Whatever the policy's clock says, the real one still bounds the call, so
a test with a hand-moved clock cannot hang on a silent server either. The transport asks
:meth:`Deadline.remaining` before every socket operation and gives that operation no more
than what is left: that is what makes the deadline hold against a server that drips one
byte at a time (a per-read timeout alone bounds each read, not the response).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "ManualClock"]


class Deadline:
    """A point in time after which a tool call must stop trying."""

    __slots__ = ("_clock", "_real_expires_at", "expires_at", "seconds")

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Start a deadline ``seconds`` from now, measured with ``clock`` (and real time)."""
        self.seconds = float(seconds)
        self._clock = clock
        self.expires_at = clock() + self.seconds
        self._real_expires_at = (
            self.expires_at if clock is time.monotonic else time.monotonic() + self.seconds
        )

    def remaining(self) -> float:
        """Seconds left on whichever clock runs out first (never negative)."""
        left = self.expires_at - self._clock()
        if self._clock is not time.monotonic:
            left = min(left, self._real_expires_at - time.monotonic())
        return max(0.0, left)

    def expired(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0.0

    def elapsed(self) -> float:
        """Seconds since the deadline was started, on the policy's clock."""
        return max(0.0, self.seconds - (self.expires_at - self._clock()))

    def __repr__(self) -> str:
        return f"Deadline(seconds={self.seconds:g}, remaining={self.remaining():.3f})"


class ManualClock:
    """A clock that only moves when told to: pass ``sleep=clock.sleep, clock=clock.now``.

    ``sleeps`` records every wait asked for, so a test can assert that a ``Retry-After: 1``
    was honoured as a one-second wait without spending the second. Thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        """Start the clock at ``start`` seconds."""
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> float:
        """The current time in seconds."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock forward by it (without blocking)."""
        with self._lock:
            self.sleeps.append(float(seconds))
            self._now += max(0.0, float(seconds))

    def advance(self, seconds: float) -> None:
        """Move the clock forward without recording a sleep."""
        with self._lock:
            self._now += seconds
