"""The sample namespace behind :class:`~mixpeek_openai.testing.FakeMixpeek` and its search.

The namespace (retrievers, documents, collections, taxonomies, clusters, objects) is package
data in ``mixpeek_openai/testing/data/*.json``. Searches rank documents with a deterministic
lexical score so tests can predict results.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ._contract import parse_datetime

__all__ = ["SampleNamespace", "load_sample_namespace"]

_DATA_FILES = ("retrievers", "documents", "collections", "taxonomies", "clusters", "objects")

_STOPWORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "i", "in"),
        *("into", "is", "it", "its", "of", "on", "or", "the", "this", "to", "what", "with"),
        *("where", "which", "who", "why", "do", "does", "can", "my", "me", "we", "you"),
        *("your", "our", "show", "find", "about"),
    }
)
# Words every media URL carries; they say nothing about the content.
_URL_NOISE = frozenset(
    {
        *("http", "https", "www", "com", "net", "org", "example", "cdn", "media", "docs"),
        *("demos", "thumbs", "frames", "clips", "audio", "raw", "mp4", "mov", "webm", "png"),
        *("jpg", "jpeg", "gif", "mp3", "wav", "m4a", "pdf", "xlsx", "xls", "html"),
    }
)
_MEDIA_TYPES = frozenset({"image", "audio", "video", "pdf", "excel"})
_TEXT_TYPES = frozenset({"string", "text"})
_TOKEN = re.compile(r"[a-z0-9]+")

# How much a query term counts when it appears in each part of a document.
_FIELD_WEIGHTS = (("title", 1.0), ("tags", 0.8), ("description", 0.6), ("_long_text", 0.3))
_LONG_TEXT_FIELDS = ("transcript", "body", "keyframes", "sections", "product", "speakers")
# Kept out of ``metadata`` in responses: these are top-level payload fields.
_METADATA_FIELDS = ("category", "language", "product", "modality", "author", "presenter")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` without stop words."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


def media_tokens(url: str) -> list[str]:
    """Tokens of a media URL's file name (``.../red-sneaker.jpg`` -> ``red``, ``sneaker``)."""
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return [t for t in tokenize(name) if t not in _URL_NOISE]


def _flatten_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_flatten_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_flatten_text(v) for v in value)
    return ""


