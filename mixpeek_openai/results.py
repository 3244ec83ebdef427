"""What the model reads: a search response shaped into small, strict, bounded JSON.

A raw execute response carries per-stage statistics, budgets, lineage, presigned thumbnail
links and whole transcripts; a model choosing and citing results needs, per document, its
id, a rounded score, a title and a glimpse of its text. :func:`shape_search` gives it that:

* one row per document under shared column names (:mod:`mixpeek_openai.layout`), values
  every document shares said once (``shared``), ``document_id``, ``score``, ``title`` and
  one ``excerpt`` (:mod:`mixpeek_openai.excerpts`) by default, or a tool's projection;
* URLs whole or not at all, presigned ones left out (:mod:`mixpeek_openai.links`);
* ``total`` (from ``pagination.total``) and, when more results exist than it shows, a
  ``more`` note that says how many and which paging argument gets the next ones;
* ``status``/``degraded``/``warnings``/``error`` when the execution was not clean.

Every output fits ``budget_tokens`` (image parts included), in one shaping pass: excerpts
are shortened first (down to half), then the last documents are dropped; how much to keep
is picked with a cheap estimate and confirmed by at most one exact count in the common
case (:mod:`mixpeek_openai.fitting`, :mod:`mixpeek_openai.tokens`).

The output is strict JSON (no ``NaN``/``Infinity``, huge integers tamed, lone surrogates
replaced), non-ASCII written as is. Document text is data: it is placed inside JSON strings
and never interpreted, so text that looks like instructions stays inside a value.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mixpeek_openai import excerpts, layout, links
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.fitting import Budget, fit_prefix
from mixpeek_openai.tokens import (
    TokenCounter,
    budget_check,
    default_token_counter,
    estimate_tokens,
)

__all__ = [
    "DEFAULT_FIELDS",
    "IMAGE_FIELDS",
    "LOW_DETAIL_IMAGE_TOKENS",
    "TITLE_FIELDS",
    "TRUNCATION_MARKER",
    "ShapeOptions",
    "TokenCounter",
    "budget_check",
    "default_token_counter",
    "error_output",
    "estimate_tokens",
    "search_images",
    "shape_search",
    "shape_value",
    "to_json",
    "truncate_text",
    "utf8_safe",
]

TRUNCATION_MARKER = excerpts.MARKER
"""Marks where text was cut."""

DEFAULT_FIELDS: tuple[str, ...] = ("title", "excerpt")
"""Columns after ``document_id``/``collection_id``/``score`` when a tool has no projection.
``excerpt`` is not a stored field: it is cut from the document's best text field."""

TITLE_FIELDS: tuple[str, ...] = ("title", "name", "filename", "file_name")
"""Where a ``title`` is looked for (first found), on the document, then in its metadata."""

IMAGE_FIELDS: tuple[str, ...] = (
    "thumbnail_url",
    "thumbnail",
    "keyframe_url",
    "image_url",
    "poster_url",
    "preview_url",
    "image",
)
"""Fields holding a document's picture, for :func:`search_images` (first found)."""

LOW_DETAIL_IMAGE_TOKENS = 85
"""What one ``detail: "low"`` image part costs the model; reserved in the budget."""

_ID_FIELDS = ("document_id", "collection_id")
_BULK_KEYS = frozenset(
    {"stage_statistics", "budget", "embedding", "embeddings", "vector", "vectors", "features"}
)
_CLEAN_STATUSES = frozenset({"completed", "complete", "success", "succeeded", "ok"})
_MAX_ID_CHARS = 200
_MIN_EXCERPT_CHARS = 40
_MAX_INT_BITS = 1000  # larger integers become floats; far larger ones null
_IMAGE_SHARE = 2  # images take at most 1/_IMAGE_SHARE of the budget
_MAX_IMAGE_URL_CHARS = 4096
_MISSING = object()
_MAPPING = (dict, Mapping)  # dict first: responses are dicts, and the ABC check is slow


# -- strict JSON ------------------------------------------------------------------------------


