"""The one data shape passed from a tool definition to the transport.

A tool turns the model's validated arguments into a :class:`MixpeekRequest`; the
dispatcher sends it (with retries and a deadline) and shapes what comes back. Keeping
this as plain data means everything the model can influence is visible in one place,
and tests can assert on exactly what would be sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MixpeekRequest"]


@dataclass(frozen=True)
class MixpeekRequest:
    """One call to the Mixpeek API, fully decided before anything is sent."""

    method: Literal["GET", "POST"]
    """HTTP method."""

    path: str
    """Path below the API's ``/v1`` root, e.g. ``/retrievers/ret_1/execute`` (already
    percent-encoded; may carry a query string)."""

    body: dict[str, Any] | None = None
    """JSON body, or ``None`` for a GET."""

    idempotent: bool = True
    """Whether sending it twice is safe.

    A request with a write option is not, and is never retried.
    """

    retriever_id: str | None = None
    """The retriever this request executes or describes, when there is one."""

    labels: dict[str, str] = field(default_factory=dict)
    """Free-form labels for logs and records (never secrets)."""

    def encoded_body(self) -> bytes | None:
        """The body as compact UTF-8 JSON, or ``None`` when there is none."""
        if self.body is None:
            return None
        return json.dumps(
            self.body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
