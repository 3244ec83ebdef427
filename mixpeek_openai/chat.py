"""The Chat Completions loop: ``run_chat`` / ``arun_chat`` (and ``iter_chat`` / ``aiter_chat``).

Each turn calls ``chat.completions.create`` with the tool set's functions. When the model
asks for tools, every call of the turn is executed at once (``tools.dispatch``), and the
conversation gets *one* assistant message carrying all ``tool_calls`` followed by one
``tool`` message per call id, in order (anything else is a 400 on the next request). The
loop ends when the model answers without tool calls.

``messages`` on the result is the whole conversation as plain dicts, ready to be sent
again with a new user message appended.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel
from typing_extensions import TypedDict, Unpack

from ._loop import (
    END,
    ApiCall,
    AsyncEventStream,
    CloseStream,
    Core,
    EventStream,
    NextItem,
    OpenStream,
    Trace,
    async_stream,
    first_per_call_id,
    run_tools,
    sync_stream,
)
from .errors import (
    ConfigurationError,
    ContentFilteredError,
    MalformedReplyError,
    MaxTurnsExceededError,
    OutputTruncatedError,
)
from .events import (
    DoneEvent,
    Event,
    EventHandler,
    MessageEvent,
    ThinkingEvent,
    ToolCallDeltaEvent,
    Usage,
)
from .toolbox import ToolsArg, as_toolset, tools_for_api

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from openai.types.chat import ChatCompletion

    from .dispatch import ToolCallResult

__all__ = [
    "ChatOptions",
    "ChatResult",
    "aiter_chat",
    "arun_chat",
    "iter_chat",
    "run_chat",
    "supports_parallel_tool_calls",
]

OnMaxTurns = Literal["raise", "answer"]

# Keys the loop owns; passing them through would break the loop's bookkeeping.
_RESERVED = frozenset({"model", "messages", "tools", "stream"})


class ChatOptions(TypedDict, total=False):
    """The options of ``run_chat`` / ``arun_chat`` / ``iter_chat`` / ``aiter_chat``.

    The first four belong to the loop (see :func:`run_chat`); every other key is passed to
    ``chat.completions.create`` on every call, as the SDK takes it (parameters newer than
    this list go through ``extra_body``).
    """

    max_turns: int
    on_max_turns: OnMaxTurns
    stream: bool
    on_event: EventHandler | None
    # passed through to chat.completions.create
    audio: Any
    frequency_penalty: float | None
    logit_bias: dict[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: dict[str, str] | None
    modalities: list[str] | None
    moderation: Any
    n: int | None
    parallel_tool_calls: bool
    prediction: Any
    presence_penalty: float | None
    prompt_cache_key: str
    prompt_cache_options: Any
    prompt_cache_retention: Any
    reasoning_effort: str | None
    response_format: Any
    safety_identifier: str
    seed: int | None
    service_tier: str | None
    stop: str | list[str] | None
    store: bool | None
    stream_options: dict[str, Any] | None
    temperature: float | None
    tool_choice: Any
    top_logprobs: int | None
    top_p: float | None
    user: str
    verbosity: str | None
    web_search_options: Any
    extra_headers: dict[str, str] | None
    extra_query: dict[str, object] | None
    extra_body: object | None
    timeout: Any


_LOOP_OPTIONS = frozenset({"max_turns", "on_max_turns", "stream", "on_event"})

# o-series reasoning models (o1, o3, o4-mini, ...; also "openai/o3" and "ft:o4-mini:...")
# refuse the `parallel_tool_calls` parameter with a 400.
_NO_PARALLEL_TOOL_CALLS = re.compile(r"^(?:[\w.-]+/)?(?:ft:)?o\d", re.IGNORECASE)


def supports_parallel_tool_calls(model: str) -> bool:
    """Whether Chat Completions accepts ``parallel_tool_calls`` for ``model``.

    The o-series reasoning models (``o1``, ``o3``, ``o4-mini``, ...) reject the parameter;
    ``run_chat`` drops it for them instead of failing the request.
    """
    return _NO_PARALLEL_TOOL_CALLS.match(model) is None


@dataclass
class ChatResult:
    """What ``run_chat`` returns."""

    content: str
    """The final answer text (empty if the model only refused; see ``refusal``)."""

    messages: list[dict[str, Any]]
    """The whole conversation as plain dicts: the input messages, every assistant message
    (with its ``tool_calls``) and tool message, and the final answer. Append a user message
    and pass it back to continue."""

    calls: list[ToolCallResult]
    """One record per tool call made, in order (output, raw response, error, timing)."""

    usage: Usage
    """Token usage summed over all model calls."""

    turns: int
    """Number of model calls made."""

    finish_reason: str
    """``finish_reason`` of the final model call (``"stop"`` normally)."""

    refusal: str | None = None
    """The model's refusal text, if it refused."""

    completion: ChatCompletion | None = None
    """The last ``ChatCompletion`` (``None`` in streaming mode)."""

    events: list[Event] = field(default_factory=list)
    """Every event the loop emitted, in order."""


