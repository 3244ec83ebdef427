"""The Responses API loop: ``run_responses`` / ``arun_responses`` (and the event iterators).

Each turn calls ``responses.create`` with the tools' definitions (the Mixpeek tools, the
user's functions and any hosted tools). ``function_call`` items are executed all at once
(``tools.dispatch``) and answered with ``function_call_output`` items; hosted tools run on
OpenAI's side and their items are only carried along. How the next turn sees the earlier
ones is chosen with ``chain`` / ``conversation``:

* ``chain="previous_response_id"`` (default): send only the new items and
  ``previous_response_id``; the server keeps the state (needs ``store`` on, the default).
* ``chain="replay"``: resend the whole item list every turn; nothing depends on stored
  responses, so it works with ``store=False``. With a reasoning model the loop then asks
  for ``reasoning.encrypted_content`` and sends the reasoning items back, so the model
  keeps its chain of thought across tool calls without anything stored.
* ``conversation=True`` (a new Conversation) or ``conversation="conv_..."``: the items
  live in a server-side Conversation; each call sends only the new items.

Whatever the mode, ``ResponsesResult.items`` is the full replayable item list; the model's
earlier messages are in it as plain ``{"role": "assistant", "content": "..."}`` input
messages, which the API takes with and without stored responses.

``background=True`` creates each response in the background and polls
``responses.retrieve`` until it is done (every ``poll_interval_s``), within ``deadline_s``;
on the deadline, an exception, ``KeyboardInterrupt`` or task cancellation the response is
cancelled (``responses.cancel``) before the error propagates.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

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
    Now,
    OpenStream,
    Sleep,
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
    ResponseDeadlineExceededError,
    ResponseFailedError,
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
    from openai.types.responses import Response

    from .dispatch import ToolCallResult

__all__ = [
    "AsyncResponsesOptions",
    "ResponseDeadlineExceededError",
    "ResponsesOptions",
    "ResponsesResult",
    "aiter_responses",
    "arun_responses",
    "iter_responses",
    "run_responses",
]

Chain = Literal["previous_response_id", "replay"]
OnMaxTurns = Literal["raise", "answer"]

_RESERVED = frozenset({"model", "input", "tools", "stream", "conversation", "instructions"})
_PENDING = frozenset({"queued", "in_progress"})
_DEFAULT_POLL_S = 1.0
_ENCRYPTED_REASONING = "reasoning.encrypted_content"
# Reasoning models: the o-series and gpt-5 families (also "openai/o3", "ft:o4-mini:...").
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:ft:)?(?:o\d|gpt-5|codex)", re.IGNORECASE)


class _ResponsesOptions(TypedDict, total=False):
    instructions: str | None
    max_turns: int
    on_max_turns: OnMaxTurns
    chain: Chain
    conversation: bool | str | None
    stream: bool
    background: bool
    poll_interval_s: float | None
    deadline_s: float
    on_event: EventHandler | None
    clock: Callable[[], float] | None
    # passed through to responses.create
    access_programs: Any
    background_options: Any
    context_management: Any
    image: Any
    include: list[str] | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: dict[str, str] | None
    moderation: Any
    parallel_tool_calls: bool | None
    previous_response_id: str | None
    prompt: Any
    prompt_cache_key: str
    prompt_cache_options: Any
    prompt_cache_retention: Any
    reasoning: Any
    safety_identifier: str
    service_tier: str | None
    store: bool | None
    stream_options: Any
    temperature: float | None
    text: Any
    tool_choice: Any
    top_logprobs: int | None
    top_p: float | None
    truncation: str | None
    user: str
    extra_headers: dict[str, str] | None
    extra_query: dict[str, object] | None
    extra_body: object | None
    timeout: Any


class ResponsesOptions(_ResponsesOptions, total=False):
    """The options of ``run_responses`` / ``iter_responses`` (see :func:`run_responses`).

    The loop's own options come first; every other key is passed to ``responses.create``
    on every call, as the SDK takes it (parameters newer than this list go through
    ``extra_body``).
    """

    sleep: Callable[[float], None] | None


class AsyncResponsesOptions(_ResponsesOptions, total=False):
    """The options of ``arun_responses`` / ``aiter_responses``: :class:`ResponsesOptions`
    with an async ``sleep``."""

    sleep: Callable[[float], Awaitable[None]] | None


_LOOP_OPTIONS = frozenset(
    {
        "instructions",
        "max_turns",
        "on_max_turns",
        "chain",
        "conversation",
        "stream",
        "background",
        "poll_interval_s",
        "deadline_s",
        "on_event",
        "sleep",
        "clock",
    }
)


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` is a reasoning model (o-series, gpt-5), whose reasoning items must
    be sent back (encrypted) when nothing is stored."""
    return _REASONING_MODEL.match(model) is not None


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
    """An output (or input) item as a plain dict that is valid input, stored or not.

    * The model's messages become plain ``{"role": "assistant", "content": text}`` input
      messages: as output items they would need their ``id`` and ``status`` (an
      ``OutputMessage``), and an id refers to a stored item, which ``store=False`` has not.
    * ``function_call`` items lose ``id`` and ``status`` (optional on input) for the same
      reason.
    * Reasoning items keep their ``id`` (required) and ``encrypted_content`` (what makes
      them usable without storage); their ``status`` is output-only.
    * Everything else (hosted tool calls, user messages, outputs) is kept as it is.
    """
    if isinstance(item, BaseModel):
        # warnings=False: a server may put an object where the model declares a string
        # (function_call arguments); it is written back as text below.
        data = item.model_dump(mode="json", exclude_none=True, warnings=False)
    elif isinstance(item, Mapping):
        data = dict(item)
    else:
        raise ConfigurationError(
            f"input items must be dicts or openai item objects, got {type(item).__name__}"
        )
    kind = data.get("type")
    if kind == "message" or (kind is None and "role" in data):
        if data.get("role") == "assistant" and not isinstance(data.get("content"), str):
            return {"role": "assistant", "content": _message_text(data.get("content"))}
        if kind == "message":
            data.pop("id", None)
            data.pop("status", None)
    elif kind == "function_call":
        data.pop("id", None)
        data.pop("status", None)
        # Input requires both as strings; some compatible servers send an object or null.
        data["name"] = str(data.get("name") or "")
        arguments = data.get("arguments")
        if not isinstance(arguments, str):
            data["arguments"] = "" if arguments is None else json.dumps(arguments)
    elif kind == "reasoning":
        data.pop("status", None)
    return data


