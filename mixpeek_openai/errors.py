"""Typed exceptions.

Everything this package raises derives from :class:`MixpeekOpenAIError`. Mistakes the
*model* makes (bad JSON, wrong types, unknown tools) never raise: they become tool
outputs that tell the model what to fix. Mistakes the *programmer* makes raise one of
the configuration errors below, with a message that says what to change.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "MixpeekOpenAIError",
    "MixpeekRequestError",
    "MixpeekSchemaWarning",
    "RetrieverNotFoundError",
    "SchemaMismatchError",
    "UnknownActionError",
]


class MixpeekOpenAIError(Exception):
    """Base class of every exception raised by ``mixpeek_openai``."""


class ConfigurationError(MixpeekOpenAIError, ValueError):
    """The package was called with arguments that cannot work; the message says what to change."""


class UnknownActionError(ConfigurationError):
    """An exploration action name is not one of the supported actions."""

    def __init__(self, unknown: list[str], valid: list[str]) -> None:
        self.unknown = unknown
        self.valid = valid
        super().__init__(
            f"Unknown action(s) {', '.join(map(repr, unknown))}. "
            f"Valid actions are: {', '.join(valid)}."
        )


class SchemaMismatchError(ConfigurationError):
    """A user-declared arguments model does not fit the retriever's ``input_schema``."""

    def __init__(self, message: str, *, retriever_id: str, model: str, fields: list[str]) -> None:
        self.retriever_id = retriever_id
        self.model = model
        self.fields = fields
        super().__init__(message)


class MixpeekRequestError(MixpeekOpenAIError):
    """A request the application made (fetching retriever definitions, listing a
    namespace) failed. Tool calls never raise this: their failures become outputs.

    ``status`` is the HTTP status (``None`` when no response arrived) and ``kind`` the
    category (``http_error``, ``connection_error``, ``timeout``, ``deadline_exceeded``,
    ``invalid_response``, ...). The message holds the server's own words with the API
    key removed; the original exception is deliberately not chained (it could hold it).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = "http_error",
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.kind = kind
        self.detail = detail
        """The server's own explanation (scrubbed), when it gave one."""
        super().__init__(message)


class RetrieverNotFoundError(ConfigurationError):
    """A retriever id given to the tool set does not exist in the namespace."""

    def __init__(self, retriever_id: str, detail: Any = None) -> None:
        self.retriever_id = retriever_id
        self.detail = detail
        """The server's (scrubbed) explanation, when it gave one."""
        super().__init__(
            f"Retriever {retriever_id!r} was not found in this namespace. "
            "Check the id (or name) and the client's namespace."
        )


# --- Tool loops (chat, responses, assistants) ---------------------------------------------


