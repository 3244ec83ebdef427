"""How a page of documents is laid out as JSON: column names once, one row per document.

Repeating every field name in every document (``{"document_id": ..., "score": ...}`` ten
times) spends a quarter of an output's tokens on names. The default ``columns`` layout says
them once::

    {"shared": {"collection_id": "col_videos"},
     "columns": ["document_id", "score", "title", "excerpt"],
     "rows": [["doc_1", 0.91, "CRM walkthrough", "…paste the webhook URL into…"], ...]}

and the ``objects`` layout (a per-tool option) keeps one object per document for models or
prompts that read those better. In both, a value every document shares (their collection,
a language) is said once under ``shared``, and a field no document has is left out. A
missing value in a row is ``null``.

Rows are rendered one by one so the caller can fit a prefix of them to a token budget
without rendering the page again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["LAYOUTS", "Layout", "Page", "as_objects", "assemble", "hoist"]

Layout: TypeAlias = Literal["columns", "objects"]
LAYOUTS: tuple[Layout, ...] = ("columns", "objects")


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (``1``, ``1.0`` and ``True`` are different values here)."""
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Page:
    """Documents' cells under column names, with the values they all share taken out."""

    shared: dict[str, Any]
    columns: tuple[str, ...]
    rows: list[list[Any]]

    def documents(self, layout: Layout) -> list[Any]:
        """The rows as the layout writes them: arrays of cells, or objects without the
        missing ones."""
        if layout == "objects":
            columns = self.columns
            return [
                {c: v for c, v in zip(columns, row, strict=True) if v is not None}
                for row in self.rows
            ]
        return self.rows

    def row_texts(self, layout: Layout, to_json: Callable[[Any], str]) -> list[str]:
        """Each row as JSON (see :meth:`documents`), to fit a prefix of them."""
        return [to_json(row) for row in self.documents(layout)]


def hoist(columns: Sequence[str], rows: list[list[Any]]) -> Page:
    """A :class:`Page` of ``rows``: columns no row has dropped; with two rows or more, a
    column whose value is the same in every row moved to ``shared``."""
    keep: list[int] = []
    shared: dict[str, Any] = {}
    several = len(rows) > 1
    for i, name in enumerate(columns):
        first = rows[0][i] if rows else None
        if several and first is not None and _same(rows[1][i], first):
            kind = type(first)
            if all(type(r[i]) is kind and r[i] == first for r in rows):
                shared[name] = first
                continue
        if first is not None or any(r[i] is not None for r in rows):
            keep.append(i)
    if len(keep) == len(columns):
        return Page(shared, tuple(columns), rows)
    return Page(shared, tuple(columns[i] for i in keep), [[r[i] for i in keep] for r in rows])


def assemble(fields: Sequence[tuple[str, str]]) -> str:
    """A JSON object from ``(key, already-rendered JSON value)`` pairs, in order.

    Keys must be plain (they are written as they are): the callers use fixed names.
    """
    return "{" + ",".join(f'"{key}":{value}' for key, value in fields) + "}"


def as_objects(output: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The documents of a parsed search output, in either layout, as one object each
    (``shared`` values included; missing values left out). For code that reads what the
    model was sent: ``as_objects(json.loads(result.output))``."""
    shared = output.get("shared")
    base = dict(shared) if isinstance(shared, Mapping) else {}
    columns, rows = output.get("columns"), output.get("rows")
    if isinstance(columns, list) and isinstance(rows, list):
        names = [str(c) for c in columns]
        return [
            {**base, **{c: v for c, v in zip(names, row, strict=False) if v is not None}}
            for row in rows
            if isinstance(row, list)
        ]
    documents = output.get("documents")
    if isinstance(documents, list):
        return [{**base, **d} for d in documents if isinstance(d, Mapping)]
    return []
