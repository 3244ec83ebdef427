"""What one tool is: :class:`ToolDefinition`.

A definition is plain data plus pure functions: the name and description the model reads,
the arguments model that validates what it sends, and how validated arguments become the
exact :class:`~mixpeek_openai._request.MixpeekRequest` (or a local answer, or a call of
the user's own function). The dispatcher runs definitions; it never needs to know who
built them (:class:`~mixpeek_openai.tools.MixpeekTools`, the exploration catalogue, or
user functions).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.schema import parse_arguments, strict_json_schema

__all__ = ["ToolDefinition", "ToolKind", "path_segment", "to_plain"]

ToolKind = Literal["search", "describe", "explain", "action", "function"]
"""What a tool does: search a retriever, describe or explain one, run a namespace action,
or call a Python function."""


def path_segment(value: str) -> str:
    """One URL path segment; ids never get to walk the path (``../``)."""
    return quote(str(value), safe="")


def to_plain(value: Any) -> Any:
    """A deep, plain-``dict`` copy of a JSON-like value (mapping subclasses included)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class ToolDefinition:
    """One function tool: what the model sees, and how a call becomes a Mixpeek request."""

    name: str
    """Function name, ``^[a-zA-Z0-9_-]{1,64}$`` and unique within the tool set."""

    description: str
    """What the model reads to decide when to call the tool (at most 1024 characters)."""

    arguments_model: type[BaseModel]
    """Validates the model's arguments; ``null`` for an optional field means "use the default"."""

    retriever_id: str | None
    """The retriever this tool searches, describes or explains; ``None`` for namespace actions."""

    kind: ToolKind
    """``search``, ``describe``, ``explain`` or ``action`` (a namespace exploration action)."""

    projection: tuple[str, ...] | None = None
    """Document fields to keep in what the model sees (``None``: the default set)."""

    max_page_size: int | None = None
    """Upper bound of the page-size argument (search tools only)."""

    page_size_field: str | None = None
    """Name of the page-size argument (``limit`` unless an input already has that name)."""

    offset_field: str | None = None
    """Name of the paging argument (how many documents to skip), search tools only."""

    request_builder: Callable[[BaseModel], MixpeekRequest] | None = field(
        default=None, repr=False, compare=False
    )
    """Builds the request from validated arguments; see :meth:`to_request`."""

    local_answer: Callable[[BaseModel], Any] | None = field(default=None, repr=False, compare=False)
    """Answers without any request (``describe`` tools); see :meth:`local_output`."""

    function: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    """For ``function`` tools: the Python function (sync or async) the dispatcher calls
    with the validated arguments as keyword arguments; its return value is the result."""

    layout: Literal["columns", "objects"] = "columns"
    """How search results are laid out for the model: one row per document under shared
    column names (``columns``), or one object per document (``objects``)."""

    images: int = 0
    """How many top documents' thumbnails go to the model as images (Responses only)."""

    _schemas: dict[bool, dict[str, Any]] = field(
        default_factory=dict, repr=False, compare=False, init=False
    )

    def parameters(self, *, strict: bool = True) -> dict[str, Any]:
        """The JSON schema of the arguments (strict-mode valid when ``strict``); a fresh copy."""
        cached = self._schemas.get(strict)
        if cached is None:
            cached = strict_json_schema(self.arguments_model, strict=strict)
            self._schemas[strict] = cached
        return copy.deepcopy(cached)

    def chat_tool(self, *, strict: bool = True) -> dict[str, Any]:
        """The tool as a Chat Completions (and Assistants) ``function`` tool.

        Raises:
            ConfigurationError: the tool sends images (``images > 0``), which a Chat
                Completions ``tool`` message or an Assistants tool output cannot carry.
        """
        if self.images:
            raise ConfigurationError(
                f"Tool {self.name!r} sends images (images={self.images}), but Chat "
                "Completions tool messages and Assistants tool outputs take text only: "
                "offer it through responses_tools() and the Responses API, or add the "
                "retriever with images=0."
            )
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(strict=strict),
                "strict": strict,
            },
        }

    def responses_tool(self, *, strict: bool = True) -> dict[str, Any]:
        """The tool as a Responses API ``function`` tool (flat shape)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters(strict=strict),
            "strict": strict,
        }

    def parse_arguments(self, arguments: Any) -> BaseModel:
        """Validate raw arguments (JSON text or a mapping) into :attr:`arguments_model`.

        Raises:
            pydantic.ValidationError: the arguments do not fit the schema.
            ValueError: the arguments are not a JSON object.
        """
        return parse_arguments(self.arguments_model, arguments)

    def to_request(self, arguments: BaseModel) -> MixpeekRequest:
        """The exact Mixpeek request for validated ``arguments`` (pure: nothing is sent).

        For ``describe`` tools prefer :meth:`local_output`, which needs no request at all.
        """
        if self.request_builder is None:  # pragma: no cover - every built tool has one
            raise ConfigurationError(f"tool {self.name!r} has no request builder")
        return self.request_builder(arguments)

    def local_output(self, arguments: BaseModel) -> Any | None:
        """The answer computed locally (``describe`` tools), or ``None`` if a request is needed."""
        if self.local_answer is None:
            return None
        return self.local_answer(arguments)