def _jsonable(value: Any, depth: int = 64) -> Any:
    """``value`` with what strict JSON refuses replaced (non-finite floats, huge ints)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return _number(value)
    if depth <= 0:
        return None
    if isinstance(value, _MAPPING):
        return {str(k): _jsonable(v, depth - 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth - 1) for v in value]
    return _object_text(value)


def _object_text(value: object) -> str:
    """An object JSON has no form for, as text; its type's name when ``str`` fails."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def utf8_safe(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Proper pairs written as two code points are joined; lone halves become U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_json(value: Any) -> str:
    """Compact, strict JSON (UTF-8 kept as is; no NaN/Infinity; unknown objects as text)."""
    try:
        text = _STRICT.encode(value)
    except (ValueError, TypeError, RecursionError):
        text = _STRICT.encode(_jsonable(value))
    return utf8_safe(text)


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` cut to about ``max_chars`` characters on whitespace, plus ``…`` if longer.

    A URL at the cut is left out rather than shortened. The result is at most
    ``max_chars`` characters plus the marker.
    """
    if len(text) <= max_chars:
        return text
    limit = max(0, max_chars)
    end = excerpts.space_before(text, max(0, limit - 40), limit + 1)
    if end > 0:
        piece = text[:end]
    else:
        # One long token at the cut: cut it, unless it holds a URL (whole or left out).
        start = max(0, excerpts.space_before(text, 0, limit))
        after = excerpts.next_space(text, limit)
        piece = text[:start] if "://" in text[start:after] else text[:limit]
    return excerpts.close(piece.rstrip())


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeOptions:
    """How one output is shaped."""

    budget_tokens: int = 2000
    """Upper bound on the output's tokens (image parts included)."""
    max_text_chars: int = 600
    """Longest text value kept in projected fields and other responses (cut with ``…``)."""
    score_digits: int = 3
    """Decimal digits kept in scores."""
    projection: tuple[str, ...] | None = None
    """Dotted paths kept per document (``None`` = :data:`DEFAULT_FIELDS`); ``excerpt``
    names the excerpt."""
    count_tokens: TokenCounter | None = None
    """Token counter (``None`` = :func:`default_token_counter`)."""
    query: str | None = None
    """The text the model searched for (excerpts are taken around its words)."""
    layout: layout.Layout = "columns"
    """``columns`` (shared column names, one row per document) or ``objects``."""
    offset: int = 0
    """How many documents precede this page (the offset the model asked for)."""
    offset_field: str | None = None
    """The search tool's paging argument, named in the "more results" note."""
    images: int = 0
    """How many top documents' images the caller sends (see :func:`search_images`)."""
    excerpt_chars: int = 150
    """Excerpt length (cut on a word boundary, so a few characters more); shortened down to
    half of it before documents are dropped to fit the budget."""
    keep_signed_urls: bool = False
    """Show presigned URLs to the model (they carry a credential and expire)."""
    max_url_chars: int = 2048
    """Longest URL shown; longer ones are left out (never cut)."""

    def __post_init__(self) -> None:
        if self.layout not in layout.LAYOUTS:
            raise ConfigurationError(
                f"layout must be one of {', '.join(layout.LAYOUTS)}, not {self.layout!r}"
            )
        for name in ("budget_tokens", "excerpt_chars", "max_url_chars"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")

    def counter(self) -> TokenCounter:
        """The token counter in effect."""
        return self.count_tokens or default_token_counter()

    def fits(self) -> Callable[[str], bool]:
        """The budget test in effect (see :func:`budget_check`)."""
        return budget_check(self.budget_tokens, self.count_tokens)


def error_output(type: str, message: str, hint: str | None = None, *, max_chars: int = 800) -> str:
    """An error for the model: ``{"error": {"type", "message", "hint"}}`` as compact JSON."""
    error: dict[str, str] = {"type": type, "message": truncate_text(message, max_chars)}
    if hint:
        error["hint"] = truncate_text(hint, max_chars)
    return to_json({"error": error})


# -- values -----------------------------------------------------------------------------------


def _number(value: int) -> int | float | None:
    if -(2**63) <= value < 2**63:
        return value
    if value.bit_length() <= _MAX_INT_BITS:
        return float(value)
    return None


def _text(value: str, options: ShapeOptions, cap: int) -> str | None:
    """A string value as the model sees it: a URL whole or ``None``, text cut to ``cap``."""
    if "://" in value[:20] and links.is_url(value):
        keep = links.keep_url(
            value, keep_signed=options.keep_signed_urls, max_chars=options.max_url_chars
        )
        return value if keep else None
    if not options.keep_signed_urls:
        value = links.strip_signed(value)
    return truncate_text(value, cap)


def _compact(value: Any, options: ShapeOptions, cap: int, list_cap: int, depth: int) -> Any:
    """A strict-JSON-able copy: long text cut, URLs whole or gone, lists and nesting bounded."""
    if isinstance(value, str):
        return _text(value, options, cap)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _number(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, _MAPPING):
        if depth <= 0:
            return "…"
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key in _BULK_KEYS:
                continue
            item = _compact(v, options, cap, list_cap, depth - 1)
            if item is not None or v is None:
                out[key] = item
        return out
    if isinstance(value, (list, tuple)):
        if depth <= 0:
            return "…"
        items = []
        for v in value[:list_cap]:
            item = _compact(v, options, cap, list_cap, depth - 1)
            if item is not None or v is None:
                items.append(item)
        if len(value) > list_cap:
            items.append(f"…[{len(value) - list_cap} more]")
        return items
    return _text(_object_text(value), options, cap)


def _lookup(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = doc
    for part in parts:
        if isinstance(current, _MAPPING) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _field(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    value = _lookup(doc, parts)
    if value is _MISSING:
        metadata = doc.get("metadata")
        if isinstance(metadata, _MAPPING):
            value = _lookup(metadata, parts)
    return value


# -- search responses -------------------------------------------------------------------------


def _documents_of(raw: Mapping[str, Any]) -> list[Any]:
    for key in ("documents", "results"):
        docs = raw.get(key)
        if isinstance(docs, list):
            return docs
    return []


@dataclass(frozen=True)
class _Plan:
    """What is taken from each document, worked out once per projection and query."""

    names: tuple[str, ...]
    """Every column, in order: ids, score, the projected fields, ``value``."""
    fields: tuple[tuple[int, tuple[str, ...]], ...]
    """Projected fields looked up as they are (column, dotted parts)."""
    title_at: int
    """The ``title`` column found by :data:`TITLE_FIELDS` (-1: none)."""
    excerpt_at: int
    """The ``excerpt`` column (-1: none)."""
    value_at: int
    """Where entries that are not objects go."""
    terms: tuple[str, ...]
    """The query's words the excerpts look for."""


@functools.lru_cache(maxsize=256)
def _plan(projection: tuple[str, ...] | None, query: str | None) -> _Plan:
    fields = projection if projection is not None else DEFAULT_FIELDS
    names = [*_ID_FIELDS, "score"]
    for path in fields:
        if path not in names:
            names.append(path)
    if "value" not in names:
        names.append("value")
    excerpt_at = names.index("excerpt") if "excerpt" in names[3:] else -1
    title_at = names.index("title") if projection is None and "title" in names[3:] else -1
    looked_up = tuple(
        (i, tuple(name.split(".")))
        for i, name in enumerate(names[3:], 3)
        if i not in (excerpt_at, title_at) and (name != "value" or "value" in fields)
    )
    terms = excerpts.query_terms(query) if excerpt_at >= 0 else ()
    return _Plan(tuple(names), looked_up, title_at, excerpt_at, names.index("value"), terms)


def _texts(doc: Mapping[str, Any]) -> Iterator[str]:
    """The document's text fields an excerpt may come from, in :data:`excerpts.TEXT_FIELDS`
    order, then its metadata's; lazily, so a pick without a query reads only what it needs."""
    fields = excerpts.TEXT_FIELDS
    for k in fields:
        if k in doc and isinstance(v := doc[k], str):
            yield v
    metadata = doc.get("metadata")
    if isinstance(metadata, _MAPPING) and metadata:
        for k in fields:
            if k in metadata and k not in doc and isinstance(v := metadata[k], str):
                yield v


def _title(doc: Mapping[str, Any], options: ShapeOptions) -> Any:
    for source in (doc, doc.get("metadata")):
        if isinstance(source, _MAPPING):
            for name in TITLE_FIELDS:
                if name in source:
                    value = source[name]
                    if value is None or value == "":
                        continue
                    if type(value) is str and len(value) <= _MAX_ID_CHARS and "://" not in value:
                        return value  # what _compact would return, without the checks
                    return _compact(value, options, _MAX_ID_CHARS, 5, 1)
    return None


def _id(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_ID_CHARS else None
    if isinstance(value, int) and not isinstance(value, bool):
        return _number(value)
    return None


def _score(value: Any, digits: int) -> float | None:
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        number = _number(value)
        return None if number is None else round(float(number), digits)
    return None


class _Cells:
    """The documents' cells, column by column, with each excerpt's passage kept so the
    excerpt can be cut at whatever length the budget allows."""

    __slots__ = ("columns", "passages", "plan")

    def __init__(self, docs: Sequence[Any], options: ShapeOptions) -> None:
        plan = _plan(options.projection, options.query)
        self.plan = plan
        n = len(docs)
        columns: list[list[Any]] = [[None] * n for _ in plan.names]
        self.columns = columns
        passages: list[excerpts.Passage | None] = [None] * n
        self.passages = passages
        ids, collections, scores = columns[0], columns[1], columns[2]
        titles = columns[plan.title_at] if plan.title_at >= 0 else None
        fields, terms, chars = plan.fields, plan.terms, options.excerpt_chars
        excerpted, digits, cap = plan.excerpt_at >= 0, options.score_digits, options.max_text_chars
        isfinite = math.isfinite
        for k, doc in enumerate(docs):
            if type(doc) is not dict and not isinstance(doc, _MAPPING):
                columns[plan.value_at][k] = _compact(doc, options, cap, 5, 3)
                continue
            get = doc.get
            # Fast paths for the common types; the helpers decide everything else.
            v = get("document_id")
            ids[k] = v if type(v) is str and len(v) <= _MAX_ID_CHARS else _id(v)
            v = get("collection_id")
            collections[k] = v if type(v) is str and len(v) <= _MAX_ID_CHARS else _id(v)
            v = get("score")
            scores[k] = round(v, digits) if type(v) is float and isfinite(v) else _score(v, digits)
            if titles is not None:
                titles[k] = _title(doc, options)
            if excerpted:
                passages[k] = excerpts.best_passage(_texts(doc), terms, chars)
            for i, parts in fields:
                value = _field(doc, parts)
                if value is not _MISSING and value != "" and value != []:
                    columns[i][k] = _compact(value, options, cap, 10, 3)

    def page(self, chars: int) -> layout.Page:
        """The page with excerpts of about ``chars`` characters."""
        columns = self.columns
        at = self.plan.excerpt_at
        if at >= 0:
            columns = columns.copy()
            columns[at] = [None if p is None else p.excerpt(chars) for p in self.passages]
        return layout.hoist(self.plan.names, columns)


@functools.lru_cache(maxsize=64)
def _excerpt_levels(chars: int) -> tuple[int, ...]:
    levels = [chars]
    for fraction in (2 / 3, 1 / 2):
        level = max(_MIN_EXCERPT_CHARS, int(chars * fraction))
        if level < levels[-1]:
            levels.append(level)
    return tuple(levels)


def _error_text(error: Any) -> str:
    if isinstance(error, _MAPPING):
        message = error.get("message") or error.get("detail") or error.get("type")
        if message is not None:
            return str(message)
    return str(error)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _more_note(raw: Mapping[str, Any], options: ShapeOptions, returned: int, shown: int) -> str:
    """What the model is told about results beyond those shown ("" when there are none)."""
    pagination = raw.get("pagination")
    pagination = pagination if isinstance(pagination, _MAPPING) else {}
    total = _int(pagination.get("total"))
    if total is None:
        total = _int(raw.get("total"))
    offset = max(0, options.offset)
    if total is not None and total < 2**63:
        remaining: int | None = max(0, total - offset - shown)
    else:
        remaining = returned - shown if returned > shown else None
        if pagination.get("has_next") is not True and not remaining:
            remaining = 0
    if remaining == 0:
        return ""
    if remaining is None:
        what = "More results exist"
    else:
        what = f"{remaining} more result{'' if remaining == 1 else 's'}"
    if options.offset_field:
        return f"{what}: call again with {options.offset_field}={offset + shown}"
    return f"{what} not shown; raise the page size or narrow the query"


def _image_urls(raw: Any, options: ShapeOptions) -> list[tuple[Any, str]]:
    """``(document_id, image URL)`` of the top documents that have one."""
    wanted = min(options.images, options.budget_tokens // _IMAGE_SHARE // LOW_DETAIL_IMAGE_TOKENS)
    if wanted <= 0 or not isinstance(raw, _MAPPING):
        return []
    found: list[tuple[Any, str]] = []
    for doc in _documents_of(raw):
        if len(found) >= wanted:
            break
        if not isinstance(doc, _MAPPING):
            continue
        url = _image_of(doc)
        if url is not None:
            found.append((_id(doc.get("document_id")), url))
    return found


def _usable_image(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > _MAX_IMAGE_URL_CHARS:
        return None
    if value.startswith(("https://", "http://")) and links.is_url(value):
        return value
    if value.startswith("data:image/") and len(value) <= _MAX_IMAGE_URL_CHARS:
        return value
    return None


def _image_of(doc: Mapping[str, Any]) -> str | None:
    for name in IMAGE_FIELDS:
        url = _usable_image(_field(doc, (name,)))
        if url is not None:
            return url
    keyframes = _field(doc, ("keyframes",))
    if isinstance(keyframes, list):
        for frame in keyframes[:5]:
            if isinstance(frame, _MAPPING):
                for name in ("url", *IMAGE_FIELDS):
                    url = _usable_image(frame.get(name))
                    if url is not None:
                        return url
    return None


def search_images(raw: Any, options: ShapeOptions) -> list[str]:
    """Whole image URLs (thumbnails, keyframes) of up to ``options.images`` top documents.

    They go to the model as low-detail image parts (Responses only); :func:`shape_search`
    reserves :data:`LOW_DETAIL_IMAGE_TOKENS` of the budget for each and lists their
    documents under ``images``. Images take at most half of the budget. Presigned links
    are fine here: the API fetches them, the model does not read them.
    """
    return [url for _, url in _image_urls(raw, options)]


def shape_search(raw: Any, options: ShapeOptions) -> str:
    """The model-facing JSON for a retriever execute response; see the module docstring."""
    if not isinstance(raw, _MAPPING):
        return shape_value(raw, options)
    images = _image_urls(raw, options)
    budget = Budget(
        options.budget_tokens - len(images) * LOW_DETAIL_IMAGE_TOKENS, options.count_tokens
    )

    # The envelope's fields as (key, strict-JSON-able value), before and after the documents.
    head: list[tuple[str, Any]] = []
    status = raw.get("status")
    if isinstance(status, str) and status.lower() not in _CLEAN_STATUSES:
        head.append(("status", truncate_text(status, 40)))
    if raw.get("error"):
        head.append(("error", truncate_text(_error_text(raw["error"]), options.max_text_chars)))
    if raw.get("degraded"):
        head.append(("degraded", _compact(raw["degraded"], options, 200, 5, 3)))
    pagination = raw.get("pagination")
    total = _int(pagination.get("total")) if isinstance(pagination, _MAPPING) else None
    if total is not None:
        head.append(("total", _number(total)))
    if options.offset > 0:
        head.append(("offset", options.offset))
    tail: list[tuple[str, Any]] = []
    warnings = raw.get("warnings")
    if isinstance(warnings, list) and warnings:
        tail.append(("warnings", _compact(warnings, options, 200, 5, 2)))
    if images:
        tail.append(("images", [doc_id for doc_id, _ in images]))

    docs = _documents_of(raw)
    # No document costs less than a few tokens, so never shape more than could fit.
    cells = _Cells(docs[: max(1, budget.limit // 4)], options)
    key = "rows" if options.layout == "columns" else "documents"

    def render_page(level: int) -> tuple[str, Callable[[], tuple[list[str], Callable[[int], str]]]]:
        """The whole page's JSON, and how to render prefixes of it when it does not fit."""
        page = cells.page(level)
        before = [*head]
        if page.shared:
            before.append(("shared", page.shared))
        if options.layout == "columns":
            before.append(("columns", page.columns))
        documents = page.documents(options.layout)
        whole = dict([*before, (key, documents), *tail])
        note = _more_note(raw, options, len(docs), len(documents))
        if note:
            whole["more"] = note

        def prefixes() -> tuple[list[str], Callable[[int], str]]:
            rendered = [(k, to_json(v)) for k, v in before]
            after = [(k, to_json(v)) for k, v in tail]
            pieces = [to_json(d) for d in documents]

            def render(k: int) -> str:
                fields = [*rendered, (key, "[" + ",".join(pieces[:k]) + "]"), *after]
                note = _more_note(raw, options, len(docs), k)
                if note:
                    fields.append(("more", to_json(note)))
                return layout.assemble(fields)

            return pieces, render

        return to_json(whole), prefixes

    levels = _excerpt_levels(options.excerpt_chars)
    for i, level in enumerate(levels):
        whole, prefixes = render_page(level)
        if budget.proven(whole):
            return whole
        if budget.guess(whole) <= budget.limit:
            if budget.confirm(whole):
                return whole
            break
        if i == len(levels) - 1:
            break
    fitted = fit_prefix(*prefixes(), budget)
    if fitted is not None:
        return fitted[1]
    # The envelope alone is too big (huge warnings or error): keep the essentials.
    head = [(k, v) for k, v in head if k not in ("degraded", "error")]
    if raw.get("error"):
        head.append(("error", truncate_text(_error_text(raw["error"]), 200)))
    tail = [(k, v) for k, v in tail if k == "images"]
    fitted = fit_prefix(*render_page(levels[-1])[1](), budget)
    return fitted[1] if fitted is not None else _last_resort(len(docs), budget)


def _last_resort(omitted: int, budget: Budget) -> str:
    for candidate in (
        {"more": f"{omitted} results not shown: the output limit is too small"},
        {"omitted": omitted},
    ):
        text = to_json(candidate)
        if budget.proven(text) or budget.count(text) <= budget.limit:
            return text
    return "{}"


# -- anything else ----------------------------------------------------------------------------

_LEVELS = ((20, 6), (10, 4), (5, 3), (3, 2))  # (list items kept, nesting depth)
_WHOLE_LIST = 10_000  # "no cap" for the first, structure-keeping attempt


def _main_list(value: Any) -> tuple[str | None, list[Any]] | None:
    if isinstance(value, list):
        return None, value
    if isinstance(value, _MAPPING):
        lists = [(k, v) for k, v in value.items() if isinstance(v, list) and v]
        if lists:
            key, items = max(lists, key=lambda kv: len(kv[1]))
            return str(key), items
    return None


def _omission_note(omitted: int) -> str:
    noun = "result" if omitted == 1 else "results"
    return f"{omitted} more {noun} omitted; narrow the query or lower limit"


def shape_value(raw: Any, options: ShapeOptions) -> str:
    """Compact, budgeted JSON for any other response (exploration tools, local answers)."""
    budget = Budget(options.budget_tokens, options.count_tokens)
    if raw is None:
        return to_json({"result": None})
    cap, short_cap = options.max_text_chars, max(_MIN_EXCERPT_CHARS, options.max_text_chars // 4)
    text = to_json(_compact(raw, options, cap, _WHOLE_LIST, _LEVELS[0][1]))
    if budget.proven(text) or (budget.guess(text) <= budget.limit and budget.confirm(text)):
        return text
    main = _main_list(raw)
    if main is not None:
        # A listing: keep a prefix of its main list, with a note saying how many were left out.
        key, items = main
        considered = items[: max(1, budget.limit // 4)]
        dropped_upfront = len(items) - len(considered)
        for text_cap, (list_cap, depth) in ((cap, _LEVELS[1]), (short_cap, _LEVELS[-1])):
            rest: list[tuple[str, str]] = []
            if key is not None and isinstance(raw, _MAPPING):
                for k, v in raw.items():
                    name = str(k)
                    if name != key and name not in _BULK_KEYS:
                        rest.append((name, to_json(_compact(v, options, text_cap, list_cap, 2))))
            pieces = [to_json(_compact(i, options, text_cap, list_cap, depth)) for i in considered]

            def render(
                k: int, rest: list[tuple[str, str]] = rest, pieces: list[str] = pieces
            ) -> str:
                items_json = "[" + ",".join(pieces[:k]) + "]"
                if key is None and not dropped_upfront and k == len(pieces):
                    return items_json
                fields = [*rest, (key or "items", items_json)]
                omitted = len(pieces) - k + dropped_upfront
                if omitted:
                    fields += [
                        ("omitted", str(omitted)),
                        ("note", to_json(_omission_note(omitted))),
                    ]
                return _object(fields)

            fitted = fit_prefix(pieces, render, budget)
            if fitted is not None and (fitted[0] > 0 or text_cap == short_cap):
                return fitted[1]
        return _last_resort(len(items), budget)
    # Anything else: keep the structure with lists, text and nesting progressively smaller.
    caps = [cap, cap, short_cap, short_cap]
    for (list_cap, depth), text_cap in zip(_LEVELS, caps, strict=True):
        text = to_json(_compact(raw, options, text_cap, list_cap, depth))
        if budget.proven(text) or (budget.guess(text) <= budget.limit and budget.confirm(text)):
            return text
    text = to_json(_compact(raw, options, _MIN_EXCERPT_CHARS, 2, 2))
    if budget.proven(text) or budget.confirm(text):
        return text
    return to_json({"note": "the result was too large to show; ask for something narrower"})


def _object(fields: Sequence[tuple[str, str]]) -> str:
    """A JSON object from ``(key, rendered value)`` pairs whose keys may need escaping."""
    return "{" + ",".join(f"{to_json(k)}:{v}" for k, v in fields) + "}"
