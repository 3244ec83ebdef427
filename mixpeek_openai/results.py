"""Shaping Mixpeek responses into what the model reads: small, relevant, bounded JSON.

A raw execute response carries per-stage statistics, budgets, cursors and whole payloads;
a model needs the ranked hits and a few fields of each. :func:`shape_search` keeps, per
document, ``document_id``, ``collection_id``, a rounded ``score`` and the useful payload
fields (a tool's ``projection`` of dotted paths, or :data:`DEFAULT_FIELDS` looked up on the
document and in its ``metadata``), cuts long text with a visible marker, and adds
``total`` (from ``pagination.total``), ``warnings``, ``status``/``degraded`` when the
execution was not a clean completion, and ``error`` when it failed. Everything else
(``stage_statistics``, ``budget``, ...) is dropped.

Every output fits a token budget. Counting uses tiktoken's ``cl100k_base`` when tiktoken is
installed *and* its encoding is already cached locally (nothing is ever downloaded);
otherwise a cheap, deliberately pessimistic estimate (:func:`estimate_tokens`). When the
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


@functools.lru_cache(maxsize=1)
def default_token_counter() -> TokenCounter:
    """tiktoken ``cl100k_base`` if installed and cached locally, else :func:`estimate_tokens`."""
    try:
        import tiktoken
        import tiktoken.registry
    except ImportError:
        return estimate_tokens
    loaded = getattr(tiktoken.registry, "ENCODINGS", {}).get("cl100k_base")
    if loaded is None:
        if not _cl100k_cached():
            return estimate_tokens
        try:
            loaded = tiktoken.get_encoding("cl100k_base")
        except Exception:
            return estimate_tokens
    encoding = loaded

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


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

    def counter(self) -> TokenCounter:
        """The token counter in effect."""
        return self.count_tokens or default_token_counter()


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
    if isinstance(value, Mapping):
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


def _lookup(doc: Mapping[str, Any], path: str) -> Any:
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, (list, tuple)) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _field(doc: Mapping[str, Any], path: str) -> Any:
    value = _lookup(doc, path)
    if value is _MISSING:
        metadata = doc.get("metadata")
        if isinstance(metadata, Mapping):
            value = _lookup(metadata, path)
    return value


def _shape_document(doc: Any, options: ShapeOptions, text_cap: int) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        return {"value": _compact(doc, text_cap, 10, 3)}
    out: dict[str, Any] = {}
    for key in ("document_id", "collection_id"):
        if doc.get(key) is not None:
            out[key] = _compact(doc[key], 200, 1, 1)
    score = doc.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
        out["score"] = round(float(score), options.score_digits)
    fields = options.projection if options.projection is not None else DEFAULT_FIELDS
    for path in fields:
        if path in out:
            continue
        value = _field(doc, path)
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
    count: TokenCounter,
    budget: int,
) -> str | None:
    """The JSON of ``build(prefix, omitted)`` for the longest prefix of ``items`` that fits,
    or ``None`` when not even the empty prefix does."""

    def render(k: int) -> str:
        return to_json(build(list(items[:k]), len(items) - k))

    if count(render(len(items))) <= budget:
        return render(len(items))
    lo, hi = 0, len(items) - 1  # invariant: the answer is in [lo, hi]
    if count(render(0)) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(render(mid)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return render(lo)


def _last_resort(omitted: int, count: TokenCounter, budget: int) -> str:
    for candidate in (
        {"documents": [], "omitted": omitted, "note": _omission_note(omitted)},
        {"omitted": omitted},
    ):
        text = to_json(candidate)
        if count(text) <= budget:
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
    count = options.counter()
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
        if count(text) <= budget:
            return text
    fitted = _fit_list(build, shaped, count, budget)
    if fitted is not None:
        return fitted
    # The envelope alone is too big (huge warnings or error): keep the essentials.
    tail.clear()
    if "error" in head:
        head["error"] = truncate_text(head["error"], 200)
    head.pop("degraded", None)
    fitted = _fit_list(build, shaped, count, budget)
    return fitted if fitted is not None else _last_resort(len(docs), count, budget)


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
    count = options.counter()
    budget = options.budget_tokens
    if raw is None:
        return to_json({"result": None})
    caps = _text_caps(options.max_text_chars)
    text = to_json(_compact(raw, caps[0], _WHOLE_LIST, _LEVELS[0][1]))
    if count(text) <= budget:
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

            fitted = _fit_list(build, shaped, count, budget)
            if fitted is not None and (cap == caps[-1] or json.loads(fitted)[key or "items"]):
                return fitted
        return _last_resort(len(items), count, budget)
    # Anything else: keep the structure with lists, text and nesting progressively smaller.
    for (list_cap, depth), cap in zip(_LEVELS, [caps[0], caps[0], caps[-1], caps[-1]], strict=True):
        text = to_json(_compact(raw, cap, list_cap, depth))
        if count(text) <= budget:
            return text
    text = to_json(_compact(raw, _MIN_TEXT_CHARS, 2, 2))
    if count(text) <= budget:
        return text
    return to_json({"note": "the result was too large to show; ask for something narrower"})
