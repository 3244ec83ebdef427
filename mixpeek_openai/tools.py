"""Mixpeek retrievers as OpenAI function tools: :class:`MixpeekTools`.

:class:`MixpeekTools` fetches retriever definitions (concurrently, cached:
:mod:`mixpeek_openai.retriever_cache`), turns each retriever's ``input_schema`` into a
typed arguments model (:mod:`mixpeek_openai.schema`) and offers one *search* tool per
retriever, in the Chat Completions / Assistants format (:meth:`MixpeekTools.chat_tools`)
and the Responses format (:meth:`MixpeekTools.responses_tools`), plus the exploration
actions asked for (:mod:`mixpeek_openai.catalogue`). It answers the model's calls through
its :class:`~mixpeek_openai.dispatch.Dispatcher`, which owns connections and worker
threads: use the tool set as a context manager, or call :meth:`MixpeekTools.close`.

Each tool is a :class:`~mixpeek_openai.definitions.ToolDefinition`. The model's
arguments can only fill the retriever's ``inputs``, a bounded page size and a bounded
offset; the retriever id, namespace, developer filters and write options are fixed by the
developer. Names follow :mod:`mixpeek_openai._naming`; the page-size argument is called
``limit`` unless the retriever has an input of that name (then ``max_results``,
``page_size``, ...), and ``null`` means "the maximum page size".
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from mixpeek_openai._arguments import (
    empty_model,
    offset_field_name,
    page_field_name,
    wire_names,
    with_paging,
)
from mixpeek_openai._naming import MAX_DESCRIPTION_CHARS, NAME_RE, clip, tool_base, unique
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.catalogue import (
    ACTIONS,
    NAMESPACE_ACTIONS,
    RETRIEVER_ACTIONS,
    action_specs,
    action_tool,
)
from mixpeek_openai.definitions import ToolDefinition, path_segment, to_plain
from mixpeek_openai.errors import ConfigurationError, SchemaMismatchError, UnknownActionError
from mixpeek_openai.retriever_cache import DEFAULT_RETRIEVER_CACHE, RetrieverCache
from mixpeek_openai.schema import build_arguments_model, pascal_case, to_inputs

if TYPE_CHECKING:
    from mixpeek_openai.calls import CallStyle, ToolCallResult
    from mixpeek_openai.config import DispatchConfig
    from mixpeek_openai.dispatch import Dispatcher

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_PAGE_SIZE",
    "DEFAULT_RETRIEVER_CACHE",
    "MAX_DESCRIPTION_CHARS",
    "NAMESPACE_ACTIONS",
    "RETRIEVER_ACTIONS",
    "MixpeekTools",
    "RetrieverCache",
    "ToolDefinition",
]

DEFAULT_MAX_PAGE_SIZE = 10
"""Largest page size the model may ask a search tool for, unless configured."""


_OWNED_EXECUTE_KEYS = frozenset({"inputs", "filters", "limit", "pagination", "stream"})


_FALLBACK_EXECUTE_KEYS = frozenset(
    {
        "expand",
        "skip_cache",
        "return_presigned_urls",
        "return_vectors",
        "write_token",
        "consistency",
        "target_collection_id",
        "explain",
    }
)


_WRITE_OPTIONS = frozenset({"target_collection_id"})


def _allowed_execute_options() -> frozenset[str]:
    try:
        from mixpeek.models.execute_retriever_request import ExecuteRetrieverRequest
    except ImportError:  # pragma: no cover - mixpeek is a dependency
        return _FALLBACK_EXECUTE_KEYS
    return frozenset(ExecuteRetrieverRequest.model_fields) - _OWNED_EXECUTE_KEYS


@dataclass(frozen=True)
class _RetrieverOptions:
    """What the developer fixed for one retriever's tools."""

    retriever_id: str
    model: type[BaseModel] | None = None
    name: str | None = None
    description: str | None = None
    fields: tuple[str, ...] | None = None
    filters: dict[str, Any] | None = None
    max_page_size: int | None = None
    execute_options: dict[str, Any] = field(default_factory=dict)
    layout: Literal["columns", "objects"] = "columns"
    images: int = 0