def _message_text(content: Any) -> str:
    """The text of an assistant message's parts (output text and refusals, in order)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or []:
        kind = _get(part, "type")
        if kind in ("output_text", "input_text", "text"):
            parts.append(str(_get(part, "text") or ""))
        elif kind == "refusal":
            parts.append(str(_get(part, "refusal") or ""))
    return "".join(parts)


def _stateless_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` without reasoning items that cannot be sent unstored (no encrypted content)."""
    return [i for i in items if i.get("type") != "reasoning" or i.get("encrypted_content")]


def _response_text(response: Any) -> str:
    try:
        text = getattr(response, "output_text", None)
    except (TypeError, AttributeError):  # the SDK's property on a garbled output
        text = None
    if isinstance(text, str):
        return text
    parts = []
    for item in _get(response, "output") or []:
        if _get(item, "type") == "message":
            for part in _get(item, "content") or []:
                if _get(part, "type") == "output_text":
                    parts.append(_get(part, "text") or "")
    return "".join(parts)


def _check_readable(response: Any, failure: dict[str, Any]) -> None:
    """Refuse a response the loop cannot act on (no id, no output list, a message without
    content parts) with :class:`MalformedReplyError`, before anything in it is run."""
    problem = None
    if not isinstance(_get(response, "id"), str):
        problem = "has no id"
    elif _get(response, "status") not in _PENDING:
        output = _get(response, "output")
        if not isinstance(output, list):
            problem = "has no output list"
        elif any(
            _get(i, "type") == "message" and not isinstance(_get(i, "content"), list)
            for i in output
        ):
            problem = "has a message without content"
        elif any(
            _get(i, "type") == "function_call"
            and not (isinstance(_get(i, "call_id"), str) and _get(i, "call_id"))
            for i in output
        ):
            problem = "has a function call without a call_id (no output could answer it)"
    if problem is not None:
        raise MalformedReplyError(
            f"The API's response {problem}; nothing in it was run.", partial=response, **failure
        )


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
    """Read one streamed response; returns the final response.

    Text deltas become ``message`` events and function-call argument deltas
    ``tool_call_delta`` events (the call's id and name come with its
    ``response.output_item.added`` event).
    """
    handle = yield OpenStream(call)
    final: Any = None
    calls: dict[Any, tuple[str, str]] = {}  # item id (or output index) -> (call_id, name)
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
            elif kind == "response.output_item.added":
                item = _get(event, "item")
                if _get(item, "type") == "function_call":
                    known = (str(_get(item, "call_id") or ""), str(_get(item, "name") or ""))
                    calls[_get(item, "id")] = known
                    calls[("index", _get(event, "output_index"))] = known
            elif kind == "response.function_call_arguments.delta":
                delta = _get(event, "delta")
                call_id, name = calls.get(
                    _get(event, "item_id"),
                    calls.get(("index", _get(event, "output_index")), ("", "")),
                )
                if delta:
                    yield trace.emit(ToolCallDeltaEvent(turn, call_id, name, delta))
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


