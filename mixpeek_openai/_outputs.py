"""Everything the model reads about a failed tool call, built as data and rendered once.

A failure becomes a :class:`Notice` (a type, what happened, what to do) in one of the
constructors below, and :meth:`Notice.render` turns it into the output text exactly once,
fitted into the token budget by cutting the message and hint, never by cutting JSON. The
caller's :class:`~mixpeek_openai.calls.CallError` is built here too, from the same facts,
so the model and the caller are told the same story (the caller in more detail).

Model mistakes get a hint that says what to change; service failures say whether trying
again later could help; nothing here ever echoes a request header.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.calls import CallError
from mixpeek_openai.results import error_output, truncate_text, utf8_safe
from mixpeek_openai.retries import Failure

__all__ = [
    "Notice",
    "call_error",
    "duplicate_call",
    "exception_line",
    "function_failed",
    "internal",
    "invalid_arguments",
    "json_type",
    "not_an_object",
    "rejected_arguments",
    "server_message",
    "service_failure",
    "unavailable",
    "unknown_tool",
    "unusable_arguments",
]

_UNAVAILABLE_HINT = "Try again later, or continue without this tool."
_FIX_HINT = "Send the arguments as a single JSON object."


@dataclass(frozen=True)
class Notice:
    """One failure, as the model will read it."""

    type: str
    message: str
    hint: str | None = None

    def render(self, fits: Callable[[str], bool]) -> str:
        """The output text: ``{"error": {"type", "message", "hint"}}``, within ``fits``."""
        text = error_output(self.type, self.message, self.hint)
        limit = max(len(self.message), len(self.hint or ""))
        while not fits(text) and limit > 20:
            limit //= 2
            text = error_output(self.type, self.message, self.hint, max_chars=limit)
        if not fits(text):
            text = error_output(self.type[:40], self.message, max_chars=20)
        return text


# -- model mistakes ------------------------------------------------------------------------


def unknown_tool(name: str, available: list[str]) -> Notice:
    return Notice(
        "unknown_tool",
        f"There is no tool named {truncate_text(name, 64)!r}.",
        f"Available tools: {', '.join(sorted(available)) or 'none'}.",
    )


def duplicate_call() -> Notice:
    return Notice(
        "duplicate_call",
        "This call id was already used in this turn; the call was not run again.",
        "Use the output of the first call with this id.",
    )


def unusable_arguments(problem: str) -> Notice:
    """Arguments that are too large, too deep, not JSON, or hold numbers out of range."""
    if "bytes; the limit" in problem:
        return Notice("arguments_too_large", f"{_capital(problem)}.", "Send shorter arguments.")
    return Notice("invalid_arguments", f"The arguments could not be read: {problem}.", _FIX_HINT)


def not_an_object(value: Any) -> Notice:
    return Notice(
        "invalid_arguments",
        f"The arguments must be a JSON object, not {json_type(value)}.",
        _FIX_HINT,
    )


def invalid_arguments(exc: pydantic.ValidationError, model: type[pydantic.BaseModel]) -> Notice:
    return Notice(
        "invalid_arguments",
        format_validation(exc),
        f"Fix these and call the tool again. {_parameters_hint(model)}".strip(),
    )


def rejected_arguments(message: str) -> Notice:
    """The tool refused validated arguments while building its request."""
    return Notice("invalid_arguments", message, "Fix the arguments and call the tool again.")


# -- service and function failures ---------------------------------------------------------


def unavailable(reason: str) -> Notice:
    return Notice(
        "temporarily_unavailable",
        f"The search is temporarily unavailable ({reason}).",
        _UNAVAILABLE_HINT,
    )


def internal() -> Notice:
    return Notice(
        "internal_error",
        "An internal error occurred while running this tool.",
        "Continue without this tool.",
    )


def function_failed(exc: BaseException, scrub: Callable[[str], str]) -> Notice:
    """A user function raised: the model hears the exception's type and first line."""
    detail = scrub(exception_line(exc))
    said = f": {truncate_text(detail, 300)}" if detail else ""
    return Notice(
        "tool_error",
        f"The tool raised {type(exc).__name__}{said}.",
        "Fix the arguments if they caused it, or continue without this tool.",
    )