def _retriever_label(definition: Mapping[str, Any], retriever_id: str) -> str:
    name = definition.get("retriever_name")
    return name if isinstance(name, str) and name.strip() else retriever_id


def _input_schema(definition: Mapping[str, Any]) -> dict[str, Any]:
    schema = definition.get("input_schema")
    return dict(schema) if isinstance(schema, Mapping) else {}


def _collections(definition: Mapping[str, Any]) -> list[str]:
    for key in ("collection_identifiers", "collection_ids"):
        value = definition.get(key)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
    return []


def _search_description(definition: Mapping[str, Any], label: str, override: str | None) -> str:
    if override:
        return clip(override)
    own = definition.get("description")
    parts = [str(own).strip()] if isinstance(own, str) and own.strip() else []
    if not parts:
        parts.append(f"Search with the Mixpeek retriever {label!r}.")
    collections = _collections(definition)
    where = f" over {', '.join(collections[:5])}" if collections else ""
    parts.append(f"(Mixpeek retriever {label!r}{where}; returns the best-matching documents.)")
    return clip(" ".join(parts))


def _check_user_model(
    model: type[BaseModel], definition: Mapping[str, Any], retriever_id: str
) -> None:
    schema = _input_schema(definition)
    declared = wire_names(model)
    unknown = sorted(set(declared) - set(schema))
    required = sorted(
        key
        for key, spec in schema.items()
        if isinstance(spec, Mapping)
        and spec.get("required") is True
        and spec.get("default") is None
    )
    missing = [key for key in required if key not in declared]
    label = _retriever_label(definition, retriever_id)
    problems = []
    if missing:
        problems.append(f"missing required input(s) {', '.join(missing)}")
    if unknown:
        problems.append(
            f"field(s) {', '.join(unknown)} not in the retriever's input_schema "
            f"(inputs are: {', '.join(sorted(schema)) or 'none'})"
        )
    if problems:
        raise SchemaMismatchError(
            f"Model {model.__name__} does not fit retriever {label!r} ({retriever_id}): "
            + "; ".join(problems)
            + ". Update the model (or regenerate it with codegen).",
            retriever_id=retriever_id,
            model=model.__name__,
            fields=missing + unknown,
        )


def _describe_payload(
    definition: Mapping[str, Any], retriever_id: str, search_tool: str
) -> dict[str, Any]:
    stages = []
    for stage in definition.get("stages") or []:
        if isinstance(stage, Mapping):
            stages.append(
                {k: stage[k] for k in ("stage_name", "stage_type") if stage.get(k) is not None}
            )
    inputs: dict[str, Any] = {}
    for key, spec in _input_schema(definition).items():
        if not isinstance(spec, Mapping):
            continue
        inputs[key] = {
            k: spec[k]
            for k in ("type", "description", "required", "default", "enum", "examples")
            if k in spec
        }
    return {
        "retriever_id": definition.get("retriever_id") or retriever_id,
        "retriever_name": definition.get("retriever_name"),
        "description": definition.get("description"),
        "collections": _collections(definition),
        "search_tool": search_tool,
        "inputs": inputs,
        "stages": stages,
    }


