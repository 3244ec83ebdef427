"""The Responses API loop: ``run_responses`` / ``arun_responses`` (and the event iterators).

Each turn calls ``responses.create`` with the tool set's functions. ``function_call``
items are executed all at once (``tools.dispatch``) and answered with
``function_call_output`` items. How the next turn sees the earlier ones is chosen with
``chain`` / ``conversation``:

* ``chain="previous_response_id"`` (default): send only the new items and
  ``previous_response_id``; the server keeps the state (needs ``store`` on, the default).
* ``chain="replay"``: resend the whole item list every turn; nothing depends on stored
  responses, so it works with ``store=False``.
* ``conversation=True`` (a new Conversation) or ``conversation="conv_..."``: the items
  live in a server-side Conversation; each call sends only the new items.

Whatever the mode, ``ResponsesResult.items`` is the full replayable item list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ._loop import (
    END,
    ApiCall,
    AsyncEventStream,
    CloseStream,
    Core,
    EventStream,
    NextItem,
    OpenStream,
    ToolSet,
    Trace,
    async_stream,
    first_per_call_id,
    run_tools,
    sync_stream,
)
from .errors import (
    ConfigurationError,
    ContentFilteredError,
    MaxTurnsExceededError,
    OutputTruncatedError,
    ResponseFailedError,
)
from .events import DoneEvent, Event, EventHandler, MessageEvent, ThinkingEvent, Usage

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI
    from openai.types.responses import Response

    from .dispatch import ToolCallResult

__all__ = [
    "ResponsesResult",
    "aiter_responses",
    "arun_responses",
    "iter_responses",
    "run_responses",
]

Chain = Literal["previous_response_id", "replay"]
OnMaxTurns = Literal["raise", "answer"]

_RESERVED = frozenset({"model", "input", "tools", "stream", "conversation", "instructions"})


@dataclass
class ResponsesResult:
    """What ``run_responses`` returns."""

    content: str
    """The final answer text (``response.output_text`` of the last response)."""

    response: Response
    """The last ``Response``."""

    items: list[dict[str, Any]]
    """The whole exchange as replayable input items: the input, every output item and
    every ``function_call_output``. Append a user message and pass it as ``input`` (with
    ``chain="replay"``) to continue statelessly."""

    calls: list[ToolCallResult]
    """One record per tool call made, in order."""

    usage: Usage
    """Token usage summed over all responses."""

    response_ids: list[str]
    """Ids of every response created, in order (pass the last as ``previous_response_id``
    to continue a stored chain)."""

    turns: int
    """Number of model calls made."""

    conversation_id: str | None = None
    """The Conversation used, if any."""

    events: list[Event] = field(default_factory=list)
    """Every event the loop emitted, in order."""

    @property
    def output_text(self) -> str:
        """Alias of ``content``, named like ``Response.output_text``."""
        return self.content


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _input_items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [_replayable(item) for item in value]


def _replayable(item: Any) -> dict[str, Any]:
    """An output (or input) item as a plain dict that can be sent back as input.

    Message and function-call item ids are dropped: they are optional on input, and
    referencing them fails when responses are not stored (``store=False``).
    """
    if isinstance(item, BaseModel):
        data = item.model_dump(mode="json", exclude_none=True)
    elif isinstance(item, Mapping):
        data = dict(item)
    else:
        raise ConfigurationError(
            f"input items must be dicts or openai item objects, got {type(item).__name__}"
        )
    if data.get("type") in ("message", "function_call"):
        data.pop("id", None)
        data.pop("status", None)
    return data


def _response_text(response: Any) -> str:
    text = getattr(response, "output_text", None)
    if isinstance(text, str):
        return text
    parts = []
    for item in _get(response, "output") or []:
        if _get(item, "type") == "message":
            for part in _get(item, "content") or []:
                if _get(part, "type") == "output_text":
                    parts.append(_get(part, "text") or "")
    return "".join(parts)


def _check_status(response: Any, failure: dict[str, Any]) -> None:
    status = _get(response, "status")
    if status == "incomplete":
        reason = _get(_get(response, "incomplete_details"), "reason")
        if reason == "max_output_tokens":
            raise OutputTruncatedError(
                "The response hit max_output_tokens (status 'incomplete'); raise "
                "max_output_tokens or shorten the input.",
                partial=response,
                **failure,
            )
        if reason == "content_filter":
            raise ContentFilteredError(
                "The content filter stopped the response (status 'incomplete').",
                partial=response,
                **failure,
            )
        raise ResponseFailedError(
            f"The response ended incomplete ({reason}).", response=response, **failure
        )
    if status in ("failed", "cancelled"):
        error = _get(response, "error")
        detail = f": {_get(error, 'code')}: {_get(error, 'message')}" if error else ""
        raise ResponseFailedError(
            f"The response ended {status}{detail}", response=response, error=error, **failure
        )


def _stream_response(call: ApiCall, trace: Trace, turn: int) -> Core[Any]:
    """Read one streamed response: text deltas become events; returns the final response."""
    handle = yield OpenStream(call)
    final: Any = None
    try:
        while True:
            event = yield NextItem(handle)
            if event is END:
                break
            kind = _get(event, "type")
            if kind == "response.output_text.delta":
                delta = _get(event, "delta")
                if delta:
                    yield trace.emit(MessageEvent(turn, delta, delta=True))
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                final = _get(event, "response")
            elif kind == "error":
                raise ResponseFailedError(
                    f"The response stream reported an error: {_get(event, 'code')}: "
                    f"{_get(event, 'message')}",
                    error=event,
                )
    finally:
        yield CloseStream(handle)
    if final is None:
        raise ResponseFailedError("The response stream ended without a final response.")
    return final


def _responses_core(
    tools: ToolSet,
    *,
    model: str,
    input: str | Iterable[Any],
    instructions: str | None,
    max_turns: int,
    on_max_turns: OnMaxTurns,
    chain: Chain,
    conversation: bool | str | None,
    stream: bool,
    create_kwargs: dict[str, Any],
) -> Core[ResponsesResult]:
    if max_turns < 1:
        raise ConfigurationError(f"max_turns must be at least 1, got {max_turns}")
    if on_max_turns not in ("raise", "answer"):
        raise ConfigurationError(f"on_max_turns must be 'raise' or 'answer', got {on_max_turns!r}")
    if chain not in ("previous_response_id", "replay"):
        raise ConfigurationError(f"chain must be 'previous_response_id' or 'replay', got {chain!r}")
    reserved = sorted(_RESERVED & create_kwargs.keys())
    if reserved:
        raise ConfigurationError(
            f"{', '.join(reserved)} cannot be passed through: the loop sets them. Use the "
            "model= / input= / instructions= / conversation= / stream= parameters."
        )
    if conversation not in (None, False) and chain == "replay":
        raise ConfigurationError("A Conversation keeps the items server-side: drop chain='replay'.")
    if (
        conversation in (None, False)
        and chain == "previous_response_id"
        and create_kwargs.get("store") is False
    ):
        raise ConfigurationError(
            "previous_response_id chaining needs stored responses: with store=False pass "
            "chain='replay'."
        )
    if conversation not in (None, False) and "previous_response_id" in create_kwargs:
        raise ConfigurationError("Use either a conversation or previous_response_id, not both.")
    first_input: Any = input if isinstance(input, str) else list(input)
    items = _input_items(first_input)
    return _responses_loop(
        tools,
        model=model,
        first_input=first_input if isinstance(first_input, str) else list(items),
        items=items,
        instructions=instructions,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        conversation=conversation,
        stream=stream,
        tool_params=list(tools.responses_tools()),
        create_kwargs=dict(create_kwargs),
    )


def _responses_loop(
    tools: ToolSet,
    *,
    model: str,
    first_input: Any,
    items: list[dict[str, Any]],
    instructions: str | None,
    max_turns: int,
    on_max_turns: OnMaxTurns,
    chain: Chain,
    conversation: bool | str | None,
    stream: bool,
    tool_params: list[Any],
    create_kwargs: dict[str, Any],
) -> Core[ResponsesResult]:
    trace = Trace()
    usage = Usage()
    calls: list[ToolCallResult] = []
    response_ids: list[str] = []
    previous_id: str | None = create_kwargs.pop("previous_response_id", None)
    conversation_id: str | None = None
    if conversation is True:
        created = yield ApiCall("conversations.create", {})
        conversation_id = created.id
    elif isinstance(conversation, str):
        conversation_id = conversation
    pending: Any = first_input  # what the next call sends (chain / conversation modes)

    def failure(turn: int) -> dict[str, Any]:
        return {"usage": usage, "calls": calls, "turns": turn, "items": list(items)}

    for turn in range(1, max_turns + 1):
        force_answer = on_max_turns == "answer" and turn == max_turns
        kwargs = dict(create_kwargs)
        kwargs["model"] = model
        if instructions is not None:
            # Instructions are not inherited through previous_response_id: send every turn.
            kwargs["instructions"] = instructions
        if tool_params:
            kwargs["tools"] = tool_params
            if force_answer:
                kwargs["tool_choice"] = "none"
        else:
            kwargs.pop("tool_choice", None)
            kwargs.pop("parallel_tool_calls", None)
        if conversation_id is not None:
            kwargs["conversation"] = conversation_id
            kwargs["input"] = pending
        elif chain == "replay":
            kwargs["input"] = list(items)
        else:
            kwargs["input"] = pending
            if previous_id is not None:
                kwargs["previous_response_id"] = previous_id

        yield trace.emit(ThinkingEvent(turn, model))
        if stream:
            kwargs["stream"] = True
            response = yield from _stream_response(ApiCall("responses.create", kwargs), trace, turn)
        else:
            response = yield ApiCall("responses.create", kwargs)
        usage += Usage.from_api(_get(response, "usage"))
        response_ids.append(response.id)
        previous_id = response.id
        _check_status(response, failure(turn))

        output = list(_get(response, "output") or [])
        items.extend(_replayable(item) for item in output)
        text = _response_text(response)
        if text and not stream:
            yield trace.emit(MessageEvent(turn, text))
        function_calls = [item for item in output if _get(item, "type") == "function_call"]
        if not function_calls:
            yield trace.emit(DoneEvent(turn, text, usage))
            return ResponsesResult(
                content=text,
                response=response,
                items=items,
                calls=calls,
                usage=usage,
                response_ids=response_ids,
                turns=turn,
                conversation_id=conversation_id,
                events=trace.events,
            )
        described = [
            (_get(c, "call_id"), _get(c, "name"), _get(c, "arguments")) for c in function_calls
        ]
        results = yield from run_tools(trace, turn, function_calls, described)
        calls.extend(results)
        outputs = [
            {"type": "function_call_output", "call_id": r.call_id, "output": r.output}
            for r in first_per_call_id(results, lambda r: r.call_id)
        ]
        items.extend(outputs)
        pending = outputs
        if force_answer:
            # The model ignored tool_choice="none"; its calls are answered, so `items`
            # stays a valid transcript.
            raise MaxTurnsExceededError(max_turns, **failure(turn))
    raise MaxTurnsExceededError(max_turns, **failure(max_turns))


def iter_responses(
    client: OpenAI,
    tools: ToolSet,
    *,
    model: str,
    input: str | Iterable[Any],
    instructions: str | None = None,
    max_turns: int = 8,
    on_max_turns: OnMaxTurns = "raise",
    chain: Chain = "previous_response_id",
    conversation: bool | str | None = None,
    stream: bool = False,
    on_event: EventHandler | None = None,
    **create_kwargs: Any,
) -> EventStream[ResponsesResult]:
    """Run the Responses loop as an iterator of events; ``.result`` holds the result.

    Takes the same arguments as :func:`run_responses`.
    """
    core = _responses_core(
        tools,
        model=model,
        input=input,
        instructions=instructions,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        conversation=conversation,
        stream=stream,
        create_kwargs=create_kwargs,
    )
    return sync_stream(core, client, tools, on_event=on_event)


def aiter_responses(
    client: AsyncOpenAI,
    tools: ToolSet,
    *,
    model: str,
    input: str | Iterable[Any],
    instructions: str | None = None,
    max_turns: int = 8,
    on_max_turns: OnMaxTurns = "raise",
    chain: Chain = "previous_response_id",
    conversation: bool | str | None = None,
    stream: bool = False,
    on_event: EventHandler | None = None,
    **create_kwargs: Any,
) -> AsyncEventStream[ResponsesResult]:
    """Async :func:`iter_responses`: ``async for event in aiter_responses(async_client, ...)``."""
    core = _responses_core(
        tools,
        model=model,
        input=input,
        instructions=instructions,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        conversation=conversation,
        stream=stream,
        create_kwargs=create_kwargs,
    )
    return async_stream(core, client, tools, on_event=on_event)


def run_responses(
    client: OpenAI,
    tools: ToolSet,
    *,
    model: str,
    input: str | Iterable[Any],
    instructions: str | None = None,
    max_turns: int = 8,
    on_max_turns: OnMaxTurns = "raise",
    chain: Chain = "previous_response_id",
    conversation: bool | str | None = None,
    stream: bool = False,
    on_event: EventHandler | None = None,
    **create_kwargs: Any,
) -> ResponsesResult:
    """Run a Responses API exchange with the tool set until the model answers.

    Args:
        client: an ``openai.OpenAI`` client.
        tools: the tool set (``MixpeekTools``); its ``responses_tools()`` are offered.
        model: the model name.
        input: a user message string, or a list of input items (e.g. a previous result's
            ``items`` plus a new user message).
        instructions: system instructions, sent with every call (they are not inherited
            through ``previous_response_id``).
        max_turns: most model calls; see :func:`~mixpeek_openai.chat.run_chat`.
        on_max_turns: ``"raise"`` or ``"answer"`` (last call made with ``tool_choice="none"``).
        chain: ``"previous_response_id"`` (server-side state, default) or ``"replay"``
            (resend all items each turn; works with ``store=False``).
        conversation: ``True`` to create a Conversation, or a conversation id, to keep the
            state in a server-side Conversation.
        stream: stream each response; text arrives as ``message`` events (``delta=True``).
        on_event: called with every event.
        **create_kwargs: passed to ``responses.create`` on every call (``tool_choice``,
            ``parallel_tool_calls``, ``store``, ``max_output_tokens``, ``reasoning``, ...). A
            ``previous_response_id`` given here continues an earlier stored chain.

    Returns:
        A :class:`ResponsesResult`.

    Raises:
        OutputTruncatedError: a response ended incomplete at ``max_output_tokens``.
        ContentFilteredError: a response was stopped by the content filter.
        ResponseFailedError: a response failed, or ended incomplete for another reason.
        MaxTurnsExceededError: see ``on_max_turns``.
    """
    return iter_responses(
        client,
        tools,
        model=model,
        input=input,
        instructions=instructions,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        conversation=conversation,
        stream=stream,
        on_event=on_event,
        **create_kwargs,
    ).run()


async def arun_responses(
    client: AsyncOpenAI,
    tools: ToolSet,
    *,
    model: str,
    input: str | Iterable[Any],
    instructions: str | None = None,
    max_turns: int = 8,
    on_max_turns: OnMaxTurns = "raise",
    chain: Chain = "previous_response_id",
    conversation: bool | str | None = None,
    stream: bool = False,
    on_event: EventHandler | None = None,
    **create_kwargs: Any,
) -> ResponsesResult:
    """Async :func:`run_responses` (``openai.AsyncOpenAI`` client, ``tools.adispatch``)."""
    return await aiter_responses(
        client,
        tools,
        model=model,
        input=input,
        instructions=instructions,
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        conversation=conversation,
        stream=stream,
        on_event=on_event,
        **create_kwargs,
    ).run()