@dataclass
class _Reply:
    """One model reply, whether it came whole or as a stream of chunks."""

    content: str | None
    refusal: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str | None
    usage: Usage
    completion: ChatCompletion | None = None

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.refusal:
            message["refusal"] = self.refusal
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


def _field(value: Any, name: str) -> Any:
    """``value[name]`` or ``value.name`` (SDK objects and plain dicts alike), else ``None``."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _as_text(arguments: Any) -> str:
    """Tool-call arguments as the API takes them back: a string (some compatible servers
    send a JSON object; it is written back as JSON text)."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(arguments)


def _call_id(value: Any, fallback: str) -> str:
    """The call's id; one of our own when the server sent none (or not a string), so
    the call and its answer still match in the conversation."""
    return value if isinstance(value, str) and value else fallback


def _tool_call_dict(call: Any, fallback_id: str = "") -> dict[str, Any]:
    """One tool call as the conversation keeps it (the shape the API takes back)."""
    call_id = _call_id(_field(call, "id"), fallback_id)
    if _field(call, "type") == "custom":
        custom = _field(call, "custom")
        return {
            "id": call_id,
            "type": "custom",
            "custom": {
                "name": str(_field(custom, "name") or ""),
                "input": _as_text(_field(custom, "input")),
            },
        }
    function = _field(call, "function")
    return {
        "id": call_id,
        "type": "function",
        "function": {
            "name": str(_field(function, "name") or ""),
            "arguments": _as_text(_field(function, "arguments")),
        },
    }


def _dispatchable(call: dict[str, Any]) -> dict[str, Any]:
    """The call as the dispatcher reads it: a custom tool call's input as its arguments,
    so it gets the same answer as any call of a tool this loop does not have."""
    if call["type"] != "custom":
        return call
    custom = call["custom"]
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": custom["name"], "arguments": custom["input"]},
    }


def _message_dict(message: Any) -> dict[str, Any]:
    """A plain-dict copy of one input message (dicts, or SDK message objects)."""
    if isinstance(message, Mapping):
        return dict(message)
    if isinstance(message, BaseModel) and getattr(message, "role", None) == "assistant":
        calls = [_tool_call_dict(c) for c in (getattr(message, "tool_calls", None) or [])]
        return _Reply(
            getattr(message, "content", None),
            getattr(message, "refusal", None),
            calls,
            None,
            Usage(),
        ).message()
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    raise ConfigurationError(
        f"messages must be dicts or openai message objects, got {type(message).__name__}"
    )


def _reply_from_completion(completion: Any, turn: int) -> _Reply:
    """The first choice of a completion; a reply without one raises
    :class:`MalformedReplyError` (its ``partial`` is the raw reply)."""
    choices = _field(completion, "choices")
    if not isinstance(choices, list) or not choices:
        raise _Malformed("The API's reply has no choices", completion)
    choice = choices[0]
    message = _field(choice, "message")
    if message is None:
        raise _Malformed("The API's reply has a choice without a message", completion)
    calls = _field(message, "tool_calls") or []
    return _Reply(
        content=_field(message, "content"),
        refusal=_field(message, "refusal"),
        tool_calls=[_tool_call_dict(c, f"call_{turn}_{i}") for i, c in enumerate(calls)],
        finish_reason=_field(choice, "finish_reason"),
        usage=Usage.from_api(_field(completion, "usage")),
        completion=cast("ChatCompletion", completion)
        if isinstance(completion, BaseModel)
        else None,
    )


class _Malformed(Exception):
    """Raised while reading a reply; the loop turns it into :class:`MalformedReplyError`
    with the conversation so far."""

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