class MixpeekTools:
    """Mixpeek retrievers (and optional exploration actions) as OpenAI function tools.

    Build it with :meth:`from_retrievers` or :meth:`from_namespace` (definitions fetched
    concurrently and cached), or directly from definitions you already have::

        tools = MixpeekTools(client, retrievers=[definition, ...])

    Args:
        client: a ``mixpeek.Mixpeek`` client (used to fetch definitions and, by the
            dispatcher, to send requests). May be ``None`` to only build schemas.
        retrievers: retriever definitions (``GET /retrievers/{id}`` payloads) to offer.
        actions: exploration actions to add (:data:`ACTIONS`).
        config: a ``DispatchConfig`` for :meth:`dispatch` / :meth:`handle`.
        max_page_size: default upper bound of each search tool's page-size argument.
        cache: the definitions cache (default: :data:`DEFAULT_RETRIEVER_CACHE`).
        max_fetch_workers: threads used to fetch several definitions at once.

    Raises:
        UnknownActionError: an action name is not one of :data:`ACTIONS`.
    """

    def __init__(
        self,
        client: Any,
        retrievers: Iterable[Mapping[str, Any]] = (),
        *,
        actions: Iterable[str] = (),
        config: DispatchConfig | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        cache: RetrieverCache | None = None,
        max_fetch_workers: int = 16,
    ) -> None:
        _check_page_size(max_page_size)
        self._client = client
        self._config = config
        self._cache = cache if cache is not None else DEFAULT_RETRIEVER_CACHE
        self._max_page_size = max_page_size
        self._max_fetch_workers = max_fetch_workers
        self._actions = _check_actions(actions)
        self._lock = threading.RLock()
        self._definitions_by_id: dict[str, dict[str, Any]] = {}
        self._options: dict[str, _RetrieverOptions] = {}
        self._tools: tuple[ToolDefinition, ...] = ()
        self._by_name: dict[str, ToolDefinition] = {}
        self._dispatcher: Dispatcher | None = None
        for definition in retrievers:
            rid = _definition_id(definition)
            self._definitions_by_id[rid] = to_plain(definition)
            self._options.setdefault(rid, _RetrieverOptions(retriever_id=rid))
        self._rebuild()

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def from_retrievers(
        cls,
        client: Any,
        retriever_ids: Iterable[str],
        *,
        actions: Iterable[str] = (),
        config: DispatchConfig | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        cache: RetrieverCache | None = None,
        refresh: bool = False,
        max_fetch_workers: int = 16,
    ) -> MixpeekTools:
        """Tools for the given retrievers, fetched with ``client.retrievers.get`` concurrently.

        Definitions come from ``cache`` when present (no request); ``refresh=True`` fetches
        them again.

        Raises:
            RetrieverNotFoundError: a retriever id does not exist in the namespace.
            UnknownActionError: an action name is not one of :data:`ACTIONS`.
        """
        ids = list(retriever_ids)
        if isinstance(retriever_ids, str):
            ids = [retriever_ids]
        _check_actions(actions)
        store = cache if cache is not None else DEFAULT_RETRIEVER_CACHE
        fetched = store.fetch_many(client, ids, refresh=refresh, max_workers=max_fetch_workers)
        definitions = [
            {**d, "retriever_id": d.get("retriever_id") or rid}
            for rid, d in zip(ids, fetched, strict=True)
        ]
        return cls(
            client,
            definitions,
            actions=actions,
            config=config,
            max_page_size=max_page_size,
            cache=store,
            max_fetch_workers=max_fetch_workers,
        )

    @classmethod
    def from_namespace(
        cls,
        client: Any,
        *,
        actions: Iterable[str] = (),
        config: DispatchConfig | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
        cache: RetrieverCache | None = None,
        refresh: bool = False,
        max_fetch_workers: int = 16,
    ) -> MixpeekTools:
        """Tools for every retriever in the client's namespace (``client.retrievers.list()``)."""
        _check_actions(actions)
        store = cache if cache is not None else DEFAULT_RETRIEVER_CACHE
        definitions = store.list_namespace(client, refresh=refresh)
        return cls(
            client,
            definitions,
            actions=actions,
            config=config,
            max_page_size=max_page_size,
            cache=store,
            max_fetch_workers=max_fetch_workers,
        )

    # -- configuration -------------------------------------------------------------------

    def add_retriever(
        self,
        retriever_id: str,
        *,
        model: type[BaseModel] | None = None,
        name: str | None = None,
        description: str | None = None,
        fields: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        max_page_size: int | None = None,
        execute_options: Mapping[str, Any] | None = None,
        layout: Literal["columns", "objects"] = "columns",
        images: int = 0,
    ) -> MixpeekTools:
        """Add a retriever, or change how an already added one is offered; returns ``self``.

        Args:
            retriever_id: the retriever (fetched through the cache if not known yet).
            model: your own arguments model; its fields (by alias) must be inputs of the
                retriever, and every required input must be there.
            name: the tool name (default ``search_<base>``, see the module docstring).
            description: the tool description (default: the retriever's).
            fields: document fields the model gets to see (projection).
            filters: top-level ``filters`` always sent with the search; the model cannot
                change them.
            max_page_size: upper bound of the page-size argument for this tool.
            execute_options: other fixed execute body keys (e.g. ``target_collection_id``,
                ``return_presigned_urls``); a write option makes the call non-idempotent.
            layout: how results are laid out for the model: ``"columns"`` (column names
                once, one row per document; the most compact) or ``"objects"`` (one JSON
                object per document).
            images: how many of the top documents' thumbnails go to the model as
                low-detail images. Only the Responses API takes images in a tool output;
                Chat Completions ``tool`` messages and Assistants tool outputs take text, so
                :meth:`chat_tools` (and the Chat and Assistants loops) refuse a tool with
                images, saying so.

        Raises:
            SchemaMismatchError: ``model`` does not fit the retriever's ``input_schema``.
            ConfigurationError: an invalid name, page size, or execute option.
            RetrieverNotFoundError: the retriever does not exist.
        """
        if max_page_size is not None:
            _check_page_size(max_page_size)
        if name is not None and not NAME_RE.match(name):
            raise ConfigurationError(
                f"Tool name {name!r} is not valid: use 1-64 characters from a-z, A-Z, 0-9, _ and -."
            )
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"model must be a pydantic BaseModel subclass, got {model!r}.")
        if filters is not None and not isinstance(filters, Mapping):
            raise ConfigurationError(
                'filters must be a mapping like {"AND": [{"field", "operator", "value"}]}.'
            )
        options = _check_execute_options(execute_options or {})
        if layout not in ("columns", "objects"):
            raise ConfigurationError(f"layout must be 'columns' or 'objects', got {layout!r}.")
        if isinstance(images, bool) or not isinstance(images, int) or not 0 <= images <= 10:
            raise ConfigurationError(f"images must be an integer from 0 to 10, got {images!r}.")
        with self._lock:
            definition = self._definitions_by_id.get(retriever_id)
            if definition is None:
                definition = self._cache.fetch(self._client, retriever_id)
                definition = {
                    **definition,
                    "retriever_id": _definition_id(definition, retriever_id),
                }
            rid = _definition_id(definition, retriever_id)
            new_options = _RetrieverOptions(
                retriever_id=rid,
                model=model,
                name=name,
                description=description,
                fields=tuple(fields) if fields is not None else None,
                filters=to_plain(filters) if filters is not None else None,
                max_page_size=max_page_size,
                execute_options=options,
                layout=layout,
                images=images,
            )
            previous = (dict(self._definitions_by_id), dict(self._options))
            self._definitions_by_id[rid] = definition
            self._options[rid] = new_options
            try:
                self._rebuild()
            except Exception:
                self._definitions_by_id, self._options = previous
                raise
        return self

    def refresh(self) -> MixpeekTools:
        """Fetch every retriever definition again (updating the cache) and rebuild the tools."""
        with self._lock:
            ids = list(self._definitions_by_id)
            fetched = self._cache.fetch_many(
                self._client, ids, refresh=True, max_workers=self._max_fetch_workers
            )
            for rid, definition in zip(ids, fetched, strict=True):
                self._definitions_by_id[rid] = {**definition, "retriever_id": rid}
            self._rebuild()
        return self

    # -- building ----------------------------------------------------------------------

    def _rebuild(self) -> None:
        taken = {o.name for o in self._options.values() if o.name}
        if len(taken) != len([o for o in self._options.values() if o.name]):
            raise ConfigurationError("Two retrievers were given the same tool name.")
        search_tools: list[ToolDefinition] = []
        extra_tools: list[ToolDefinition] = []
        for rid, definition in self._definitions_by_id.items():
            opts = self._options[rid]
            label = _retriever_label(definition, rid)
            base = tool_base(label, rid)
            search_name = opts.name or unique(f"search_{base}", taken)
            search_tool, inputs_model = self._search_tool(definition, rid, opts, search_name)
            search_tools.append(search_tool)
            if "describe" in self._actions:
                extra_tools.append(
                    self._describe_tool(
                        definition, rid, unique(f"describe_{base}", taken), search_name
                    )
                )
            if "explain" in self._actions:
                extra_tools.append(
                    self._explain_tool(
                        definition,
                        rid,
                        unique(f"explain_{base}", taken),
                        inputs_model,
                        search_name,
                    )
                )
        specs = action_specs(self._max_page_size)
        for action in self._actions:
            if action in specs:
                extra_tools.append(
                    action_tool(action, specs[action], unique(action, taken), self._max_page_size)
                )
        tools = tuple(search_tools + extra_tools)
        self._tools = tools
        self._by_name = {t.name: t for t in tools}

    def _search_tool(
        self,
        definition: Mapping[str, Any],
        rid: str,
        opts: _RetrieverOptions,
        name: str,
    ) -> tuple[ToolDefinition, type[BaseModel]]:
        label = _retriever_label(definition, rid)
        if opts.model is not None:
            _check_user_model(opts.model, definition, rid)
            inputs_model = opts.model
        else:
            inputs_model = build_arguments_model(
                _input_schema(definition),
                model_name=pascal_case(label) + "Inputs",
                description=f"Inputs of the Mixpeek retriever {label!r}.",
            )
        max_page_size = opts.max_page_size or self._max_page_size
        page_field = page_field_name(inputs_model)
        offset_field = offset_field_name(inputs_model, {page_field})
        arguments_model = with_paging(inputs_model, page_field, max_page_size, offset_field)
        fixed_filters = opts.filters
        execute_options = dict(opts.execute_options)
        idempotent = not (_WRITE_OPTIONS & set(execute_options))
        # Only declared inputs go out, even if a user model allows extra keys.
        declared = set(wire_names(inputs_model))

        def build(arguments: BaseModel) -> MixpeekRequest:
            requested = getattr(arguments, page_field, None)
            limit = max_page_size if requested is None else max(1, min(requested, max_page_size))
            skip = getattr(arguments, offset_field, None) or 0
            inputs = to_inputs(arguments, exclude={page_field, offset_field})
            body: dict[str, Any] = {
                **copy.deepcopy(execute_options),
                "inputs": {k: v for k, v in inputs.items() if k in declared},
            }
            if skip >= limit:
                # A later page: offset pagination counts pages, so the offset is rounded
                # down to a page boundary (the next-page offset the output names always is).
                body["pagination"] = {
                    "method": "offset",
                    "page_size": limit,
                    "page_number": skip // limit + 1,
                }
            else:
                body["limit"] = limit
            if fixed_filters is not None:
                body["filters"] = copy.deepcopy(fixed_filters)
            return MixpeekRequest(
                "POST",
                f"/retrievers/{path_segment(rid)}/execute",
                body=body,
                idempotent=idempotent,
                retriever_id=rid,
                labels={"tool": name, "kind": "search"},
            )

        tool = ToolDefinition(
            name=name,
            description=_search_description(definition, label, opts.description),
            arguments_model=arguments_model,
            retriever_id=rid,
            kind="search",
            projection=opts.fields,
            max_page_size=max_page_size,
            page_size_field=page_field,
            offset_field=offset_field,
            request_builder=build,
            layout=opts.layout,
            images=opts.images,
        )
        return tool, inputs_model

    def _describe_tool(
        self, definition: Mapping[str, Any], rid: str, name: str, search_name: str
    ) -> ToolDefinition:
        label = _retriever_label(definition, rid)
        payload = _describe_payload(definition, rid, search_name)

        def answer(arguments: BaseModel) -> Any:
            return copy.deepcopy(payload)

        return ToolDefinition(
            name=name,
            description=clip(
                f"Describe what the retriever {label!r} searches and which inputs "
                f"{search_name} takes (answered instantly, no search is run)."
            ),
            arguments_model=empty_model(pascal_case(label) + "DescribeArgs"),
            retriever_id=rid,
            kind="describe",
            request_builder=lambda _args: MixpeekRequest(
                "GET", f"/retrievers/{path_segment(rid)}", retriever_id=rid
            ),
            local_answer=answer,
        )

    def _explain_tool(
        self,
        definition: Mapping[str, Any],
        rid: str,
        name: str,
        inputs_model: type[BaseModel],
        search_name: str,
    ) -> ToolDefinition:
        label = _retriever_label(definition, rid)

        def build(arguments: BaseModel) -> MixpeekRequest:
            return MixpeekRequest(
                "POST",
                f"/retrievers/{path_segment(rid)}/execute/explain",
                body={"inputs": to_inputs(arguments)},
                retriever_id=rid,
                labels={"tool": name, "kind": "explain"},
            )

        return ToolDefinition(
            name=name,
            description=clip(
                f"Explain how the retriever {label!r} would run {search_name} for these inputs "
                "(its stages and cost estimate) without running the search."
            ),
            arguments_model=inputs_model,
            retriever_id=rid,
            kind="explain",
            request_builder=build,
        )

    # -- the tool set ------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Mixpeek client requests are sent with."""
        return self._client

    @property
    def config(self) -> DispatchConfig:
        """The dispatch configuration (a default ``DispatchConfig`` unless one was given)."""
        if self._config is None:
            from mixpeek_openai.dispatch import DispatchConfig

            self._config = DispatchConfig()
        return self._config

    @property
    def cache(self) -> RetrieverCache:
        """The retriever definitions cache in use."""
        return self._cache

    @property
    def actions(self) -> tuple[str, ...]:
        """The exploration actions enabled, in the order given."""
        return self._actions

    @property
    def definitions(self) -> tuple[ToolDefinition, ...]:
        """Every tool: search tools first, then describe/explain tools, then actions."""
        return self._tools

    @property
    def names(self) -> tuple[str, ...]:
        """The tool names, in :attr:`definitions` order."""
        return tuple(t.name for t in self._tools)

    @property
    def retrievers(self) -> tuple[dict[str, Any], ...]:
        """Copies of the retriever definitions the tools were built from."""
        return tuple(copy.deepcopy(d) for d in self._definitions_by_id.values())

    def get(self, name: str) -> ToolDefinition | None:
        """The tool called ``name``, or ``None`` when there is none."""
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> ToolDefinition:
        """The tool called ``name``; ``KeyError`` (listing the tools) when there is none."""
        tool = self._by_name.get(name)
        if tool is None:
            raise KeyError(f"No tool named {name!r}; tools are: {', '.join(self.names)}")
        return tool

    def __contains__(self, name: object) -> bool:
        """Whether a tool called ``name`` exists."""
        return name in self._by_name

    def __iter__(self) -> Iterator[ToolDefinition]:
        """Iterate over :attr:`definitions`."""
        return iter(self._tools)

    def __len__(self) -> int:
        """How many tools there are."""
        return len(self._tools)

    def chat_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Tools for Chat Completions ``tools=`` (the Assistants API takes the same shape).

        Raises:
            ConfigurationError: a tool was added with ``images`` (Responses only).
        """
        return [t.chat_tool(strict=strict) for t in self._tools]

    def responses_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Tools for the Responses API ``tools=`` (flat ``{"type": "function", "name", ...}``)."""
        return [t.responses_tool(strict=strict) for t in self._tools]

    # -- dispatching (delegated) ---------------------------------------------------------

    def _get_dispatcher(self) -> Dispatcher:
        # One dispatcher per tool set (it owns the connection pool); it reads the current
        # definitions on every call, so rebuilding the tools does not replace it.
        with self._lock:
            if self._dispatcher is None:
                from mixpeek_openai.dispatch import Dispatcher

                self._dispatcher = Dispatcher(self)
            return self._dispatcher

    def dispatch(self, tool_calls: Any, *, style: CallStyle | None = None) -> list[ToolCallResult]:
        """Run the model's tool calls; one ``ToolCallResult`` per call, in order.

        ``tool_calls`` may be Chat Completions tool calls, Assistants ``required_action``
        tool calls or Responses ``function_call`` items (objects or dicts); ``style``
        forces how plain dicts are read. Delegates to :class:`~mixpeek_openai.dispatch.Dispatcher`.
        """
        return self._get_dispatcher().dispatch(tool_calls, style=style)

    async def adispatch(
        self, tool_calls: Any, *, style: CallStyle | None = None
    ) -> list[ToolCallResult]:
        """Async :meth:`dispatch` (same core)."""
        return await self._get_dispatcher().adispatch(tool_calls, style=style)

    def handle(self, tool_calls: Any, *, style: CallStyle | None = None) -> list[dict[str, Any]]:
        """Run the tool calls and return outputs shaped like the input: tool messages
        (Chat), ``tool_outputs`` entries (Assistants) or ``function_call_output`` items
        (Responses), one per call id, in order."""
        return self._get_dispatcher().handle(tool_calls, style=style)

    async def ahandle(
        self, tool_calls: Any, *, style: CallStyle | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`handle` (same core)."""
        return await self._get_dispatcher().ahandle(tool_calls, style=style)

    def close(self) -> None:
        """Close this tool set's connections and stop its worker threads.

        The tool set stays usable: a later call opens what it needs again.
        """
        with self._lock:
            dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.close()

    async def aclose(self) -> None:
        """:meth:`close`, for ``async with`` (closing never blocks on the network)."""
        self.close()

    def __enter__(self) -> MixpeekTools:
        """The tool set itself; :meth:`close` runs on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the tool set."""
        self.close()

    async def __aenter__(self) -> MixpeekTools:
        """The tool set itself; :meth:`aclose` runs on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the tool set."""
        await self.aclose()

    def as_agents_tools(self, **options: Any) -> list[Any]:
        """The tools as openai-agents ``FunctionTool`` objects that run this dispatcher
        (needs the ``agents`` extra); see :func:`mixpeek_openai.agents.as_agents_tools`."""
        from mixpeek_openai.agents import as_agents_tools

        return as_agents_tools(self, **options)

    def __repr__(self) -> str:
        """API root, namespace and tool names (never the API key)."""
        base_url, namespace = _client_scope(self._client)
        return (
            f"MixpeekTools(base_url={base_url!r}, namespace={namespace!r}, "
            f"tools={list(self.names)!r})"
        )


def _definition_id(definition: Mapping[str, Any], fallback: str | None = None) -> str:
    rid = definition.get("retriever_id")
    if isinstance(rid, str) and rid:
        return rid
    if fallback:
        return fallback
    name = definition.get("retriever_name")
    if isinstance(name, str) and name:
        return name
    raise ConfigurationError("A retriever definition needs a retriever_id (or retriever_name).")


def _check_actions(actions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(actions, str):
        actions = [actions]
    chosen = tuple(dict.fromkeys(actions))
    unknown = [a for a in chosen if a not in ACTIONS]
    if unknown:
        raise UnknownActionError(unknown, list(ACTIONS))
    return chosen


def _check_page_size(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_page_size must be a positive integer, got {value!r}.")


def _check_execute_options(options: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise ConfigurationError("execute_options must be a mapping of execute body keys.")
    allowed = _allowed_execute_options()
    if "settings" in options:
        raise ConfigurationError(
            "execute_options may not contain 'settings': the execute API does not declare it "
            "(undeclared keys are refused). Valid options are: " + ", ".join(sorted(allowed)) + "."
        )
    bad = sorted(k for k in options if k not in allowed)
    if bad:
        owned = [k for k in bad if k in _OWNED_EXECUTE_KEYS]
        hint = (
            f" ({', '.join(owned)} are set by the tool: use filters=/max_page_size=)"
            if owned
            else ""
        )
        raise ConfigurationError(
            f"Unknown execute option(s) {', '.join(bad)}{hint}. "
            f"Valid options are: {', '.join(sorted(allowed))}."
        )
    return dict(to_plain(dict(options)))


def _client_scope(client: Any) -> tuple[str, str]:
    base_url = str(getattr(client, "base_url", "") or "")
    namespace = str(getattr(client, "namespace", "") or "")
    return base_url, namespace