@dataclass
class _Background:
    """How background responses are waited for."""

    poll_interval_s: float
    deadline_s: float
    deadline_at: float = 0.0


def _await_background(response: Any, wait: _Background, failure: dict[str, Any]) -> Core[Any]:
    """Poll a background response until it leaves ``queued`` / ``in_progress``.

    On the deadline the response is cancelled and :class:`ResponseDeadlineExceededError`
    raised; on any other failure while waiting (``KeyboardInterrupt``, task cancellation,
    a callback raising) it is cancelled before the failure propagates.
    """
    try:
        while _get(response, "status") in _PENDING:
            now = yield Now()
            if now >= wait.deadline_at:
                response = yield from _cancel(response)
                status = _get(response, "status")
                outcome = (
                    "it was cancelled"
                    if status == "cancelled"
                    else "cancelling it did not succeed, so it may still be running"
                )
                raise ResponseDeadlineExceededError(
                    f"The background response {response.id} was not done within "
                    f"{wait.deadline_s:g} s; {outcome} (status {status!r}). Raise "
                    "deadline_s for longer work.",
                    response=response,
                    **failure,
                )
            yield Sleep(min(wait.poll_interval_s, wait.deadline_at - now))
            response = yield ApiCall("responses.retrieve", {"response_id": response.id})
    except ResponseDeadlineExceededError:
        raise
    except BaseException:
        if _get(response, "status") in _PENDING:
            # The original error matters more than a failed cleanup.
            with contextlib.suppress(Exception):
                yield from _cancel(response)
        raise
    return response


def _cancel(response: Any) -> Core[Any]:
    """Cancel a background response; returns its state after the cancel (or the last seen)."""
    try:
        cancelled = yield ApiCall("responses.cancel", {"response_id": response.id})
    except Exception:
        return response  # it may have finished meanwhile; the caller reports what it saw
    return cancelled


