"""Several tool sources behind one tool set: Mixpeek tools, the user's functions, hosted tools.

The loops take ``tools`` as a :class:`~mixpeek_openai.tools.MixpeekTools` or as a list
mixing:

* ``MixpeekTools`` (several are fine, even on different clients);
* plain Python functions, sync or ``async`` (see :mod:`mixpeek_openai.functions`), or
  ``ToolDefinition`` objects already made from them;
* hosted-tool dicts (``{"type": "web_search"}``, ``{"type": "file_search", ...}``,
  ``{"type": "mcp", ...}``, ...), sent to the API exactly as given. The API runs them; the
  loop only sees their results.

:func:`as_toolset` turns that into a :class:`Toolbox`, which the loops use like a
``MixpeekTools``: ``chat_tools()`` / ``responses_tools()`` / ``assistants_tools()`` list
every tool in the given order, and ``dispatch`` / ``adispatch`` route each call to the
source that owns its name. The user's functions run through the same dispatcher as the
Mixpeek tools (a :class:`~mixpeek_openai.dispatch.Dispatcher` over their definitions), so
their calls get the same argument validation, deadline, concurrency, call events and
records on ``result.calls``. Every call id gets exactly one result, in the order of the
calls: a repeated id goes to the same source as its first occurrence (which answers it as
a duplicate), and an unknown name is answered by a dispatcher that knows every tool name,
so the model is told all of them.

Checks that are the programmer's business raise :class:`~mixpeek_openai.errors.ConfigurationError`:
two tools with one name, a raw ``{"type": "function"}`` dict (there is nothing to run it:
pass the Python function), and, when a loop starts, a hosted tool the chosen API does not
take (the message says which API takes it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from mixpeek_openai.calls import CallStyle, ToolCall, normalize_calls
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.functions import function_tool
from mixpeek_openai.tools import ToolDefinition

if TYPE_CHECKING:
    from mixpeek_openai.dispatch import DispatchConfig, Dispatcher, ToolCallResult

__all__ = ["Api", "Toolbox", "ToolsArg", "as_toolset", "tools_for_api"]

Api = Literal["chat", "responses", "assistants"]
"""The OpenAI API a loop talks to (decides which tools it may offer)."""

ToolsArg = Any
"""What the loops accept as ``tools``: a tool set, or a list of tool sources (see module)."""

# Which hosted (API-run) tool types each API takes. Chat Completions takes none: its only
# tools are functions (and custom tools, which the model calls like functions).
_RESPONSES_HOSTED = frozenset(
    {
        "file_search",
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "mcp",
        "code_interpreter",
        "image_generation",
        "tool_search",
        "programmatic_tool_calling",
    }
)
_ASSISTANTS_HOSTED = frozenset({"code_interpreter", "file_search"})
# Responses tools whose calls the caller's own code must carry out (a shell command, a
# click, a patch) and answer with a ``*_call_output`` item: the loops cannot.
_CALLER_RUN = frozenset({"computer", "computer_use_preview", "local_shell", "shell", "apply_patch"})
_HOSTED: dict[Api, frozenset[str]] = {
    "chat": frozenset(),
    "responses": _RESPONSES_HOSTED,
    "assistants": _ASSISTANTS_HOSTED,
}
_API_NAMES: dict[Api, str] = {
    "chat": "Chat Completions (run_chat)",
    "responses": "the Responses API (run_responses)",
    "assistants": "the Assistants API (run_assistant)",
}


@runtime_checkable
class _Source(Protocol):
    """A tool source the toolbox can route calls to (``MixpeekTools`` is one)."""

    @property
    def definitions(self) -> Sequence[ToolDefinition]: ...

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]: ...

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]: ...


@dataclass(frozen=True)
class _Definitions:
    """What a :class:`~mixpeek_openai.dispatch.Dispatcher` reads: definitions, no client."""

    definitions: tuple[ToolDefinition, ...]
    config: DispatchConfig | None
    client: None = None


class _FunctionSource:
    """The user's functions, run by a dispatcher of their own (no Mixpeek client needed)."""

    def __init__(self, definitions: tuple[ToolDefinition, ...], dispatcher: Dispatcher) -> None:
        self.definitions = definitions
        self._dispatcher = dispatcher

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        return self._dispatcher.dispatch(calls, style=style)

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        return await self._dispatcher.adispatch(calls, style=style)


