"""Faults that :class:`~mixpeek_openai.testing.FakeMixpeek` can inject into its responses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Fault", "FaultKind"]

FaultKind = Literal[
    "status",
    "delay",
    "reset",
    "hang",
    "malformed_json",
    "empty_body",
    "huge_body",
    "execution_status",
    "response",
]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour of the fake Mixpeek API.

    Build faults with the classmethod constructors rather than the raw fields:

    ``Fault.status(code, retry_after=, retry_after_seconds=, retryable=, message=, body=)``
        Answer with an HTTP error in the API's error shape
        (``{"success": false, "status", "error": {"message", "type", "details"}}``).
        ``retry_after`` sets the ``Retry-After`` header; ``retry_after_seconds`` and
        ``retryable`` go into ``error.details`` (where the ``mixpeek`` client reads them).
        ``body`` replaces the whole JSON body.
    ``Fault.delay(seconds)``
        Answer normally after an extra delay.
    ``Fault.reset()``
        Drop the connection (TCP reset) without sending a response.
    ``Fault.hang(seconds=60.0)``
        Send nothing for ``seconds`` (longer than the client's read timeout), then drop the
        connection. Closing the fake ends the wait at once.
    ``Fault.malformed_json(status=200)``
        Answer with a truncated, unparseable JSON body.
    ``Fault.empty_body(status=200)``
        Answer with a zero-length body.
    ``Fault.huge_body(size_bytes=10_000_000)``
        Answer normally, padded into a valid JSON body of at least ``size_bytes``.
    ``Fault.failed_execution(error=...)`` / ``Fault.degraded_execution(reason=...)``
        An execute (or every query of a batch) completes with HTTP 200 but
        ``status: "failed"`` (with ``error``) or ``status: "degraded"`` (with ``degraded``
        entries and ``warnings``).
    ``Fault.response(status, body, headers=None)``
        Answer with exactly this body (a JSON-serialisable value, ``str`` or ``bytes``).
    """

    kind: FaultKind
    http_status: int | None = None
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    size_bytes: int = 0
    message: str | None = None
    retry_after_seconds: float | None = None
    retryable: bool | None = None
    execution_status: Literal["failed", "degraded"] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | str | None = None,
        retry_after_seconds: float | None = None,
        retryable: bool | None = None,
        message: str | None = None,
        body: Any = None,
    ) -> Fault:
        """An HTTP error ``code``; see the class docstring for the options."""
        if not 100 <= code <= 599:
            raise ValueError(f"HTTP status must be between 100 and 599, got {code}")
        headers: tuple[tuple[str, str], ...] = ()
        if retry_after is not None:
            value = retry_after if isinstance(retry_after, str) else _format_seconds(retry_after)
            headers = (("Retry-After", value),)
        return cls(
            kind="status",
            http_status=code,
            body=body,
            headers=headers,
            message=message,
            retry_after_seconds=retry_after_seconds,
            retryable=retryable,
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, ``seconds`` later."""
        _check_seconds(seconds)
        return cls(kind="delay", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Drop the connection without a response (the client sees a reset)."""
        return cls(kind="reset")

    @classmethod
    def hang(cls, seconds: float = 60.0) -> Fault:
        """Send nothing for ``seconds``, then drop the connection (a read timeout)."""
        _check_seconds(seconds)
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def malformed_json(cls, status: int = 200) -> Fault:
        """Answer ``status`` with a body that is not valid JSON."""
        return cls(kind="malformed_json", http_status=status)

    @classmethod
    def empty_body(cls, status: int = 200) -> Fault:
        """Answer ``status`` with an empty body."""
        return cls(kind="empty_body", http_status=status)

    @classmethod
    def huge_body(cls, size_bytes: int = 10_000_000) -> Fault:
        """Answer normally, padded to a valid JSON body of at least ``size_bytes``."""
        if size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        return cls(kind="huge_body", size_bytes=size_bytes)

    @classmethod
    def failed_execution(
        cls, error: str = "Stage feature_search failed: index unavailable"
    ) -> Fault:
        """An execution that ends with ``status: "failed"`` and this ``error`` (HTTP 200)."""
        return cls(kind="execution_status", execution_status="failed", message=error)

    @classmethod
    def degraded_execution(
        cls, reason: str = "Vector index replica lagging; results may be incomplete"
    ) -> Fault:
        """An execution that ends with ``status: "degraded"``, ``degraded`` entries (HTTP 200)."""
        return cls(kind="execution_status", execution_status="degraded", message=reason)

    @classmethod
    def response(cls, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with exactly ``body`` (JSON value, ``str`` or ``bytes``) and ``status``."""
        if not isinstance(body, (str, bytes)):
            try:
                json.dumps(body)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"Fault.response needs a JSON value, str or bytes as its body: {exc}"
                ) from None
        return cls(
            kind="response",
            http_status=status,
            body=body,
            headers=tuple((headers or {}).items()),
        )


def _check_seconds(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("seconds must be >= 0")


def _format_seconds(seconds: float) -> str:
    # Retry-After is integral in HTTP, but the mixpeek client parses floats, so keep
    # fractions rather than rounding a short test wait up to a whole second.
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))