def _responses_core(
    tools: ToolsArg,
    *,
    model: str,
    input: str | Iterable[Any],
    options: _ResponsesOptions,
) -> tuple[Any, Core[ResponsesResult]]:
    """Check the arguments (mistakes raise here, at the call) and build the loop's core."""
    create_kwargs: dict[str, Any] = {k: v for k, v in options.items() if k not in _LOOP_OPTIONS}
    max_turns = options.get("max_turns", 8)
    on_max_turns = options.get("on_max_turns", "raise")
    chain = options.get("chain", "previous_response_id")
    conversation = options.get("conversation")
    stream = options.get("stream", False)
    background = options.get("background", False)
    poll_interval_s = options.get("poll_interval_s")
    deadline_s = options.get("deadline_s", 300.0)
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
    stored = create_kwargs.get("store") is not False
    if conversation in (None, False) and chain == "previous_response_id" and not stored:
        raise ConfigurationError(
            "previous_response_id chaining needs stored responses: with store=False pass "
            "chain='replay'."
        )
    if conversation not in (None, False) and "previous_response_id" in create_kwargs:
        raise ConfigurationError("Use either a conversation or previous_response_id, not both.")
    if background:
        if stream:
            raise ConfigurationError(
                "background=True polls the response; drop stream=True (or background)."
            )
        if not stored:
            raise ConfigurationError("background=True needs stored responses: drop store=False.")
    if deadline_s <= 0:
        raise ConfigurationError(f"deadline_s must be positive, got {deadline_s}")
    if poll_interval_s is not None and poll_interval_s < 0:
        raise ConfigurationError(f"poll_interval_s must be >= 0, got {poll_interval_s}")
    if chain == "replay" and not stored and is_reasoning_model(model):
        # Nothing is stored, so the model's reasoning survives a tool call only if it comes
        # back to us encrypted and we send it again.
        include = list(create_kwargs.get("include") or [])
        if _ENCRYPTED_REASONING not in include:
            create_kwargs["include"] = [*include, _ENCRYPTED_REASONING]
    toolset = as_toolset(tools)
    tool_params = tools_for_api(toolset, "responses")
    first_input: Any = input if isinstance(input, str) else list(input)
    items = _input_items(first_input)
    core = _responses_loop(
        model=model,
        first_input=first_input if isinstance(first_input, str) else list(items),
        items=items,
        instructions=options.get("instructions"),
        max_turns=max_turns,
        on_max_turns=on_max_turns,
        chain=chain,
        stateless=not stored,
        conversation=conversation,
        stream=stream,
        background=(
            _Background(
                poll_interval_s if poll_interval_s is not None else _DEFAULT_POLL_S, deadline_s
            )
            if background
            else None
        ),
        tool_params=tool_params,
        create_kwargs=create_kwargs,
    )
    return toolset, core


def _responses_loop(
    *,
    model: str,
    first_input: Any,
    items: list[dict[str, Any]],
    instructions: str | None,
    max_turns: int,
    on_max_turns: OnMaxTurns,
    chain: Chain,
    stateless: bool,
    conversation: bool | str | None,
    stream: bool,
    background: _Background | None,
    tool_params: list[Any],
    create_kwargs: dict[str, Any],
) -> Core[ResponsesResult]:
    trace = Trace()
    usage = Usage()
    calls: list[ToolCallResult] = []
    response_ids: list[str] = []
    previous_id: str | None = create_kwargs.pop("previous_response_id", None)
    conversation_id: str | None = None
    if background is not None:
        background.deadline_at = (yield Now()) + background.deadline_s
        create_kwargs["background"] = True
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
            kwargs["input"] = _stateless_items(items) if stateless else list(items)
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
            if background is not None:
                _check_readable(response, failure(turn))
                response = yield from _await_background(response, background, failure(turn))
        _check_readable(response, failure(turn))
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
        outputs = [r.as_output() for r in first_per_call_id(results, lambda r: r.call_id)]
        items.extend(outputs)
        pending = outputs
        if force_answer:
            # The model ignored tool_choice="none"; its calls are answered, so `items`
            # stays a valid transcript.
            raise MaxTurnsExceededError(max_turns, **failure(turn))
    raise MaxTurnsExceededError(max_turns, **failure(max_turns))


def iter_responses(
    client: OpenAI,
    tools: ToolsArg,
    *,
    model: str,
    input: str | Iterable[Any],
    **options: Unpack[ResponsesOptions],
) -> EventStream[ResponsesResult]:
    """Run the Responses loop as an iterator of events; ``.result`` holds the result.

    Takes the same arguments as :func:`run_responses`.
    """
    toolset, core = _responses_core(tools, model=model, input=input, options=options)
    return sync_stream(
        core,
        client,
        toolset,
        on_event=options.get("on_event"),
        sleep=options.get("sleep"),
        clock=options.get("clock"),
    )