def _new_dispatcher(source: _Definitions) -> Dispatcher:
    from mixpeek_openai.dispatch import Dispatcher

    return Dispatcher(source, source.config)


class Toolbox:
    """Mixpeek tool sets, the user's functions and hosted tools as one tool set.

    Args:
        tools: the sources, in the order the model should see them (see the module).
        config: how the user's functions are run (deadline, concurrency, budget,
            ``on_call_event``); ``MixpeekTools`` keep their own configuration. Defaults to
            the configuration of the first ``MixpeekTools`` in the list, if any.

    Raises:
        ConfigurationError: a tool name appears twice, or an entry is not a tool source.
    """

    _sources: list[_Source]
    _function_definitions: tuple[ToolDefinition, ...]
    _hosted: list[dict[str, Any]]
    _order: list[tuple[str, Any]]

    def __init__(self, tools: Iterable[Any], *, config: DispatchConfig | None = None) -> None:
        entries = list(tools)
        sources: list[_Source] = []
        functions: list[ToolDefinition] = []
        hosted: list[dict[str, Any]] = []
        order: list[tuple[str, Any]] = []  # ("definition", def) / ("hosted", dict)
        for entry in entries:
            if isinstance(entry, Toolbox):
                sources.extend(entry._sources)
                functions.extend(entry._function_definitions)
                hosted.extend(entry._hosted)
                order.extend(entry._order)
            elif isinstance(entry, Mapping):
                tool = _hosted_tool(entry)
                hosted.append(tool)
                order.append(("hosted", tool))
            elif isinstance(entry, ToolDefinition) or (
                callable(entry) and not isinstance(entry, _Source)
            ):
                definition = function_tool(entry)
                if definition.kind != "function" or definition.function is None:
                    raise ConfigurationError(
                        f"Tool definition {definition.name!r} is not a function tool; pass "
                        "the MixpeekTools it belongs to instead."
                    )
                functions.append(definition)
                order.append(("definition", definition))
            elif isinstance(entry, _Source):
                sources.append(entry)
                order.extend(("definition", d) for d in entry.definitions)
            else:
                raise ConfigurationError(
                    f"Cannot use a {type(entry).__name__} as a tool: pass MixpeekTools, "
                    "Python functions, or hosted-tool dicts such as {'type': 'web_search'}."
                )
        _check_unique([d for kind, d in order if kind == "definition"])
        if config is None:
            config = next(
                (getattr(s, "config", None) for s in sources if hasattr(s, "config")), None
            )
        self._config = config
        self._order = order
        self._hosted = hosted
        self._function_definitions = tuple(functions)
        self._sources = sources
        self._function_source: _FunctionSource | None = None
        if functions:
            self._function_source = _FunctionSource(
                tuple(functions), _new_dispatcher(_Definitions(tuple(functions), config))
            )
        self._definitions = tuple(d for kind, d in order if kind == "definition")
        # Answers calls to names no source owns, listing every tool the model has.
        self._catalog = _new_dispatcher(_Definitions(self._definitions, config))
        owners: dict[str, _Source] = {}
        for source in self._all_sources():
            for definition in source.definitions:
                owners[definition.name] = source
        self._owners = owners

    # -- what the model is offered -----------------------------------------------------

    @property
    def definitions(self) -> tuple[ToolDefinition, ...]:
        """Every function tool (Mixpeek's and the user's), in the order given."""
        return self._definitions

    @property
    def names(self) -> tuple[str, ...]:
        """The function tools' names, in :attr:`definitions` order."""
        return tuple(d.name for d in self._definitions)

    @property
    def hosted(self) -> tuple[dict[str, Any], ...]:
        """The hosted-tool dicts, as given."""
        return tuple(dict(h) for h in self._hosted)

    def chat_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Tools for Chat Completions ``tools=``; refuses hosted tools (Chat takes none)."""
        return self.tools_for("chat", strict=strict)

    def responses_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Tools for the Responses API ``tools=``: functions, then hosted tools as given,
        in the order of the list."""
        return self.tools_for("responses", strict=strict)

    def assistants_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Tools for an assistant or a run (functions, ``code_interpreter``, ``file_search``)."""
        return self.tools_for("assistants", strict=strict)

    def tools_for(self, api: Api, *, strict: bool = True) -> list[dict[str, Any]]:
        """Every tool in the shape ``api`` takes.

        Raises:
            ConfigurationError: a hosted tool that ``api`` does not take (the message
                names the API that does).
        """
        out: list[dict[str, Any]] = []
        for kind, item in self._order:
            if kind == "hosted":
                _check_hosted(item, api)
                out.append(dict(item))
            elif api == "responses":
                out.append(item.responses_tool(strict=strict))
            else:
                out.append(item.chat_tool(strict=strict))
        return out

    # -- running calls -----------------------------------------------------------------

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        """Run the calls, each through the source that owns its name; one result per
        call, in order. Several sources run at the same time (in worker threads)."""
        batches = self._route(normalize_calls(calls, style=style))
        if not batches:
            return []
        if len(batches) == 1:
            batch = batches[0]
            return list(batch.source.dispatch(batch.raw, style=batch.style))
        results: dict[int, ToolCallResult] = {}
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=len(batches) - 1, thread_name_prefix="mixpeek-openai-toolbox"
        ) as pool:
            futures = [pool.submit(b.source.dispatch, b.raw, style=b.style) for b in batches[1:]]
            first = batches[0]
            _merge(results, first, first.source.dispatch(first.raw, style=first.style))
            for batch, future in zip(batches[1:], futures, strict=True):
                _merge(results, batch, future.result())
        return [results[i] for i in range(len(results))]

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        """Async :meth:`dispatch`: the sources run concurrently on the event loop."""
        batches = self._route(normalize_calls(calls, style=style))
        outcomes = await asyncio.gather(
            *(b.source.adispatch(b.raw, style=b.style) for b in batches)
        )
        results: dict[int, ToolCallResult] = {}
        for batch, outcome in zip(batches, outcomes, strict=True):
            _merge(results, batch, outcome)
        return [results[i] for i in range(len(results))]

    def handle(self, calls: Any, *, style: CallStyle | None = None) -> list[dict[str, Any]]:
        """The outputs of :meth:`dispatch` shaped like the input (see ``MixpeekTools.handle``)."""
        return [r.as_output() for r in self.dispatch(calls, style=style)]

    async def ahandle(self, calls: Any, *, style: CallStyle | None = None) -> list[dict[str, Any]]:
        """Async :meth:`handle`."""
        return [r.as_output() for r in await self.adispatch(calls, style=style)]

    def close(self) -> None:
        """Close the Mixpeek tool sets' pools and sockets (the toolbox can be reused)."""
        for source in self._sources:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Toolbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        hosted = [h.get("type") for h in self._hosted]
        return f"Toolbox(tools={list(self.names)!r}, hosted={hosted!r})"

    # -- routing -----------------------------------------------------------------------

    def _all_sources(self) -> list[_Source]:
        extra: list[_Source] = [self._function_source] if self._function_source else []
        return [*self._sources, *extra]

    def _route(self, calls: list[ToolCall]) -> list[_Batch]:
        """Group the calls by the source that answers them, keeping their positions.

        A call id goes wherever its first occurrence went, so the source that ran it also
        answers the repeat (as a duplicate); names nobody owns go to the catalogue.
        """
        by_id: dict[str, _Source] = {}
        batches: dict[tuple[int, CallStyle], _Batch] = {}
        catalog = _CatalogSource(self._catalog)
        for position, call in enumerate(calls):
            source = by_id.get(call.call_id)
            if source is None:
                source = self._owners.get(call.name, catalog)
                by_id[call.call_id] = source
            key = (id(source), call.style)
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = _Batch(source, call.style, [], [])
            batch.positions.append(position)
            batch.raw.append(_raw_call(call))
        return list(batches.values())