class LoopError(MixpeekOpenAIError):
    """A tool loop (``run_chat``, ``run_responses``, ``run_assistant``) could not finish.

    Carries what was accumulated up to the failure so nothing is lost: ``usage`` (summed
    token usage), ``calls`` (per-call records), ``turns`` (model calls made) and, where the
    loop keeps a transcript, ``messages`` (Chat Completions) or ``items`` (Responses), both
    valid input for a follow-up request.
    """

    def __init__(
        self,
        message: str,
        *,
        usage: Any = None,
        calls: list[Any] | None = None,
        turns: int = 0,
        messages: list[dict[str, Any]] | None = None,
        items: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.usage = usage
        self.calls = list(calls or [])
        self.turns = turns
        self.messages = messages
        self.items = items


class MaxTurnsExceededError(LoopError):
    """The model still asked for tools when the loop's ``max_turns`` budget was used up.

    The tool calls of the last turn were executed, so ``messages`` / ``items`` form a valid
    conversation you can continue (or pass ``on_max_turns="answer"`` to force a final answer).
    """

    def __init__(self, max_turns: int, **kwargs: Any) -> None:
        self.max_turns = max_turns
        super().__init__(
            f"The model was still calling tools after max_turns={max_turns} model calls. "
            "Raise max_turns, or pass on_max_turns='answer' to force a final answer.",
            **kwargs,
        )


class OutputTruncatedError(LoopError):
    """The model stopped because it hit its output token limit (``finish_reason="length"``).

    ``partial`` holds the truncated assistant message (Chat) or response (Responses); it is
    not appended to ``messages`` / ``items``.
    """

    def __init__(self, message: str, *, partial: Any = None, **kwargs: Any) -> None:
        self.partial = partial
        super().__init__(message, **kwargs)


class ContentFilteredError(LoopError):
    """The provider's content filter stopped the output (``finish_reason="content_filter"``).

    ``partial`` holds whatever the model produced before it was stopped.
    """

    def __init__(self, message: str, *, partial: Any = None, **kwargs: Any) -> None:
        self.partial = partial
        super().__init__(message, **kwargs)


class MalformedReplyError(LoopError):
    """The API sent a reply the loop cannot act on: no choice or message, a stream that
    ended before the model finished, a reply that says it calls tools but carries none.

    Nothing in the reply was run. ``partial`` holds what could be read of it (or ``None``);
    ``messages`` / ``items`` are the conversation before it, valid to send again.
    """

    def __init__(self, message: str, *, partial: Any = None, **kwargs: Any) -> None:
        self.partial = partial
        super().__init__(message, **kwargs)


class ResponseFailedError(LoopError):
    """A Responses API response ended ``failed`` or ``incomplete`` for a reason other than
    the output limit or the content filter, or the stream reported an error.

    ``response`` is the last response object seen (or ``None``); ``error`` its error payload.
    """

    def __init__(
        self, message: str, *, response: Any = None, error: Any = None, **kwargs: Any
    ) -> None:
        self.response = response
        self.error = error
        super().__init__(message, **kwargs)


class ResponseDeadlineExceededError(ResponseFailedError):
    """A background response was not done within ``deadline_s``; it was cancelled.

    ``response`` is the last state seen (``cancelled`` once the cancel landed).
    """


class RunFailedError(LoopError):
    """An Assistants run ended without completing.

    The base class covers ``status == "failed"``; the subclasses cover ``expired``,
    ``cancelled`` and ``incomplete``, so ``except RunFailedError`` catches every way a run
    can end badly. Carries ``run_id``, ``thread_id``, ``status``, ``last_error`` (code and
    message from the API, for failed runs) and ``incomplete_details`` (for incomplete runs),
    plus ``run`` (the last run object).
    """

    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str,
        status: str,
        last_error: Any = None,
        incomplete_details: Any = None,
        run: Any = None,
        **kwargs: Any,
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.status = status
        self.last_error = last_error
        self.incomplete_details = incomplete_details
        self.run = run
        detail = ""
        if last_error is not None:
            code = getattr(last_error, "code", None)
            text = getattr(last_error, "message", None)
            detail = f": {code}: {text}" if code else f": {text}"
        elif incomplete_details is not None:
            detail = f": {getattr(incomplete_details, 'reason', incomplete_details)}"
        super().__init__(f"Run {run_id} on thread {thread_id} ended {status}{detail}", **kwargs)


class RunExpiredError(RunFailedError):
    """The run expired (the API gives a run a limited time, e.g. to receive tool outputs)."""


class RunCancelledError(RunFailedError):
    """The run was cancelled (by someone else, or by this package after an interruption)."""


class RunIncompleteError(RunFailedError):
    """The run ended ``incomplete`` (e.g. a token limit); see ``incomplete_details``."""


class RunDeadlineExceededError(LoopError):
    """The run did not reach a terminal state within ``deadline_s``.

    The run was cancelled before this was raised; ``cancel_confirmed`` says whether the API
    confirmed it (``final_status`` is the last status seen), so the thread is not left locked.
    """

    def __init__(
        self,
        *,
        run_id: str | None,
        thread_id: str,
        deadline_s: float,
        cancel_confirmed: bool = False,
        final_status: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.run_id = run_id
        self.thread_id = thread_id
        self.deadline_s = deadline_s
        self.cancel_confirmed = cancel_confirmed
        self.final_status = final_status
        super().__init__(
            f"Run {run_id} on thread {thread_id} did not finish within {deadline_s:g} s; "
            "it was cancelled.",
            **kwargs,
        )


class ActiveRunError(LoopError):
    """The thread already has an active run, and ``if_active_run="fail"`` was chosen
    (or waiting for it ran past the deadline). A thread with an active run refuses new
    messages and runs; wait for it, or pass ``if_active_run="cancel"``.
    """

    def __init__(self, *, thread_id: str, run_id: str, status: str, **kwargs: Any) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.status = status
        super().__init__(
            f"Thread {thread_id} has an active run {run_id} (status {status}). Pass "
            "if_active_run='wait' to wait for it or 'cancel' to cancel it.",
            **kwargs,
        )


__all__ += [
    "ActiveRunError",
    "ContentFilteredError",
    "LoopError",
    "MalformedReplyError",
    "MaxTurnsExceededError",
    "OutputTruncatedError",
    "ResponseDeadlineExceededError",
    "ResponseFailedError",
    "RunCancelledError",
    "RunDeadlineExceededError",
    "RunExpiredError",
    "RunFailedError",
    "RunIncompleteError",
]


class MixpeekSchemaWarning(UserWarning):
    """A retriever's ``input_schema`` has something this version cannot map precisely.

    The input is still offered to the model through a documented fallback (JSON text), so
    the tool keeps working; the warning says which input and why.
    """
