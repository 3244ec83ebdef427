"""The user's own Python functions as tools, beside the Mixpeek ones.

:func:`function_tool` turns a typed function into a
:class:`~mixpeek_openai.tools.ToolDefinition` of kind ``function``:

* the **name** is the function's ``__name__`` (or ``name=``), checked against the API's
  ``^[a-zA-Z0-9_-]{1,64}$``;
* the **description** is the docstring's summary (everything before an ``Args:`` /
  ``Returns:`` / ``Raises:`` section), or ``description=``;
* the **arguments model** is a Pydantic model built from the signature: every parameter
  must be annotated (the annotation is the only thing the model can be told about it),
  parameters with a default are optional, ``Annotated[..., Field(...)]`` works as in
  Pydantic, and a Google-style ``Args:`` section gives each parameter its description.
  The strict schema the API receives comes from that model, like the Mixpeek tools'.

The dispatcher validates the model's arguments against the model (mistakes go back to the
model as fixable outputs), calls the function with them as keyword arguments (awaiting it
when it is a coroutine function) within the call's deadline, and shapes the return value
for the model. What the function raises is reported to the model as a failed call, not
raised into the loop.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

import pydantic

from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.tools import MAX_DESCRIPTION_CHARS, ToolDefinition

__all__ = ["function_tool"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Examples?|Notes?)\s*:\s*$"
)
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def function_tool(
    fn: Callable[..., Any] | ToolDefinition,
    *,
    name: str | None = None,
    description: str | None = None,
) -> ToolDefinition:
    """A tool definition for ``fn`` (sync or ``async``); see the module docstring.

    Raises:
        ConfigurationError: the name is not a valid function name, a parameter has no
            annotation, or the signature takes ``*args`` / ``**kwargs`` / positional-only
            parameters (the model sends named arguments only).
    """
    if isinstance(fn, ToolDefinition):
        return fn
    if not callable(fn):
        raise ConfigurationError(f"function_tool() needs a callable, got {type(fn).__name__}.")
    tool_name = name if name is not None else getattr(fn, "__name__", None)
    if not isinstance(tool_name, str) or not _NAME.match(tool_name):
        raise ConfigurationError(
            f"{tool_name!r} is not a valid tool name (letters, digits, _ and -, at most 64): "
            "pass function_tool(fn, name=...)."
        )
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_docstring(doc)
    text = description if description is not None else summary
    return ToolDefinition(
        name=tool_name,
        description=_cut(text, MAX_DESCRIPTION_CHARS),
        arguments_model=_arguments_model(fn, tool_name, arg_docs),
        retriever_id=None,
        kind="function",
        function=fn,
    )


def _arguments_model(
    fn: Callable[..., Any], tool_name: str, arg_docs: dict[str, str]
) -> type[pydantic.BaseModel]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read the signature of {tool_name!r}: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"Cannot resolve the annotations of {tool_name!r} ({type(exc).__name__}: {exc}); "
            "import the names they use at module level."
        ) from None
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigurationError(
                f"{tool_name!r} takes *{param.name}: a tool's parameters must be named "
                "(the model sends a JSON object), so list them explicitly."
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ConfigurationError(
                f"Parameter {param.name!r} of {tool_name!r} is positional-only; the tool is "
                "called with keyword arguments."
            )
        if param.name.startswith("_"):
            raise ConfigurationError(
                f"Parameter {param.name!r} of {tool_name!r} starts with '_': rename it "
                "(the model sees parameter names)."
            )
        if param.name not in hints:
            raise ConfigurationError(
                f"Parameter {param.name!r} of {tool_name!r} has no type annotation; annotate "
                "it (e.g. `city: str`) so the model knows what to send."
            )
        default: Any = ... if param.default is param.empty else param.default
        info = pydantic.Field(default, description=arg_docs.get(param.name))
        fields[param.name] = (hints[param.name], info)
    try:
        return pydantic.create_model(
            f"{tool_name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid"),
            **fields,
        )
    except (pydantic.PydanticSchemaGenerationError, TypeError, NameError) as exc:
        raise ConfigurationError(
            f"The parameters of {tool_name!r} cannot be described as JSON: {exc}"
        ) from None


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and Google-style ``Args:`` entries."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1).lower()
            current = None
            continue
        if section is None:
            summary.append(line)
        elif section in ("args", "arguments", "parameters"):
            entry = _ARG_LINE.match(line)
            if entry and (len(line) - len(line.lstrip())) <= 4:
                current = entry.group(1).lstrip("*")
                args[current] = entry.group(2).strip()
            elif current is not None and line.strip():
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), {k: v for k, v in args.items() if v}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"
