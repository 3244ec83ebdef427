"""What a tool loop reports while it runs.

Every loop (``run_chat``, ``run_responses``, ``run_assistant`` and their async twins)
reports the same kinds of event, the vocabulary of Mixpeek's agent sessions:

``thinking``
    the model is about to be called (``turn`` counts model calls from 1).
``tool_call_delta``
    streaming only: a fragment of a tool call's arguments as the model writes them
    (``call_id``, ``name``, ``delta``), so a UI can show the call before it is complete;
    always before that call's ``tool_call`` event.
``tool_call``
    the model asked for a tool; ``arguments`` are the parsed JSON arguments (``None`` when
    the model sent something that is not a JSON object).
``tool_result``
    a tool call finished; ``output`` is exactly what the model will see, ``ok`` / ``error_kind``
    say whether it failed, ``duration_s`` how long it took.
``message``
    assistant text: a fragment (``delta=True``) while streaming, else the whole text of one
    model reply.
``done``
    the loop finished; ``content`` is the final answer and ``usage`` the summed token usage.

Events are delivered to an ``on_event`` callback, and can be consumed as an iterator
(``iter_chat``, ``iter_responses``, ``iter_assistant``) or an async iterator (``aiter_*``)
whose ``result`` holds the loop's result once iteration ends. Events carry no API keys or
headers: only the model's arguments, the shaped tool output and token counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "DoneEvent",
    "Event",
    "EventHandler",
    "EventType",
    "MessageEvent",
    "ThinkingEvent",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "Usage",
]

EventType = Literal["thinking", "tool_call_delta", "tool_call", "tool_result", "message", "done"]
"""The event kinds, named as in Mixpeek's agent sessions."""


@dataclass(frozen=True)
class Usage:
    """Token usage summed over every model call a loop made.

    Responses API counts (``input_tokens`` / ``output_tokens``) are mapped onto the Chat
    Completions names (``prompt_tokens`` / ``completion_tokens``). The details the APIs
    report (cached prompt tokens, reasoning tokens) are summed too; they are already
    included in ``prompt_tokens`` / ``completion_tokens``, not added to them.
    """

    prompt_tokens: int = 0
    """Tokens sent to the model (input)."""

    completion_tokens: int = 0
    """Tokens the model generated (output)."""

    total_tokens: int = 0
    """Sum of the two, as reported by the API."""

    requests: int = 0
    """Number of model calls (or Assistants runs) these counts cover."""

    cached_tokens: int = 0
    """Of ``prompt_tokens``, how many were served from the prompt cache (billed cheaper)."""

    reasoning_tokens: int = 0
    """Of ``completion_tokens``, how many a reasoning model spent thinking (not shown)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """Read an OpenAI usage object (Chat, Responses or Assistants run), or ``None``.

        Counts one request; missing counts read as zero. Cached tokens come from
        ``prompt_tokens_details`` / ``input_tokens_details``, reasoning tokens from
        ``completion_tokens_details`` / ``output_tokens_details``.
        """
        if usage is None:
            return cls(requests=1)
        prompt = _int_field(usage, "prompt_tokens", "input_tokens")
        completion = _int_field(usage, "completion_tokens", "output_tokens")
        total = _int_field(usage, "total_tokens") or prompt + completion
        cached = _int_field(
            _field(usage, "prompt_tokens_details", "input_tokens_details"), "cached_tokens"
        )
        reasoning = _int_field(
            _field(usage, "completion_tokens_details", "output_tokens_details"),
            "reasoning_tokens",
        )
        return cls(prompt, completion, total, 1, cached, reasoning)


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _int_field(obj: Any, *names: str) -> int:
    if obj is None:
        return 0
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


@dataclass(frozen=True)
class _EventBase:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``type`` first), e.g. to forward over server-sent events."""
        data = asdict(self)
        kind = data.pop("type")
        return {"type": kind, **data}


@dataclass(frozen=True)
class ThinkingEvent(_EventBase):
    """The model is about to be called."""

    turn: int
    """Model call number, from 1."""

    model: str | None = None
    """The model (or, for Assistants, the assistant id) about to be called."""

    type: Literal["thinking"] = "thinking"


@dataclass(frozen=True)
class ToolCallDeltaEvent(_EventBase):
    """A fragment of a streamed tool call's arguments (streaming loops only).

    Fragments arrive in order; joined, they are the arguments text of the ``tool_call``
    event that follows. Nothing is parsed or validated yet: show it, do not act on it.
    """

    turn: int
    """Model call that is writing the tool call."""

    call_id: str
    """The id the API gave the call (known from its first fragment)."""

    name: str
    """Tool (function) name the model chose."""

    delta: str
    """The next piece of the arguments' JSON text."""

    type: Literal["tool_call_delta"] = "tool_call_delta"


@dataclass(frozen=True)
class ToolCallEvent(_EventBase):
    """The model asked for a tool call; emitted before the call is executed."""

    turn: int
    """Model call that produced this tool call."""

    call_id: str
    """The id the API gave the call (``tool_call_id`` / ``call_id``)."""

    name: str
    """Tool (function) name the model chose."""

    arguments: dict[str, Any] | None
    """Parsed JSON arguments; ``None`` when they are not a JSON object."""

    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolResultEvent(_EventBase):
    """A tool call finished (successfully or not); emitted before its output is sent back."""

    turn: int
    """Model call that produced the tool call."""

    call_id: str
    """The call's id."""

    name: str
    """Tool name."""

    ok: bool
    """Whether the call succeeded."""

    output: str
    """Exactly the text the model will see for this call."""

    error_kind: str | None = None
    """Error category when ``ok`` is false (e.g. ``invalid_arguments``, ``timeout``)."""

    duration_s: float = 0.0
    """Wall time the call took, retries included."""

    attempts: int = 1
    """Requests sent for this call (retries included)."""

    type: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True)
class MessageEvent(_EventBase):
    """Assistant text: a streamed fragment, or the whole text of one reply."""

    turn: int
    """Model call that produced the text."""

    text: str
    """The fragment (``delta=True``) or the whole text (``delta=False``)."""

    delta: bool = False
    """True for a streamed fragment; False when ``text`` is a complete reply."""

    type: Literal["message"] = "message"


@dataclass(frozen=True)
class DoneEvent(_EventBase):
    """The loop finished with a final answer."""

    turn: int
    """Number of model calls made."""

    content: str
    """The final answer text."""

    usage: Usage
    """Token usage summed over the loop."""

    type: Literal["done"] = "done"


Event = (
    ThinkingEvent | ToolCallDeltaEvent | ToolCallEvent | ToolResultEvent | MessageEvent | DoneEvent
)
"""Any loop event; switch on ``event.type``."""

EventHandler = Callable[[Event], None]
"""The ``on_event`` callback type. It runs on the loop's thread (or task); keep it quick.
An exception it raises stops the loop (an Assistants run is cancelled first)."""
