"""OpenTelemetry spans for tool calls (GenAI semantic conventions).

The dispatcher calls :func:`start_call` when a call starts, :meth:`CallTrace.retried` for
every retry and :meth:`CallTrace.end` with the finished result. With ``opentelemetry-api``
installed (the ``otel`` extra), each call becomes an ``execute_tool {name}`` span:

=============================== ==========================================================
``gen_ai.operation.name``       ``execute_tool``
``gen_ai.tool.name``            the tool name the model called
``gen_ai.tool.call.id``         the call id
``gen_ai.tool.type``            ``function`` (the model fills the arguments, we run it)
``gen_ai.data_source.id``       the retriever id (search, describe and explain tools)
``mixpeek.tool.kind``           ``search``, ``describe``, ``explain``, ``action``...
``mixpeek.request.limit``       the page size requested from Mixpeek
``mixpeek.response.documents``  documents the response returned
``mixpeek.response.status``     the execution status Mixpeek reported
``mixpeek.response.degraded``   whether Mixpeek reported a degraded execution
``mixpeek.attempts``            requests sent (retries included)
``mixpeek.deadline_exceeded``   whether the call ran out of time
``error.type``                  the error kind (``http_error``, ``invalid_arguments``...)
``http.response.status_code``   the last HTTP status of a failed call
=============================== ==========================================================

Each retry is a ``retry`` span event (attempt, error kind, status, wait). A failed call's
span status says its error kind. A call that stops without a result (its task cancelled,
Ctrl-C, a raising callback) still ends its span, with ``error.type`` ``cancelled``,
``interrupted`` or ``callback_failed``.

The arguments (``gen_ai.tool.call.arguments``) and the output the model sees
(``gen_ai.tool.call.result``) are recorded only when content capture is switched on, with
:func:`configure` or the ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
environment variable that other GenAI instrumentations use: they can hold user data. So can
error messages (they quote the arguments or the server's error text), so they are the status
description and the retry event's ``mixpeek.retry.reason`` only with content capture on. No
attribute ever carries a header, the API key or the base URL; error messages arrive already
scrubbed by the dispatcher.

Without ``opentelemetry-api`` nothing is imported (one failed import attempt, remembered)
and nothing is recorded. With it but no SDK configured, OpenTelemetry's no-op tracer makes
each call cost one non-recording span.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixpeek_openai.dispatch import CallError, ToolCallResult

__all__ = ["CAPTURE_CONTENT_ENV", "CallTrace", "configure", "start_call"]

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Environment variable that switches on recording arguments and results (``true``)."""

_SCOPE = "mixpeek_openai"
_log = logging.getLogger("mixpeek_openai.tracing")


class CallTrace:
    """One tool call's span (a no-op unless OpenTelemetry is installed)."""

    def retried(self, attempt: int, error: CallError, wait_s: float) -> None:
        """An attempt failed and another follows after ``wait_s`` seconds."""

    def end(self, result: ToolCallResult) -> None:
        """The call finished (cleanly or not); ``result`` says how."""

    def abandon(self, kind: str) -> None:
        """The call stopped without a result (cancelled, interrupted, a raising callback):
        the span ends with ``error.type`` = ``kind``. Nothing happens once it has ended."""


_NOOP = CallTrace()


