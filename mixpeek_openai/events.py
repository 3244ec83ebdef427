"""What a tool loop reports while it runs.

Every loop (``run_chat``, ``run_responses``, ``run_assistant`` and their async twins)
reports the same five kinds of event, the vocabulary of Mixpeek's agent sessions:

``thinking``
    the model is about to be called (``turn`` counts model calls from 1).
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
    "ToolCallEvent",
    "ToolResultEvent",
    "Usage",
]

EventType = Literal["thinking", "tool_call", "tool_result", "message", "done"]
"""The five event kinds, named as in Mixpeek's agent sessions."""


@dataclass(frozen=True)
class Usage:
    """Token usage summed over every model call a loop made.

    Responses API counts (``input_tokens`` / ``output_tokens``) are mapped onto the Chat
    Completions names (``prompt_tokens`` / ``completion_tokens``).
    """

    prompt_tokens: int = 0
    """Tokens sent to the model (input)."""

    completion_tokens: int = 0
    """Tokens the model generated (output)."""

    total_tokens: int = 0
    """Sum of the two, as reported by the API."""

    requests: int = 0
    """Number of model calls (or Assistants runs) these counts cover."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
        )

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """Read an OpenAI usage object (Chat, Responses or Assistants run), or ``None``.

        Counts one request; missing counts read as zero.
        """
        if usage is None:
            return cls(requests=1)
        prompt = _int_field(usage, "prompt_tokens", "input_tokens")
        completion = _int_field(usage, "completion_tokens", "output_tokens")
        total = _int_field(usage, "total_tokens") or prompt + completion
        return cls(prompt, completion, total, 1)


def _int_field(obj: Any, *names: str) -> int:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if isinstance(value, int):
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


Event = ThinkingEvent | ToolCallEvent | ToolResultEvent | MessageEvent | DoneEvent
"""Any loop event; switch on ``event.type``."""

EventHandler = Callable[[Event], None]
"""The ``on_event`` callback type. It runs on the loop's thread (or task); keep it quick.
An exception it raises stops the loop (an Assistants run is cancelled first)."""