def _stream_reply(call: ApiCall, trace: Trace, turn: int) -> Core[_Reply]:
    """Read one streamed completion: text deltas become events, tool calls are assembled.

    Tool-call fragments arrive by ``index``; ``id`` and ``name`` only come in the first
    fragment of each call, ``arguments`` are split over many. Each arguments fragment is
    reported as a ``tool_call_delta`` event as it arrives.
    """
    handle = yield OpenStream(call)
    text: list[str] = []
    refusal: list[str] = []
    slots: dict[int, dict[str, Any]] = {}
    finish_reason: str | None = None
    usage: Any = None
    try:
        while True:
            chunk = yield NextItem(handle)
            if chunk is END:
                break
            if _field(chunk, "usage") is not None:
                usage = _field(chunk, "usage")
            for choice in _field(chunk, "choices") or []:
                if _field(choice, "index") not in (0, None):
                    continue
                if _field(choice, "finish_reason"):
                    finish_reason = _field(choice, "finish_reason")
                delta = _field(choice, "delta")
                if delta is None:
                    continue
                content = _field(delta, "content")
                if content:
                    text.append(content)
                    yield trace.emit(MessageEvent(turn, content, delta=True))
                if _field(delta, "refusal"):
                    refusal.append(_field(delta, "refusal"))
                for fragment in _field(delta, "tool_calls") or []:
                    slot = _slot_for(slots, fragment)
                    if _field(fragment, "type") == "custom":
                        slot["type"] = "custom"
                    function = _field(fragment, "function") or _field(fragment, "custom")
                    name = _field(function, "name")
                    # Names usually come whole in the first fragment; some servers split
                    # them, others repeat them in every fragment.
                    if isinstance(name, str) and name and name != slot["function"]["name"]:
                        slot["function"]["name"] += name
                    piece = _as_text(_field(function, "arguments") or _field(function, "input"))
                    if piece:
                        slot["function"]["arguments"] += piece
                        yield trace.emit(
                            ToolCallDeltaEvent(turn, slot["id"], slot["function"]["name"], piece)
                        )
    finally:
        yield CloseStream(handle)
    if finish_reason is None:
        raise _Malformed(
            "The stream ended before the model finished (no finish_reason)",
            {"content": "".join(text) or None, "tool_calls": [slots[i] for i in sorted(slots)]},
        )
    calls = []
    for i, key in enumerate(sorted(slots)):
        slot = slots[key]
        slot["id"] = _call_id(slot["id"], f"call_{turn}_{i}")
        if slot.pop("type") == "custom":
            function = slot["function"]
            slot = {
                "id": slot["id"],
                "type": "custom",
                "custom": {"name": function["name"], "input": function["arguments"]},
            }
        else:
            slot["type"] = "function"
        calls.append(slot)
    return _Reply(
        content="".join(text) if text else None,
        refusal="".join(refusal) if refusal else None,
        tool_calls=calls,
        finish_reason=finish_reason,
        usage=Usage.from_api(usage),
    )


def _slot_for(slots: dict[int, dict[str, Any]], fragment: Any) -> dict[str, Any]:
    """Where a tool-call fragment goes: by its ``index``; without one (some compatible
    servers), a fragment with a new id starts the next call, others continue the last."""
    index, call_id = _field(fragment, "index"), _field(fragment, "id")
    if not isinstance(index, int) or isinstance(index, bool):
        last = slots[max(slots)] if slots else None
        starts = last is None or (isinstance(call_id, str) and call_id and call_id != last["id"])
        index = (max(slots) + 1 if slots else 0) if starts else max(slots)
    slot = slots.get(index)
    if slot is None:
        slot = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        slots[index] = slot
    if isinstance(call_id, str) and call_id and not slot["id"]:
        slot["id"] = call_id
    return slot


def _chat_core(
    tools: ToolsArg,
    *,
    model: str,
    messages: Iterable[Any],
    options: ChatOptions,
) -> tuple[Any, Core[ChatResult], EventHandler | None]:
    """Check the arguments (mistakes raise here, at the call) and build the loop's core.

    Returns the tool set the drivers dispatch with, the core and the ``on_event`` handler.
    """
    create_kwargs: dict[str, Any] = {k: v for k, v in options.items() if k not in _LOOP_OPTIONS}
    max_turns = options.get("max_turns", 8)
    on_max_turns = options.get("on_max_turns", "raise")
    if max_turns < 1:
        raise ConfigurationError(f"max_turns must be at least 1, got {max_turns}")
    if on_max_turns not in ("raise", "answer"):
        raise ConfigurationError(f"on_max_turns must be 'raise' or 'answer', got {on_max_turns!r}")
    reserved = sorted(_RESERVED & create_kwargs.keys())
    if reserved:
        raise ConfigurationError(
            f"{', '.join(reserved)} cannot be passed through: the loop sets them. "
            "Use the model= / messages= / stream= parameters; tools come from the tool set."
        )
    if create_kwargs.get("n") not in (None, 1):
        raise ConfigurationError("run_chat follows one completion per turn: n must be 1")
    toolset = as_toolset(tools)
    # Validate and copy eagerly, so mistakes raise at the call, not at the first iteration.
    history = [_message_dict(m) for m in messages]
    tool_params = tools_for_api(toolset, "chat")
    core = _chat_loop(
        model=model,
        history=history,
        tool_params=tool_params,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        stream=options.get("stream", False),
        create_kwargs=create_kwargs,
    )
    return toolset, core, options.get("on_event")


