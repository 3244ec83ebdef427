"""Mixpeek retrievers as OpenAI function tools.

:class:`MixpeekTools` fetches retriever definitions (concurrently, cached), turns each
retriever's ``input_schema`` into a typed arguments model (:mod:`mixpeek_openai.schema`)
and offers one *search* tool per retriever, in the Chat Completions / Assistants format
(:meth:`MixpeekTools.chat_tools`) and the Responses format
(:meth:`MixpeekTools.responses_tools`).

Each tool is a :class:`ToolDefinition`: a name, a description, an arguments model, and a
pure :meth:`ToolDefinition.to_request` that decides the exact Mixpeek request. The model's
arguments can only fill the retriever's ``inputs`` and a bounded page size; the retriever
id, namespace, developer filters and write options are fixed by the developer.

Tool naming:

* search tools are ``search_<base>``, where ``<base>`` is the retriever name sanitised to
  ``[a-z0-9_-]`` with a leading ``search_`` / trailing ``_search`` removed
  (``product_demo_search`` -> ``search_product_demo``), cut to 64 characters and made
  unique with ``_2``, ``_3``... suffixes;
* with ``actions=["describe"]`` / ``["explain"]`` each retriever also gets
  ``describe_<base>`` (answered locally from the cached definition, no request)
  and ``explain_<base>`` (its execution plan via ``/execute/explain``);
* the other actions (:data:`NAMESPACE_ACTIONS`) add one tool each, named after the action.

The page-size argument is called ``limit`` unless the retriever has an input of that name
(then ``max_results``, ``page_size``, ...). ``null`` means "the maximum page size".
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.errors import (
    ConfigurationError,
    RetrieverNotFoundError,
    SchemaMismatchError,
    UnknownActionError,
)
from mixpeek_openai.schema import (
    _pascal,
    build_arguments_model,
    parse_arguments,
    strict_json_schema,
    to_inputs,
)

if TYPE_CHECKING:
    from mixpeek_openai.calls import CallStyle
    from mixpeek_openai.dispatch import DispatchConfig, Dispatcher, ToolCallResult

__all__ = [
    "ACTIONS",
    "DEFAULT_RETRIEVER_CACHE",
    "NAMESPACE_ACTIONS",
    "RETRIEVER_ACTIONS",
    "MixpeekTools",
    "RetrieverCache",
    "ToolDefinition",
]

ToolKind = Literal["search", "describe", "explain", "action", "function"]

NAMESPACE_ACTIONS: tuple[str, ...] = (
    "search_retrievers",
    "get_retriever",
    "list_collections",
    "get_collection",
    "list_taxonomies",
    "get_taxonomy",
    "list_clusters",
    "get_object",
)
"""Exploration actions that add one tool each to the tool set."""

RETRIEVER_ACTIONS: tuple[str, ...] = ("describe", "explain")
"""Actions that add one tool per retriever (``describe_<name>``, ``explain_<name>``)."""

ACTIONS: tuple[str, ...] = NAMESPACE_ACTIONS + RETRIEVER_ACTIONS
"""Every valid name for ``actions=[...]``."""

MAX_DESCRIPTION_CHARS = 1024
"""Tool descriptions are cut to this many characters (at a word boundary)."""

DEFAULT_MAX_PAGE_SIZE = 10
"""Largest page size the model may ask a search tool for, unless configured."""

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PAGE_FIELD_CANDIDATES = ("limit", "max_results", "page_size", "result_limit", "top_n")
# Keys of the execute body the tool set itself owns; everything else the generated
# ExecuteRetrieverRequest declares is a developer option.
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


def _segment(value: str) -> str:
    """One URL path segment; ids never get to walk the path (``../``)."""
    return quote(str(value), safe="")


def _plain(value: Any) -> Any:
    """A deep, plain-``dict`` copy of a client response (which uses a dict subclass)."""
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------
# ToolDefinition
# ---------------------------------------------------------------------------------------


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
        """The tool as a Chat Completions (and Assistants) ``function`` tool."""
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


# ---------------------------------------------------------------------------------------
# Retriever definitions cache
# ---------------------------------------------------------------------------------------

_CacheKey = tuple[str, str, str]
_LIST_KEY = "\x00list"  # cannot collide with a retriever id


def _client_scope(client: Any) -> tuple[str, str]:
    base_url = str(getattr(client, "base_url", "") or "")
    namespace = str(getattr(client, "namespace", "") or "")
    return base_url, namespace


class RetrieverCache:
    """Thread-safe cache of retriever definitions, keyed by base URL, namespace and id.

    :class:`MixpeekTools` uses :data:`DEFAULT_RETRIEVER_CACHE` unless given another one, so
    building the same tools twice costs no requests. Call :meth:`clear` (or
    :meth:`MixpeekTools.refresh`, or pass ``refresh=True``) to fetch again.
    """

    def __init__(self) -> None:
        """An empty cache."""
        self._lock = threading.Lock()
        self._entries: dict[_CacheKey, Any] = {}

    def __len__(self) -> int:
        """How many retriever definitions are cached."""
        with self._lock:
            return sum(1 for key in self._entries if key[2] != _LIST_KEY)

    def __repr__(self) -> str:
        """The number of cached definitions."""
        return f"RetrieverCache(entries={len(self)})"

    def get(self, client: Any, retriever_id: str) -> dict[str, Any] | None:
        """The cached definition of ``retriever_id`` for ``client``'s API and namespace."""
        with self._lock:
            base_url, namespace = _client_scope(client)
            found = self._entries.get((base_url, namespace, retriever_id))
        return copy.deepcopy(found) if found is not None else None

    def put(self, client: Any, retriever_id: str, definition: Mapping[str, Any]) -> None:
        """Store a definition (also under its own ``retriever_id`` when that differs)."""
        plain = _plain(definition)
        scope = _client_scope(client)
        with self._lock:
            self._entries[(scope[0], scope[1], retriever_id)] = plain
            own_id = plain.get("retriever_id") if isinstance(plain, dict) else None
            if isinstance(own_id, str) and own_id != retriever_id:
                self._entries[(scope[0], scope[1], own_id)] = plain

    def clear(self, client: Any | None = None) -> None:
        """Forget every definition, or only those of ``client``'s API and namespace."""
        with self._lock:
            if client is None:
                self._entries.clear()
                return
            scope = _client_scope(client)
            for key in [k for k in self._entries if k[:2] == scope]:
                del self._entries[key]

    def _get_listing(self, client: Any) -> list[str] | None:
        with self._lock:
            base_url, namespace = _client_scope(client)
            ids = self._entries.get((base_url, namespace, _LIST_KEY))
        return list(ids) if ids is not None else None

    def _put_listing(self, client: Any, ids: list[str]) -> None:
        with self._lock:
            base_url, namespace = _client_scope(client)
            self._entries[(base_url, namespace, _LIST_KEY)] = list(ids)

    def fetch(self, client: Any, retriever_id: str, *, refresh: bool = False) -> dict[str, Any]:
        """The definition of ``retriever_id``, from the cache or ``client.retrievers.get``.

        Raises:
            RetrieverNotFoundError: the API answered 404.
        """
        if not refresh:
            cached = self.get(client, retriever_id)
            if cached is not None:
                return cached
        if client is None:
            raise ConfigurationError(
                f"Retriever {retriever_id!r} is not known and there is no Mixpeek client to "
                "fetch it with; pass a client or the retriever definitions."
            )
        try:
            definition = client.retrievers.get(retriever_id)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                raise RetrieverNotFoundError(retriever_id, getattr(exc, "detail", None)) from None
            raise
        if not isinstance(definition, Mapping):
            raise ConfigurationError(
                f"GET /retrievers/{retriever_id} returned {type(definition).__name__}, "
                "not a retriever definition."
            )
        self.put(client, retriever_id, definition)
        return _plain(definition)  # type: ignore[no-any-return]

    def fetch_many(
        self,
        client: Any,
        retriever_ids: Sequence[str],
        *,
        refresh: bool = False,
        max_workers: int = 16,
    ) -> list[dict[str, Any]]:
        """Definitions of several retrievers, fetching the missing ones concurrently.

        The Mixpeek client is synchronous, so the fetches run on a short-lived thread pool
        of at most ``max_workers`` threads; the results keep the order of ``retriever_ids``.
        """
        results: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for rid in dict.fromkeys(retriever_ids):
            cached = None if refresh else self.get(client, rid)
            if cached is None:
                missing.append(rid)
            else:
                results[rid] = cached
        if len(missing) == 1:
            results[missing[0]] = self.fetch(client, missing[0], refresh=True)
        elif missing:
            workers = max(1, min(max_workers, len(missing)))
            _install_pool_filter()
            with ThreadPoolExecutor(workers, thread_name_prefix=_FETCH_THREAD_PREFIX) as ex:
                fetched = ex.map(lambda rid: self.fetch(client, rid, refresh=True), missing)
                results.update(zip(missing, fetched, strict=True))
        return [results[rid] for rid in retriever_ids]

    def list_namespace(self, client: Any, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Every retriever of ``client``'s namespace (``client.retrievers.list()``), cached.

        Follows ``pagination.next_cursor`` when the API pages the listing.
        """
        if not refresh:
            known = self._get_listing(client)
            if known is not None:
                found = [self.get(client, rid) for rid in known]
                if all(d is not None for d in found):
                    return [d for d in found if d is not None]
        if client is None:
            raise ConfigurationError("Listing retrievers needs a Mixpeek client.")
        page: Any = client.retrievers.list()
        definitions: list[dict[str, Any]] = []
        seen_cursors: set[str] = set()
        while True:
            items, cursor = _listing_page(page)
            definitions.extend(items)
            if not cursor or cursor in seen_cursors:
                break
            seen_cursors.add(cursor)
            page = client.retrievers._request(
                "POST", f"/retrievers/list?cursor={quote(cursor, safe='')}&limit=100"
            )
        ids: list[str] = []
        for definition in definitions:
            rid = definition.get("retriever_id") or definition.get("retriever_name")
            if isinstance(rid, str):
                self.put(client, rid, definition)
                ids.append(rid)
        self._put_listing(client, ids)
        return [_plain(d) for d in definitions]


_FETCH_THREAD_PREFIX = "mixpeek-fetch"


class _QuietPoolFull(logging.Filter):
    """Drop urllib3's "Connection pool is full" warning, only in our fetch threads.

    ``mixpeek.Mixpeek`` keeps one pooled connection per host, so fetching definitions in
    parallel through it opens extra connections that urllib3 then discards with a warning
    per request. That is expected here and says nothing actionable to the user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            (record.threadName or "").startswith(_FETCH_THREAD_PREFIX)
            and "Connection pool is full" in str(record.msg)
        )