def service_failure(
    failure: Failure, request: MixpeekRequest | None, scrub: Callable[[str], str]
) -> Notice:
    """What the model is told when the request failed for good."""
    kind, status = failure.kind, failure.status
    if kind == "deadline_exceeded":
        return unavailable("the service did not answer in time")
    if kind in ("connection_error", "timeout"):
        return unavailable("the service could not be reached")
    if kind == "invalid_response":
        return Notice(
            "temporarily_unavailable",
            "The search service sent a response that could not be read.",
            _UNAVAILABLE_HINT,
        )
    if kind == "response_too_large":
        return Notice(
            "response_too_large",
            "The search returned more data than can be read.",
            "Narrow the query or lower limit.",
        )
    if kind == "execution_failed":
        server = scrub(server_message({"error": failure.detail})) if failure.detail else ""
        said = f" The service said: {server}" if server else ""
        return Notice(
            "search_failed", f"The search could not be completed.{said}", _UNAVAILABLE_HINT
        )
    if kind != "http_error" or status is None:
        return internal()
    server = scrub(server_message(failure.detail))
    said = f" The service said: {server}" if server else ""
    if status == 429 or status >= 500:
        return unavailable("rate limited" if status == 429 else f"server error {status}")
    if status in (401, 403):
        return Notice(
            "not_authorized",
            "The search tool is not authorized to run (a configuration problem on the "
            "application side, not something the arguments can fix).",
            "Continue without this tool.",
        )
    if status == 404:
        target = (request.retriever_id or request.path) if request is not None else "it"
        return Notice(
            "not_found",
            f"The search service could not find {target!r}.{said}",
            "Continue without this tool, or use another one.",
        )
    if status in (400, 422):
        return Notice(
            "invalid_request",
            f"The search service rejected the request (HTTP {status}).{said}",
            "Check the arguments against the tool's parameters and try again.",
        )
    if 300 <= status < 400:
        return Notice(
            "request_failed",
            f"The search service answered with a redirect (HTTP {status}), which is not a "
            "search result.",
            "Continue without this tool.",
        )
    return Notice(
        "request_failed",
        f"The search request failed (HTTP {status}).{said}",
        "Continue without this tool.",
    )


def call_error(failure: Failure, *, last_status: int | None = None) -> CallError:
    """The caller's account of ``failure`` (the server's own message included)."""
    status = failure.status if failure.status is not None else last_status
    retryable = failure.retryable is not False and (
        failure.kind in ("deadline_exceeded", "connection_error", "timeout", "invalid_response")
        or (
            failure.kind == "http_error" and status is not None and (status == 429 or status >= 500)
        )
    )
    message = failure.message
    if failure.kind == "http_error":
        server = server_message(failure.detail)
        if server:
            message = f"{message}: {server}"
    return CallError(kind=failure.kind, message=message, status=status, retryable=retryable)


# -- text helpers ----------------------------------------------------------------------------


def server_message(detail: Any, *, limit: int = 300, _depth: int = 0) -> str:
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
                        loc = item.get("loc", ())
                        loc = loc if isinstance(loc, (list, tuple)) else ()
                        where = ".".join(str(p) for p in loc[:8] if p != "body")
                        msg = str(item.get("msg"))[:200]
                        parts.append(f"{where}: {msg}" if where else msg)
                message = "; ".join(parts)
            elif isinstance(inner, Mapping) and _depth < 3:
                return server_message(inner, limit=limit, _depth=_depth + 1)
        if message is None:
            message = detail.get("message")
    elif isinstance(detail, str):
        message = detail
    if not message:
        return ""
    return truncate_text(" ".join(str(message)[: limit * 4].split()), limit)


def format_validation(exc: pydantic.ValidationError, *, limit: int = 5) -> str:
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


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)[:200]
    except (TypeError, ValueError, RecursionError):
        text = repr(value)[:200]
    return truncate_text(text, 40)


def json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def exception_line(exc: BaseException) -> str:
    """The first line of ``str(exc)``, safe to send: lone surrogates replaced, and "" when
    the exception cannot even say what it is (its ``__str__`` raised)."""
    try:
        text = str(exc).strip()
    except Exception:
        return ""
    return utf8_safe(text.splitlines()[0]) if text else ""