def _chat_loop(
    *,
    model: str,
    history: list[dict[str, Any]],
    tool_params: list[Any],
    max_turns: int,
    on_max_turns: OnMaxTurns,
    stream: bool,
    create_kwargs: dict[str, Any],
) -> Core[ChatResult]:
    trace = Trace()
    usage = Usage()
    calls: list[ToolCallResult] = []

    def failure_kwargs(turn: int) -> dict[str, Any]:
        return {"usage": usage, "calls": calls, "turns": turn, "messages": list(history)}

    for turn in range(1, max_turns + 1):
        force_answer = on_max_turns == "answer" and turn == max_turns
        kwargs = _request_kwargs(model, history, tool_params, create_kwargs, force_answer)
        yield trace.emit(ThinkingEvent(turn, model))
        if stream:
            kwargs["stream"] = True
            kwargs.setdefault("stream_options", {"include_usage": True})
            try:
                reply = yield from _stream_reply(
                    ApiCall("chat.completions.create", kwargs), trace, turn
                )
            except _Malformed as exc:
                raise MalformedReplyError(
                    f"{exc}; nothing in it was run.", partial=exc.partial, **failure_kwargs(turn)
                ) from None
        else:
            completion = yield ApiCall("chat.completions.create", kwargs)
            try:
                reply = _reply_from_completion(completion, turn)
            except _Malformed as exc:
                raise MalformedReplyError(
                    f"{exc}; nothing in it was run.", partial=exc.partial, **failure_kwargs(turn)
                ) from None
        usage += reply.usage

        if reply.finish_reason == "length":
            raise OutputTruncatedError(
                "The model hit its output token limit (finish_reason='length'); raise "
                "max_completion_tokens or shorten the conversation.",
                partial=reply.message(),
                **failure_kwargs(turn),
            )
        if reply.finish_reason == "content_filter":
            raise ContentFilteredError(
                "The content filter stopped the model's output (finish_reason='content_filter').",
                partial=reply.message(),
                **failure_kwargs(turn),
            )
        if reply.content and not stream:
            yield trace.emit(MessageEvent(turn, reply.content))

        if not reply.tool_calls and reply.finish_reason == "tool_calls":
            raise MalformedReplyError(
                "The API's reply says the model called tools (finish_reason='tool_calls') "
                "but carries no tool call; nothing was run.",
                partial=reply.message(),
                **failure_kwargs(turn),
            )
        if not reply.tool_calls:
            history.append(reply.message())
            content = reply.content or ""
            yield trace.emit(DoneEvent(turn, content, usage))
            return ChatResult(
                content=content,
                messages=history,
                calls=calls,
                usage=usage,
                turns=turn,
                finish_reason=reply.finish_reason or "stop",
                refusal=reply.refusal,
                completion=reply.completion,
                events=trace.events,
            )
        if force_answer:
            # The model ignored tool_choice="none"; keep the conversation valid (no
            # unanswered tool calls) and report the exhausted budget.
            raise MaxTurnsExceededError(max_turns, **failure_kwargs(turn))

        dispatched = [_dispatchable(c) for c in reply.tool_calls]
        described = [
            (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in dispatched
        ]
        results = yield from run_tools(trace, turn, dispatched, described)
        calls.extend(results)
        # One tool_call and one tool message per id, even if the model repeated an id.
        message = reply.message()
        message["tool_calls"] = first_per_call_id(reply.tool_calls, lambda c: c["id"])
        history.append(message)
        history.extend(
            {"role": "tool", "tool_call_id": r.call_id, "content": r.output}
            for r in first_per_call_id(results, lambda r: r.call_id)
        )
    raise MaxTurnsExceededError(max_turns, **failure_kwargs(max_turns))


def _request_kwargs(
    model: str,
    history: list[dict[str, Any]],
    tool_params: list[Any],
    create_kwargs: dict[str, Any],
    force_answer: bool,
) -> dict[str, Any]:
    kwargs = dict(create_kwargs)
    kwargs["model"] = model
    kwargs["messages"] = list(history)
    if tool_params:
        kwargs["tools"] = tool_params
        if force_answer:
            kwargs["tool_choice"] = "none"
        if "parallel_tool_calls" in kwargs and not supports_parallel_tool_calls(model):
            del kwargs["parallel_tool_calls"]
    else:
        # Without tools the API refuses tool_choice / parallel_tool_calls.
        kwargs.pop("tool_choice", None)
        kwargs.pop("parallel_tool_calls", None)
    return kwargs


def iter_chat(
    client: OpenAI,
    tools: ToolsArg,
    *,
    model: str,
    messages: Iterable[Any],
    **options: Unpack[ChatOptions],
) -> EventStream[ChatResult]:
    """Run the chat loop as an iterator of events; ``.result`` holds the :class:`ChatResult`.

    Takes the same arguments as :func:`run_chat`. Pass ``stream=True`` to get text as
    ``message`` events with ``delta=True`` while the model writes.
    """
    toolset, core, on_event = _chat_core(tools, model=model, messages=messages, options=options)
    return sync_stream(core, client, toolset, on_event=on_event)


def aiter_chat(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    model: str,
    messages: Iterable[Any],
    **options: Unpack[ChatOptions],
) -> AsyncEventStream[ChatResult]:
    """Async :func:`iter_chat`: ``async for event in aiter_chat(async_client, ...)``."""
    toolset, core, on_event = _chat_core(tools, model=model, messages=messages, options=options)
    return async_stream(core, client, toolset, on_event=on_event)


def run_chat(
    client: OpenAI,
    tools: ToolsArg,
    *,
    model: str,
    messages: Iterable[Any],
    **options: Unpack[ChatOptions],
) -> ChatResult:
    """Run a Chat Completions conversation with the tools until the model answers.

    Args:
        client: an ``openai.OpenAI`` client.
        tools: a ``MixpeekTools``, or a list mixing ``MixpeekTools`` and your own Python
            functions (see :mod:`mixpeek_openai.toolbox`); their ``chat_tools()`` are
            offered each turn. Chat Completions takes no hosted tools (``web_search`` and
            the like are refused with a ``ConfigurationError``: use ``run_responses``).
        model: the model name.
        messages: the conversation so far (dicts or SDK message objects); not modified.
        **options: see :class:`ChatOptions`. The loop's own:

            * ``max_turns`` (default 8): most model calls to make. If the model still asks
              for tools at the last one, its calls are executed (so ``messages`` stays
              valid) and then ``on_max_turns`` decides.
            * ``on_max_turns``: ``"raise"`` (default) raises
              :class:`~mixpeek_openai.errors.MaxTurnsExceededError`; ``"answer"`` makes the
              last allowed call with ``tool_choice="none"`` so the model must answer.
            * ``stream``: stream each reply: text arrives as ``message`` events
              (``delta=True``), tool-call arguments as ``tool_call_delta`` events, and tool
              calls are assembled from their fragments. Usage is requested with
              ``stream_options={"include_usage": True}`` unless you pass ``stream_options``.
            * ``on_event``: called with every :mod:`~mixpeek_openai.events` event.

            Everything else goes to ``chat.completions.create`` on every call
            (``tool_choice``, ``parallel_tool_calls``, ``temperature``,
            ``max_completion_tokens``, ``extra_headers``, ...). ``parallel_tool_calls`` is
            dropped for models that reject it (see :func:`supports_parallel_tool_calls`).

    Returns:
        A :class:`ChatResult` with the answer, the full message list, the per-call
        records and summed usage.

    Raises:
        ConfigurationError: invalid options or tools (raised at the call).
        OutputTruncatedError: a reply stopped at the token limit (``finish_reason="length"``).
        ContentFilteredError: a reply was stopped by the content filter.
        MaxTurnsExceededError: see ``on_max_turns``.
        openai.APIError: errors of the OpenAI API itself are not caught.
    """
    return iter_chat(client, tools, model=model, messages=messages, **options).run()


async def arun_chat(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    model: str,
    messages: Iterable[Any],
    **options: Unpack[ChatOptions],
) -> ChatResult:
    """Async :func:`run_chat`, with an ``openai.AsyncOpenAI`` client and ``tools.adispatch``.

    Same arguments, result and errors as :func:`run_chat`.
    """
    return await aiter_chat(client, tools, model=model, messages=messages, **options).run()