def _install_pool_filter() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _QuietPoolFull) for f in target.filters):
        target.addFilter(_QuietPoolFull())


def _listing_page(page: Any) -> tuple[list[dict[str, Any]], str | None]:
    if isinstance(page, list):  # older clients documented a bare list
        return [dict(p) for p in page if isinstance(p, Mapping)], None
    if not isinstance(page, Mapping):
        return [], None
    results = page.get("results") or []
    pagination = page.get("pagination") or {}
    cursor = pagination.get("next_cursor") if isinstance(pagination, Mapping) else None
    items = [dict(r) for r in results if isinstance(r, Mapping)]
    return items, cursor if isinstance(cursor, str) and items else None


DEFAULT_RETRIEVER_CACHE = RetrieverCache()
"""The process-wide cache :class:`MixpeekTools` uses when none is given."""


# ---------------------------------------------------------------------------------------
# Per-retriever options and tool building
# ---------------------------------------------------------------------------------------


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


def _sanitize(text: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "_", text.strip()).strip("_-")
    return re.sub(r"_{2,}", "_", cleaned).lower()


def _tool_base(label: str, retriever_id: str) -> str:
    """The retriever part of its tool names: ``product_demo_search`` -> ``product_demo``."""
    base = _sanitize(label) or _sanitize(retriever_id) or "retriever"
    for affix in ("search_", "_search"):
        trimmed = base.removeprefix(affix) if affix == "search_" else base.removesuffix(affix)
        if trimmed and trimmed != base:
            base = trimmed
    return base


