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
``tool_outputs`` entry, or a Responses ``function_call_output`` item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from mixpeek_openai.errors import ConfigurationError

__all__ = ["CallStyle", "ToolCall", "format_output", "format_outputs", "normalize_calls"]

CallStyle: TypeAlias = Literal["chat", "assistants", "responses"]
"""Which OpenAI API a call came from, and so which shape its output takes."""


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


def _one_call(item: Any, default_style: CallStyle) -> ToolCall | None:
    """A :class:`ToolCall` from one item, or ``None`` for items that are not calls."""
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
    if function is None and kind not in ("function", "custom"):
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


def _unwrap(calls: Any) -> tuple[Any, CallStyle]:
    """Find the list of calls inside a run / required_action / message / response."""
    style: CallStyle = "chat"
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
            calls, style = submit, "assistants"
            continue
        if _get(calls, "object") == "response" or (
            _get(calls, "output") is not None and isinstance(_get(calls, "output"), list)
        ):
            return _get(calls, "output"), "responses"
        if _get(calls, "object") == "thread.run":
            return [], "assistants"  # a run that requires no action has nothing to answer
        inner = _get(calls, "tool_calls")
        if inner is not None or _get(calls, "role") == "assistant":
            return inner or [], style
        if _get(calls, "type") is not None:
            return [calls], style  # a single call
        break
    if calls is None:
        return [], style
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
    return calls, style


def normalize_calls(calls: Any, *, style: CallStyle | None = None) -> list[ToolCall]:
    """Every function call in ``calls``, in order, as :class:`ToolCall` objects.

    ``style`` forces the output shape (useful for Assistants tool calls given as plain
    dicts, which look exactly like Chat Completions ones); otherwise it is inferred.

    Raises:
        ConfigurationError: ``calls`` is not something tool calls can be read from, or a
            call has no id (so no output could be matched to it).
    """
    items, inferred = _unwrap(calls)
    result: list[ToolCall] = []
    for item in items:
        call = _one_call(item, style or inferred)
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