class _Settings:
    """What :func:`configure` set; read by every :func:`start_call`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.api: Any = None  # the opentelemetry.trace module, once imported
        self.unavailable = False  # the import failed once: never try again
        self.provider: Any = None
        self.tracer: Any = None
        self.capture_content: bool | None = None
        self.warned = False


_settings = _Settings()


def configure(*, tracer_provider: Any = None, capture_content: bool | None = None) -> None:
    """Choose where tool spans go and whether they carry arguments and results.

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` to use instead of the global
            one (``opentelemetry.trace.get_tracer_provider()``); ``None`` goes back to it.
        capture_content: record ``gen_ai.tool.call.arguments`` and
            ``gen_ai.tool.call.result`` (``True``), never (``False``), or as the
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable says (``None``,
            the default).
    """
    with _settings.lock:
        _settings.provider = tracer_provider
        _settings.tracer = None
        _settings.capture_content = capture_content


def start_call(*, call_id: str, name: str, retriever_id: str | None, kind: str) -> CallTrace:
    """The span for one tool call (started now); a no-op without OpenTelemetry."""
    api = _api()
    if api is None:
        return _NOOP
    try:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.type": "function",
            "mixpeek.tool.kind": kind,
        }
        if retriever_id:
            attributes["gen_ai.data_source.id"] = retriever_id
        span = _tracer(api).start_span(
            f"execute_tool {name}", kind=api.SpanKind.INTERNAL, attributes=attributes
        )
        if not span.is_recording():
            return _NOOP
        return _SpanTrace(span, api, _capture_content())
    except Exception:
        _warn_once("could not start a tool span")
        return _NOOP


class _SpanTrace(CallTrace):
    """A recording span; every method is guarded so tracing never breaks a tool call."""

    __slots__ = ("_api", "_capture", "_ended", "_span")

    def __init__(self, span: Any, api: Any, capture: bool) -> None:
        self._span = span
        self._api = api
        self._capture = capture
        self._ended = False

    def retried(self, attempt: int, error: CallError, wait_s: float) -> None:
        try:
            attributes: dict[str, Any] = {
                "mixpeek.attempt": attempt,
                "error.type": error.kind,
                "mixpeek.retry.wait_s": float(wait_s),
            }
            if self._capture:  # the message may quote the model's arguments
                attributes["mixpeek.retry.reason"] = error.message
            if error.status is not None:
                attributes["http.response.status_code"] = error.status
            self._span.add_event("retry", attributes)
        except Exception:
            _warn_once("could not record a retry on a tool span")

    def end(self, result: ToolCallResult) -> None:
        error = result.error
        # The message may quote the model's arguments or the server's error text.
        said = None if error is None else error.message if self._capture else error.kind
        self._close(lambda: _result_attributes(result, capture=self._capture), said)

    def abandon(self, kind: str) -> None:
        self._close(lambda: {"error.type": kind}, kind)

    def _close(self, attributes: Callable[[], dict[str, Any]], error: str | None) -> None:
        """Record the last attributes (and an error status), then end the span, once."""
        if self._ended:
            return
        self._ended = True
        try:
            self._span.set_attributes(attributes())
            if error is not None:
                self._span.set_status(self._api.Status(self._api.StatusCode.ERROR, error))
        except Exception:
            _warn_once("could not record how a tool call ended on its span")
        finally:
            self._span.end()


def _result_attributes(result: ToolCallResult, *, capture: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {"mixpeek.attempts": result.attempts}
    request = result.request
    body = request.body if request is not None else None
    if isinstance(body, Mapping):
        limit = body.get("limit")
        if isinstance(limit, int) and not isinstance(limit, bool):
            attributes["mixpeek.request.limit"] = limit
    raw = result.raw
    if isinstance(raw, Mapping):
        documents = raw.get("documents")
        if isinstance(documents, list):
            attributes["mixpeek.response.documents"] = len(documents)
        status = raw.get("status")
        if isinstance(status, str):
            attributes["mixpeek.response.status"] = status
        degraded = bool(raw.get("degraded")) or (
            isinstance(status, str) and status.lower() == "degraded"
        )
        attributes["mixpeek.response.degraded"] = degraded
    error = result.error
    attributes["mixpeek.deadline_exceeded"] = (
        error is not None and error.kind == "deadline_exceeded"
    )
    if error is not None:
        attributes["error.type"] = error.kind
        if error.status is not None:
            attributes["http.response.status_code"] = error.status
    if capture:
        if result.arguments is not None:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(
                result.arguments, ensure_ascii=False, separators=(",", ":"), default=str
            )
        attributes["gen_ai.tool.call.result"] = result.output
    return attributes


def _api() -> Any:
    """``opentelemetry.trace``, or ``None`` when ``opentelemetry-api`` is not installed."""
    api = _settings.api
    if api is not None or _settings.unavailable:
        return api
    with _settings.lock:
        if _settings.api is None and not _settings.unavailable:
            try:
                from opentelemetry import trace
            except ImportError:
                _settings.unavailable = True
            else:
                _settings.api = trace
        return _settings.api


def _tracer(api: Any) -> Any:
    tracer = _settings.tracer
    if tracer is None:
        from mixpeek_openai import __version__

        with _settings.lock:
            provider = _settings.provider
            if provider is not None:
                tracer = provider.get_tracer(_SCOPE, __version__)
            else:
                # A ProxyTracer until the application sets a provider, then the real one.
                tracer = api.get_tracer(_SCOPE, __version__)
            _settings.tracer = tracer
    return tracer


def _capture_content() -> bool:
    explicit = _settings.capture_content
    if explicit is not None:
        return explicit
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def _warn_once(what: str) -> None:
    # Tracing must never fail a tool call; say so once, with the traceback, and go on.
    if not _settings.warned:
        _settings.warned = True
        _log.warning("%s; tool spans may be incomplete", what, exc_info=True)