@dataclass
class _Batch:
    source: Any
    style: CallStyle
    positions: list[int]
    raw: list[dict[str, Any]]


class _CatalogSource:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self.definitions: tuple[ToolDefinition, ...] = ()

    def dispatch(self, calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        return self._dispatcher.dispatch(calls, style=style)

    async def adispatch(
        self, calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        return await self._dispatcher.adispatch(calls, style=style)


def _merge(results: dict[int, ToolCallResult], batch: _Batch, out: list[ToolCallResult]) -> None:
    if len(out) != len(batch.positions):
        from mixpeek_openai.errors import LoopError

        raise LoopError(
            f"A tool source answered {len(out)} of {len(batch.positions)} calls: every call "
            "needs exactly one output."
        )
    for position, result in zip(batch.positions, out, strict=True):
        results[position] = result


def _raw_call(call: ToolCall) -> dict[str, Any]:
    """``call`` back in its API's wire shape, for a source's ``dispatch``."""
    if call.style == "responses":
        raw: dict[str, Any] = {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments_json,
        }
        if call.item_id:
            raw["id"] = call.item_id
        return raw
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _hosted_tool(entry: Mapping[str, Any]) -> dict[str, Any]:
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigurationError("A hosted-tool dict needs a 'type' (e.g. {'type': 'web_search'}).")
    if kind in ("function", "custom"):
        raise ConfigurationError(
            f"A {{'type': {kind!r}}} dict has nothing to run it: pass the Python function "
            "itself (its schema is built from its signature)."
        )
    return dict(entry)


def _check_hosted(tool: Mapping[str, Any], api: Api) -> None:
    kind = str(tool.get("type"))
    if kind in _HOSTED[api]:
        return
    if kind in _CALLER_RUN:
        raise ConfigurationError(
            f"The hosted tool {kind!r} is run by your own code (the API asks for the action "
            f"and waits for a {kind}_call_output item), which {_API_NAMES[api]} cannot do "
            "for you. Remove it from the tools, or drive the Responses API yourself for it."
        )
    takers = [name for other, name in _API_NAMES.items() if kind in _HOSTED[other]]
    where = (
        f"it is a tool of {' and '.join(takers)}"
        if takers
        else "no loop of this package knows it; the Responses API takes most hosted tools"
    )
    if api == "responses" and not takers:
        return  # a hosted tool newer than this table: the Responses API will judge it
    raise ConfigurationError(
        f"{_API_NAMES[api]} does not take the hosted tool {kind!r}: {where}. Remove it from "
        "the tools, or use that API's loop."
    )


def _check_unique(definitions: Sequence[ToolDefinition]) -> None:
    seen: set[str] = set()
    repeated: list[str] = []
    for definition in definitions:
        if definition.name in seen and definition.name not in repeated:
            repeated.append(definition.name)
        seen.add(definition.name)
    if repeated:
        raise ConfigurationError(
            f"Tool names must be unique across the tools, but {', '.join(map(repr, repeated))} "
            "appear more than once. Rename a function (function_tool(fn, name=...)) or build "
            "the Mixpeek tools with another name."
        )


def as_toolset(tools: ToolsArg) -> Any:
    """The loops' view of ``tools``: a tool set as is, anything else as a :class:`Toolbox`.

    A single function or hosted-tool dict counts as a list of one.
    """
    if isinstance(tools, Toolbox):
        return tools
    if isinstance(tools, (list, tuple)):
        return Toolbox(tools)
    if isinstance(tools, (Mapping, ToolDefinition)):
        return Toolbox([tools])
    if hasattr(tools, "chat_tools") and hasattr(tools, "dispatch"):
        return tools
    if callable(tools):
        return Toolbox([tools])
    raise ConfigurationError(
        f"tools must be a MixpeekTools or a list of tools, got {type(tools).__name__}."
    )


def tools_for_api(toolset: Any, api: Api) -> list[Any]:
    """The tools ``api`` is offered from ``toolset`` (a :class:`Toolbox` or any tool set).

    Raises:
        ConfigurationError: a hosted tool ``api`` does not take.
    """
    if isinstance(toolset, Toolbox):
        return toolset.tools_for(api)
    if api == "responses":
        return list(toolset.responses_tools())
    return list(toolset.chat_tools())