def _unique(candidate: str, taken: set[str]) -> str:
    candidate = candidate[:64]
    name, n = candidate, 2
    while name in taken:
        suffix = f"_{n}"
        name, n = candidate[: 64 - len(suffix)] + suffix, n + 1
    taken.add(name)
    return name


def _clip(text: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


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
        return _clip(override)
    own = definition.get("description")
    parts = [str(own).strip()] if isinstance(own, str) and own.strip() else []
    if not parts:
        parts.append(f"Search with the Mixpeek retriever {label!r}.")
    collections = _collections(definition)
    where = f" over {', '.join(collections[:5])}" if collections else ""
    parts.append(f"(Mixpeek retriever {label!r}{where}; returns the best-matching documents.)")
    return _clip(" ".join(parts))


def _wire_names(model: type[BaseModel]) -> dict[str, str]:
    """Input name (alias, or field name) -> Python field name."""
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def _check_user_model(
    model: type[BaseModel], definition: Mapping[str, Any], retriever_id: str
) -> None:
    schema = _input_schema(definition)
    declared = _wire_names(model)
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


def _page_field_name(model: type[BaseModel]) -> str:
    used = set(model.model_fields) | set(_wire_names(model))
    for candidate in _PAGE_FIELD_CANDIDATES:
        if candidate not in used:
            return candidate
    n = 2
    while f"limit_{n}" in used:
        n += 1
    return f"limit_{n}"


def _clamp_page_size(maximum: int, value: Any) -> Any:
    """An out-of-range page size is brought into range rather than refused: the model
    asked for "more" or "fewer", and the bound is the developer's, not its mistake."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, min(value, maximum))
    return value


def _page_size_type(max_page_size: int) -> Any:
    return Annotated[int | None, BeforeValidator(partial(_clamp_page_size, max_page_size))]


def _with_page_size(
    inputs_model: type[BaseModel], field_name: str, max_page_size: int
) -> type[BaseModel]:
    description = (
        f"How many results to return, 1-{max_page_size}. "
        f"Send null for the maximum ({max_page_size})."
    )
    definitions: dict[str, Any] = {
        field_name: (
            _page_size_type(max_page_size),
            Field(default=None, ge=1, le=max_page_size, description=description),
        )
    }
    model: type[BaseModel] = create_model(
        inputs_model.__name__.removesuffix("Inputs") + "Arguments",
        __base__=inputs_model,
        __doc__=inputs_model.__doc__,
        **definitions,
    )
    return model


_EMPTY_CONFIG = ConfigDict(extra="forbid")


def _empty_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = create_model(name, __config__=_EMPTY_CONFIG)
    return model


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


@dataclass(frozen=True)
class _ActionSpec:
    """A namespace exploration action: its description, arguments and request."""

    description: str
    fields: dict[str, tuple[Any, Any]]
    build: Callable[[dict[str, Any], int], MixpeekRequest]


def _list_body(args: dict[str, Any], max_page_size: int) -> dict[str, Any]:
    body: dict[str, Any] = {"limit": min(args.get("limit") or max_page_size, max_page_size)}
    if args.get("search"):
        body["search"] = args["search"]
    return body


def _action_specs(max_page_size: int) -> dict[str, _ActionSpec]:
    def search_field(what: str) -> tuple[Any, Any]:
        return (
            str | None,
            Field(default=None, description=f"Words to look for in {what}; null for all."),
        )

    limit_field = (
        _page_size_type(max_page_size),
        Field(
            default=None,
            ge=1,
            le=max_page_size,
            description=f"How many to return, 1-{max_page_size}; null for {max_page_size}.",
        ),
    )

    def id_field(what: str) -> tuple[Any, Any]:
        return (str, Field(description=f"Id (or name) of the {what}."))

    return {
        "search_retrievers": _ActionSpec(
            "List the retrievers (search pipelines) of this Mixpeek namespace, optionally "
            "matching words in their names and descriptions.",
            {"search": search_field("retriever names and descriptions")},
            lambda a, n: MixpeekRequest(
                "POST",
                "/retrievers/list",
                body={"search": a["search"]} if a.get("search") else {},
            ),
        ),
        "get_retriever": _ActionSpec(
            "Get one retriever's definition: its stages, inputs and collections.",
            {"retriever_id": id_field("retriever")},
            lambda a, n: MixpeekRequest(
                "GET",
                f"/retrievers/{_segment(a['retriever_id'])}",
                retriever_id=a["retriever_id"],
            ),
        ),
        "list_collections": _ActionSpec(
            "List the collections (indexed content with extracted features) of this namespace.",
            {"search": search_field("collection names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/collections/list", body=_list_body(a, n)),
        ),
        "get_collection": _ActionSpec(
            "Get one collection: its source, feature extractors and document schema.",
            {"collection_id": id_field("collection")},
            lambda a, n: MixpeekRequest("GET", f"/collections/{_segment(a['collection_id'])}"),
        ),
        "list_taxonomies": _ActionSpec(
            "List the taxonomies (classification schemes) of this namespace.",
            {"search": search_field("taxonomy names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/taxonomies/list", body=_list_body(a, n)),
        ),
        "get_taxonomy": _ActionSpec(
            "Get one taxonomy and its categories.",
            {"taxonomy_id": id_field("taxonomy")},
            lambda a, n: MixpeekRequest("GET", f"/taxonomies/{_segment(a['taxonomy_id'])}"),
        ),
        "list_clusters": _ActionSpec(
            "List the clusters (groupings of similar documents) of this namespace.",
            {"search": search_field("cluster names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/clusters/list", body=_list_body(a, n)),
        ),
        "get_object": _ActionSpec(
            "Get one source object (an uploaded file and its metadata) from a bucket.",
            {"bucket_id": id_field("bucket"), "object_id": id_field("object")},
            lambda a, n: MixpeekRequest(
                "GET",
                f"/buckets/{_segment(a['bucket_id'])}/objects/{_segment(a['object_id'])}",
            ),
        ),
    }


def _action_tool(action: str, spec: _ActionSpec, name: str, max_page_size: int) -> ToolDefinition:
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        _pascal(action) + "Args", __config__=_EMPTY_CONFIG, **spec.fields
    )

    def build(arguments: BaseModel) -> MixpeekRequest:
        request = spec.build(arguments.model_dump(), max_page_size)
        return MixpeekRequest(
            request.method,
            request.path,
            body=request.body,
            idempotent=True,
            retriever_id=request.retriever_id,
            labels={"tool": name, "action": action},
        )

    return ToolDefinition(
        name=name,
        description=spec.description,
        arguments_model=model,
        retriever_id=None,
        kind="action",
        request_builder=build,
    )


# ---------------------------------------------------------------------------------------
# MixpeekTools
# ---------------------------------------------------------------------------------------


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
            self._definitions_by_id[rid] = _plain(definition)
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

        Raises:
            SchemaMismatchError: ``model`` does not fit the retriever's ``input_schema``.
            ConfigurationError: an invalid name, page size, or execute option.
            RetrieverNotFoundError: the retriever does not exist.
        """
        if max_page_size is not None:
            _check_page_size(max_page_size)
        if name is not None and not _NAME_RE.match(name):
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
                filters=_plain(filters) if filters is not None else None,
                max_page_size=max_page_size,
                execute_options=options,
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
            base = _tool_base(label, rid)
            search_name = opts.name or _unique(f"search_{base}", taken)
            search_tool, inputs_model = self._search_tool(definition, rid, opts, search_name)
            search_tools.append(search_tool)
            if "describe" in self._actions:
                extra_tools.append(
                    self._describe_tool(
                        definition, rid, _unique(f"describe_{base}", taken), search_name
                    )
                )
            if "explain" in self._actions:
                extra_tools.append(
                    self._explain_tool(
                        definition,
                        rid,
                        _unique(f"explain_{base}", taken),
                        inputs_model,
                        search_name,
                    )
                )
        specs = _action_specs(self._max_page_size)
        for action in self._actions:
            if action in specs:
                extra_tools.append(
                    _action_tool(action, specs[action], _unique(action, taken), self._max_page_size)
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
                model_name=_pascal(label) + "Inputs",
                description=f"Inputs of the Mixpeek retriever {label!r}.",
            )
        max_page_size = opts.max_page_size or self._max_page_size
        page_field = _page_field_name(inputs_model)
        arguments_model = _with_page_size(inputs_model, page_field, max_page_size)
        fixed_filters = opts.filters
        execute_options = dict(opts.execute_options)
        idempotent = not (_WRITE_OPTIONS & set(execute_options))
        # Only declared inputs go out, even if a user model allows extra keys.
        declared = set(_wire_names(inputs_model))

        def build(arguments: BaseModel) -> MixpeekRequest:
            requested = getattr(arguments, page_field, None)
            limit = max_page_size if requested is None else max(1, min(requested, max_page_size))
            inputs = to_inputs(arguments, exclude={page_field})
            body: dict[str, Any] = {
                **copy.deepcopy(execute_options),
                "inputs": {k: v for k, v in inputs.items() if k in declared},
                "limit": limit,
            }
            if fixed_filters is not None:
                body["filters"] = copy.deepcopy(fixed_filters)
            return MixpeekRequest(
                "POST",
                f"/retrievers/{_segment(rid)}/execute",
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
            request_builder=build,
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
            description=_clip(
                f"Describe what the retriever {label!r} searches and which inputs "
                f"{search_name} takes (answered instantly, no search is run)."
            ),
            arguments_model=_empty_model(_pascal(label) + "DescribeArgs"),
            retriever_id=rid,
            kind="describe",
            request_builder=lambda _args: MixpeekRequest(
                "GET", f"/retrievers/{_segment(rid)}", retriever_id=rid
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
                f"/retrievers/{_segment(rid)}/execute/explain",
                body={"inputs": to_inputs(arguments)},
                retriever_id=rid,
                labels={"tool": name, "kind": "explain"},
            )

        return ToolDefinition(
            name=name,
            description=_clip(
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
        """Tools for Chat Completions ``tools=`` (the Assistants API takes the same shape)."""
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
    return dict(_plain(dict(options)))
