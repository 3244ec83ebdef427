"""Tool calls in, tool outputs out, in whichever shape the OpenAI API used.

:func:`normalize_calls` accepts what the ``openai`` SDK hands you and turns each call into a
:class:`ToolCall`:

* Chat Completions: ``message.tool_calls`` (SDK objects or dicts), or the assistant
  message itself;
* Assistants: ``run.required_action.submit_tool_outputs.tool_calls``, or the ``run``,
  ``required_action`` or ``submit_tool_outputs`` object holding them;
* Responses: ``function_call`` items, or a whole ``response.output`` list / the
  ``response`` itself (only its ``function_call`` items are taken).

:func:`format_output` shapes one answer back: a Chat ``tool`` message, an Assistants
``tool_outputs`` entry, or a Responses ``function_call_output`` item. What came of a call
is a :class:`ToolCallResult` (with a :class:`CallError` when it failed); its progress is
reported as :class:`CallEvent` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.errors import ConfigurationError

__all__ = [
    "CallError",
    "CallEvent",
    "CallStyle",
    "ErrorKind",
    "ToolCall",
    "ToolCallResult",
    "format_output",
    "format_outputs",
    "normalize_calls",
]

CallStyle: TypeAlias = Literal["chat", "assistants", "responses"]
"""Which OpenAI API a call came from, and so which shape its output takes."""

ErrorKind = Literal[
    "invalid_arguments",
    "unknown_tool",
    "duplicate_call",
    "http_error",
    "connection_error",
    "timeout",
    "deadline_exceeded",
    "invalid_response",
    "response_too_large",
    "execution_failed",
    "internal_error",
]
"""Why a tool call did not produce a clean result (``CallError.kind``)."""


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for, whatever API it came from."""

    call_id: str
    """The id the output must carry (``tool_call_id`` / ``call_id``)."""
    name: str
    """The function name the model called."""
    arguments_json: str
    """The raw arguments text, as the model wrote it (may not be valid JSON)."""
    style: CallStyle
    """The API the call came from."""
    item_id: str | None = None
    """The Responses item id (``fc_...``), when there is one."""


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _arguments_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    # A dict someone built by hand: keep it as JSON text so it goes through the same checks.
    import json

    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _is_assistants_object(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith("openai.types.beta")


def _one_call(item: Any, default_style: CallStyle, *, all_calls: bool = False) -> ToolCall | None:
    """A :class:`ToolCall` from one item, or ``None`` for items that are not calls.

    With ``all_calls`` (the items are a message's ``tool_calls`` or a run's required
    action) every item is a call and gets an answer, even one without a ``function``.
    """
    kind = _get(item, "type")
    if kind == "function_call":
        call_id = _get(item, "call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ConfigurationError(
                "A Responses function_call item has no call_id; pass the items exactly as "
                "the API returned them."
            )
        return ToolCall(
            call_id=call_id,
            name=str(_get(item, "name") or ""),
            arguments_json=_arguments_text(_get(item, "arguments")),
            style="responses",
            item_id=_get(item, "id"),
        )
    function = _get(item, "function")
    if function is None and kind not in ("function", "custom", None) and not all_calls:
        return None  # Responses items that are not function calls (messages, reasoning...)
    call_id = _get(item, "id")
    if not isinstance(call_id, str) or not call_id:
        raise ConfigurationError(
            "A tool call has no id; pass message.tool_calls (Chat Completions), "
            "run.required_action.submit_tool_outputs.tool_calls (Assistants) or "
            "function_call items (Responses) exactly as the API returned them."
        )
    if function is not None:
        name, arguments = _get(function, "name"), _get(function, "arguments")
    elif kind != "custom":
        name, arguments = None, None  # answered as a call of a tool that does not exist
    else:
        # A Chat "custom" tool call still needs an answer (it will be an unknown tool).
        custom = _get(item, "custom")
        name, arguments = _get(custom, "name"), _get(custom, "input")
    style: CallStyle = "assistants" if _is_assistants_object(item) else default_style
    return ToolCall(
        call_id=call_id,
        name=str(name or ""),
        arguments_json=_arguments_text(arguments),
        style=style,
    )


def _unwrap(calls: Any) -> tuple[Any, CallStyle, bool]:
    """Find the list of calls inside a run / required_action / message / response, and
    whether every item in it is a call (``tool_calls`` lists are; Responses output and
    plain lists may hold other items)."""
    style: CallStyle = "chat"
    all_calls = False
    for _ in range(4):
        if calls is None or isinstance(calls, (list, tuple)):
            break
        if isinstance(calls, (str, bytes)):
            raise ConfigurationError("tool calls must be a list of calls, not a string.")
        required = _get(calls, "required_action")
        submit = _get(calls, "submit_tool_outputs")
        if required is not None:
            calls, style = required, "assistants"
            continue
        if submit is not None:
            calls, style, all_calls = submit, "assistants", True
            continue
        if _get(calls, "object") == "response" or (
            _get(calls, "output") is not None and isinstance(_get(calls, "output"), list)
        ):
            return _get(calls, "output"), "responses", False
        if _get(calls, "object") == "thread.run":
            return [], "assistants", False  # a run that requires no action: nothing to answer
        inner = _get(calls, "tool_calls")
        if inner is not None or _get(calls, "role") == "assistant":
            return inner or [], style, True
        if _get(calls, "type") is not None:
            return [calls], style, False  # a single call
        break
    if calls is None:
        return [], style, all_calls
    # Pydantic models iterate over their fields, so only plain iterables are lists of calls.
    if (
        not isinstance(calls, Iterable)
        or isinstance(calls, Mapping)
        or hasattr(calls, "model_fields")
    ):
        raise ConfigurationError(
            f"Cannot read tool calls from a {type(calls).__name__}; pass message.tool_calls, "
            "the Assistants run (or its required_action), or the Responses output items."
        )
    return calls, style, all_calls


def normalize_calls(calls: Any, *, style: CallStyle | None = None) -> list[ToolCall]:
    """Every function call in ``calls``, in order, as :class:`ToolCall` objects.

    ``style`` forces the output shape (useful for Assistants tool calls given as plain
    dicts, which look exactly like Chat Completions ones); otherwise it is inferred.

    Raises:
        ConfigurationError: ``calls`` is not something tool calls can be read from, or a
            call has no id (so no output could be matched to it).
    """
    items, inferred, all_calls = _unwrap(calls)
    result: list[ToolCall] = []
    for item in items:
        call = _one_call(item, style or inferred, all_calls=all_calls)
        if call is None:
            continue
        if style is not None and call.style != style:
            call = ToolCall(call.call_id, call.name, call.arguments_json, style, call.item_id)
        result.append(call)
    return result


def format_output(
    call_id: str, output: str, style: CallStyle, *, images: Sequence[str] = ()
) -> dict[str, Any]:
    """The answer to one call in the shape its API expects.

    ``images`` (Responses only: Chat ``tool`` messages and Assistants outputs take text)
    are sent as low-detail ``input_image`` parts after the text.
    """
    if style == "responses":
        if images:
            parts: list[dict[str, Any]] = [{"type": "input_text", "text": output}]
            parts += [{"type": "input_image", "image_url": u, "detail": "low"} for u in images]
            return {"type": "function_call_output", "call_id": call_id, "output": parts}
        return {"type": "function_call_output", "call_id": call_id, "output": output}
    if style == "assistants":
        return {"tool_call_id": call_id, "output": output}
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def format_outputs(calls: Iterable[ToolCall], outputs: Iterable[str]) -> list[dict[str, Any]]:
    """:func:`format_output` for each call and its output, pairwise."""
    return [format_output(c.call_id, o, c.style) for c, o in zip(calls, outputs, strict=True)]


# -- what came of a call --------------------------------------------------------------------


@dataclass(frozen=True)
class CallError:
    """Why a tool call did not produce a clean result."""

    kind: ErrorKind
    """Category: ``invalid_arguments``, ``unknown_tool``, ``duplicate_call``, ``http_error``,
    ``connection_error``, ``timeout``, ``deadline_exceeded``, ``invalid_response``,
    ``response_too_large``, ``execution_failed`` or ``internal_error``."""
    message: str
    """What happened, for logs and the caller (no secrets)."""
    status: int | None = None
    """The last HTTP status seen, if any."""
    retryable: bool = False
    """Whether trying again later could help."""


@dataclass(frozen=True)
class CallEvent:
    """A step in the life of one tool call, for ``DispatchConfig.on_call_event``."""

    kind: Literal["started", "retried", "finished", "failed"]
    """``started``; ``retried`` (an attempt failed and another follows after ``wait_s``);
    ``finished`` (an output was produced without error); ``failed`` (an error output)."""
    call_id: str
    """The call's id."""
    name: str
    """The tool name the model called."""
    attempt: int
    """Attempts made so far (0 before anything was sent)."""
    elapsed_s: float
    """Seconds since the call was dispatched."""
    error: CallError | None = None
    """The failure, for ``retried`` (the attempt's) and ``failed`` (the final one)."""
    wait_s: float | None = None
    """For ``retried``: the wait before the next attempt."""


@dataclass(frozen=True)
class ToolCallResult:
    """What happened to one tool call. Only :attr:`output` goes to the model."""

    call_id: str
    """The call's id."""
    name: str
    """The tool name the model called."""
    arguments: dict[str, Any] | None
    """The arguments as the model sent them, when they were a JSON object."""
    output: str
    """The text the model sees (compact JSON)."""
    raw: Any = field(default=None, repr=False)
    """The response (secrets removed), the function's return value, or ``None``."""
    error: CallError | None = None
    """Why the call did not produce a clean result, or ``None``."""
    attempts: int = 0
    """Requests sent (0 when nothing was sent)."""
    started_at: float = 0.0
    """Wall-clock time (``time.time()``) when the call was dispatched."""
    duration_s: float = 0.0
    """Seconds from dispatch to the output."""
    request: MixpeekRequest | None = None
    """The request built from the arguments, when one was built."""
    style: CallStyle = "chat"
    """The API the call came from (decides the shape of :meth:`as_output`)."""
    images: tuple[str, ...] = ()
    """Image URLs sent with the output as ``input_image`` parts (Responses only)."""
    cached: bool = False
    """Whether the answer came from the tool set's search cache (nothing was sent)."""

    @property
    def ok(self) -> bool:
        """Whether the call produced a clean result."""
        return self.error is None

    def as_output(self) -> dict[str, Any]:
        """The answer in the shape its API expects (tool message / tool output / item)."""
        return format_output(self.call_id, self.output, self.style, images=self.images)