def _term_weights(doc: Mapping[str, Any]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for name, weight in reversed(_FIELD_WEIGHTS):
        if name == "_long_text":
            text = " ".join(_flatten_text(doc.get(f)) for f in _LONG_TEXT_FIELDS)
        else:
            text = _flatten_text(doc.get(name))
        for token in tokenize(text):
            weights[token] = weight
    return weights


@dataclass
class SampleNamespace:
    """A mutable copy of the sample namespace (one per fake server)."""

    retrievers: dict[str, dict[str, Any]]
    bindings: dict[str, dict[str, Any]]
    documents: list[dict[str, Any]]
    collections: list[dict[str, Any]]
    taxonomies: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    buckets: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    _weights: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._weights = {d["document_id"]: _term_weights(d) for d in self.documents}

    def find_retriever(self, key: str) -> dict[str, Any] | None:
        """A retriever by id or by name."""
        found = self.retrievers.get(key)
        if found is not None:
            return found
        return next((r for r in self.retrievers.values() if r["retriever_name"] == key), None)

    def find_document(self, collection_id: str, document_id: str) -> dict[str, Any] | None:
        """A document by collection id and document id."""
        return next(
            (
                d
                for d in self.documents
                if d["document_id"] == document_id and d["collection_id"] == collection_id
            ),
            None,
        )

    def term_weights(self, document_id: str) -> Mapping[str, float]:
        """Token -> weight for a document (title beats tags beats description beats text)."""
        return self._weights.get(document_id, {})


@functools.lru_cache(maxsize=1)
def _raw_data() -> dict[str, Any]:
    base = resources.files("mixpeek_openai.testing").joinpath("data")
    return {
        name: json.loads(base.joinpath(f"{name}.json").read_text("utf-8")) for name in _DATA_FILES
    }


def load_sample_namespace() -> SampleNamespace:
    """A fresh, independent copy of the packaged sample namespace."""
    raw = copy.deepcopy(_raw_data())
    retrievers = raw["retrievers"]
    return SampleNamespace(
        retrievers={r["retriever_id"]: r for r in retrievers["retrievers"]},
        bindings=retrievers["input_bindings"],
        documents=raw["documents"]["documents"],
        collections=raw["collections"]["collections"],
        taxonomies=raw["taxonomies"]["taxonomies"],
        clusters=raw["clusters"]["clusters"],
        buckets=raw["objects"]["buckets"],
        objects=raw["objects"]["objects"],
    )


# --- inputs -> query terms and conditions ---------------------------------------------


def default_binding(schema: Mapping[str, Any]) -> dict[str, Any]:
    """How inputs steer a search when a retriever has no explicit binding.

    Free-text and media inputs become query terms; enum strings filter the document
    field of the same name.
    """
    query = [
        name
        for name, spec in schema.items()
        if (spec.get("type") in _TEXT_TYPES and not spec.get("enum"))
        or spec.get("type") in _MEDIA_TYPES
    ]
    filters = {
        name: [name, "eq"]
        for name, spec in schema.items()
        if spec.get("type") in _TEXT_TYPES and spec.get("enum")
    }
    reference = next((n for n, s in schema.items() if s.get("type") == "document_reference"), None)
    return {"query": query, "filters": filters, "reference": reference}


def input_value(inputs: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> Any:
    """An input by path (``a``, ``a.b`` or ``a[].b``), falling back to schema defaults."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    name = head[:-2] if many else head
    value = inputs.get(name)
    spec = schema.get(name, {})
    if value is None:
        value = spec.get("default")
    if not rest or value is None:
        return value
    if many:
        if not isinstance(value, list):
            return None
        out = [input_value(v, spec.get("items", {}).get("properties", {}), rest) for v in value]
        return [v for v in out if v is not None] or None
    if not isinstance(value, Mapping):
        return None
    return input_value(value, spec.get("properties", {}), rest)


def query_terms(
    binding: Mapping[str, Any], inputs: Mapping[str, Any], schema: Mapping[str, Any]
) -> list[str]:
    """Distinct query tokens from the text-like and media inputs, in order."""
    terms: list[str] = []
    for name in binding.get("query", ()):
        value = input_value(inputs, schema, name)
        if not isinstance(value, str):
            continue
        kind = schema.get(name, {}).get("type")
        terms.extend(media_tokens(value) if kind in _MEDIA_TYPES else tokenize(value))
    return list(dict.fromkeys(terms))


def input_conditions(
    binding: Mapping[str, Any], inputs: Mapping[str, Any], schema: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Filter conditions the bound inputs imply (``field``/``operator``/``value``)."""
    conditions: list[dict[str, Any]] = []
    for path, (field_name, operator) in binding.get("filters", {}).items():
        value = input_value(inputs, schema, path)
        if value is None:
            continue
        if operator == "allow":
            # A boolean that *permits* flagged documents: false excludes them.
            if value is False:
                conditions.append({"field": field_name, "operator": "ne", "value": True})
            continue
        if operator == "lte_minutes":
            conditions.append({"field": field_name, "operator": "lte", "value": value * 60})
            continue
        conditions.append({"field": field_name, "operator": operator, "value": value})
    return conditions


# --- filters ---------------------------------------------------------------------------

_MISSING = object()


def _resolve(doc: Any, path: str) -> Any:
    value = doc
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list):
            value = [v.get(part) for v in value if isinstance(v, Mapping) and part in v]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def field_value(doc: Mapping[str, Any], path: str) -> Any:
    """A document field by dotted path; ``metadata.x`` also finds top-level ``x``."""
    value = _resolve(doc, path)
    if value is _MISSING and path.startswith("metadata."):
        value = _resolve(doc, path[len("metadata.") :])
    return value


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        try:
            return parse_datetime(a), parse_datetime(b)
        except ValueError:
            return a, b
    return None


def _scalar_match(actual: Any, operator: str, expected: Any) -> bool:
    if operator == "eq":
        return bool(actual == expected)
    if operator == "in":
        return actual in expected
    if operator == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected.lower() in actual.lower()
        return False
    pair = _comparable(actual, expected)
    if pair is None:
        return False
    left, right = pair
    try:
        if operator == "gt":
            return bool(left > right)
        if operator == "gte":
            return bool(left >= right)
        if operator == "lt":
            return bool(left < right)
        if operator == "lte":
            return bool(left <= right)
    except TypeError:
        return False
    return False


def condition_matches(doc: Mapping[str, Any], cond: Mapping[str, Any]) -> bool:
    """Whether ``doc`` satisfies one ``{"field", "operator", "value"}`` condition."""
    operator = cond.get("operator", "eq")
    expected = cond.get("value")
    actual = field_value(doc, cond["field"])
    if operator == "exists":
        present = actual is not _MISSING and actual is not None
        return present == (expected is not False)
    if operator in ("ne", "nin"):
        return not condition_matches(
            doc, {**cond, "operator": operator[1:] if operator == "nin" else "eq"}
        )
    if actual is _MISSING or actual is None:
        return False
    values = actual if isinstance(actual, list) else [actual]
    if operator == "contains" and isinstance(actual, list):
        return expected in actual
    if operator == "in":
        return isinstance(expected, list) and any(v in expected for v in values)
    return any(_scalar_match(v, operator, expected) for v in values)


def group_matches(doc: Mapping[str, Any], group: Mapping[str, Any]) -> bool:
    """Whether ``doc`` satisfies a ``{"AND"|"OR"|"NOT": [...]}`` filter group."""

    def item_ok(item: Mapping[str, Any]) -> bool:
        if any(k in item for k in ("AND", "OR", "NOT")):
            return group_matches(doc, item)
        return condition_matches(doc, item)

    ok = True
    if group.get("AND"):
        ok = ok and all(item_ok(i) for i in group["AND"])
    if group.get("OR"):
        ok = ok and any(item_ok(i) for i in group["OR"])
    if group.get("NOT"):
        ok = ok and not any(item_ok(i) for i in group["NOT"])
    return ok


# --- ranking ---------------------------------------------------------------------------


def rank(
    namespace: SampleNamespace,
    documents: Iterable[dict[str, Any]],
    terms: Sequence[str],
) -> list[tuple[float, dict[str, Any]]]:
    """Documents with their lexical score, best first; ties broken by ``document_id``.

    The score is the mean over query terms of the term's weight in the document (title 1.0,
    tags 0.8, description 0.6, other text 0.3), so it lies in [0, 1]. With no query terms
    every document scores 0; otherwise documents matching no term are left out.
    """
    scored: list[tuple[float, dict[str, Any]]] = []
    for doc in documents:
        if terms:
            weights = namespace.term_weights(doc["document_id"])
            score = round(sum(weights.get(t, 0.0) for t in terms) / len(terms), 4)
            if score <= 0:
                continue
        else:
            score = 0.0
        scored.append((score, doc))
    scored.sort(key=lambda pair: (-pair[0], pair[1]["document_id"]))
    return scored


def result_document(
    doc: Mapping[str, Any], score: float | None, drop: Iterable[str] = ()
) -> dict[str, Any]:
    """A document as the API returns it: ids, score, payload fields and ``metadata``."""
    out: dict[str, Any] = {
        "document_id": doc["document_id"],
        "collection_id": doc["collection_id"],
    }
    if score is not None:
        out["score"] = score
    dropped = set(drop)
    for key, value in doc.items():
        if key not in out and key not in dropped:
            out[key] = copy.deepcopy(value)
    out["source_object_id"] = doc.get("root_object_id")
    out["metadata"] = {k: doc[k] for k in _METADATA_FIELDS if k in doc}
    return out


# --- cursors ---------------------------------------------------------------------------


def encode_cursor(offset: int, scope: str) -> str:
    """An opaque cursor for the page starting at ``offset`` within ``scope``."""
    raw = json.dumps({"o": offset, "s": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str) -> int | None:
    """The offset in ``cursor``, or ``None`` when it is not one of ours for ``scope``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("s") != scope:
        return None
    offset = data.get("o")
    return offset if isinstance(offset, int) and offset >= 0 else None