def aiter_responses(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    model: str,
    input: str | Iterable[Any],
    **options: Unpack[AsyncResponsesOptions],
) -> AsyncEventStream[ResponsesResult]:
    """Async :func:`iter_responses`: ``async for event in aiter_responses(async_client, ...)``."""
    toolset, core = _responses_core(tools, model=model, input=input, options=options)
    return async_stream(
        core,
        client,
        toolset,
        on_event=options.get("on_event"),
        sleep=options.get("sleep"),
        clock=options.get("clock"),
    )


def run_responses(
    client: OpenAI,
    tools: ToolsArg,
    *,
    model: str,
    input: str | Iterable[Any],
    **options: Unpack[ResponsesOptions],
) -> ResponsesResult:
    """Run a Responses API exchange with the tools until the model answers.

    Args:
        client: an ``openai.OpenAI`` client.
        tools: a ``MixpeekTools``, or a list mixing ``MixpeekTools``, your own Python
            functions and hosted-tool dicts such as ``{"type": "web_search"}`` (see
            :mod:`mixpeek_openai.toolbox`).
        model: the model name.
        input: a user message string, or a list of input items (e.g. a previous result's
            ``items`` plus a new user message).
        **options: see :class:`ResponsesOptions`. The loop's own:

            * ``instructions``: system instructions, sent with every call (they are not
              inherited through ``previous_response_id``).
            * ``max_turns`` (default 8) / ``on_max_turns`` (``"raise"`` or ``"answer"``):
              see :func:`~mixpeek_openai.chat.run_chat`.
            * ``chain``: ``"previous_response_id"`` (server-side state, default) or
              ``"replay"`` (resend all items each turn; works with ``store=False``, and then
              carries a reasoning model's encrypted reasoning items).
            * ``conversation``: ``True`` to create a Conversation, or a conversation id
              (e.g. from :func:`~mixpeek_openai.migration.thread_to_conversation`).
            * ``stream``: stream each response; text arrives as ``message`` events
              (``delta=True``), function-call arguments as ``tool_call_delta`` events.
            * ``background``: create each response in the background and poll it; with
              ``poll_interval_s`` (default 1 s) and ``deadline_s`` (default 300 s, the
              whole exchange; the response is cancelled when it passes).
            * ``on_event``: called with every event; ``sleep`` / ``clock``: the wait
              between polls and the monotonic clock (tests pass fakes).

            Everything else goes to ``responses.create`` on every call (``tool_choice``,
            ``parallel_tool_calls``, ``store``, ``max_output_tokens``, ``reasoning``,
            ``include``, ...). A ``previous_response_id`` given here continues an earlier
            stored chain.

    Returns:
        A :class:`ResponsesResult`.

    Raises:
        ConfigurationError: invalid options or tools (raised at the call), e.g. a hosted
            tool the Responses API does not take.
        OutputTruncatedError: a response ended incomplete at ``max_output_tokens``.
        ContentFilteredError: a response was stopped by the content filter.
        ResponseFailedError: a response failed, was cancelled, or ended incomplete for
            another reason.
        ResponseDeadlineExceededError: a background response was not done in time (it
            was cancelled).
        MaxTurnsExceededError: see ``on_max_turns``.
    """
    return iter_responses(client, tools, model=model, input=input, **options).run()


async def arun_responses(
    client: AsyncOpenAI,
    tools: ToolsArg,
    *,
    model: str,
    input: str | Iterable[Any],
    **options: Unpack[AsyncResponsesOptions],
) -> ResponsesResult:
    """Async :func:`run_responses` (``openai.AsyncOpenAI`` client, ``tools.adispatch``).

    ``sleep`` is an async function (default ``asyncio.sleep``). When the awaiting task is
    cancelled during a background response, the response is cancelled first.
    """
    return await aiter_responses(client, tools, model=model, input=input, **options).run()
