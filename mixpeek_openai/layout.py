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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["LAYOUTS", "Layout", "Page", "as_objects", "assemble", "hoist"]

Layout: TypeAlias = Literal["columns", "objects"]
LAYOUTS: tuple[Layout, ...] = ("columns", "objects")


@dataclass(frozen=True)
class Page:
    """Documents' cells under column names, with the values they all share taken out."""

    shared: dict[str, Any]
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

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


def hoist(names: Sequence[str], columns: Sequence[list[Any]]) -> Page:
    """A :class:`Page` of cells given column by column (``columns[i]`` holds every
    document's value for ``names[i]``): columns no document has dropped; with two documents
    or more, a column whose value is the same in every document moved to ``shared``."""
    count = len(columns[0]) if columns else 0
    if not count:
        return Page({}, (), [])
    shared: dict[str, Any] = {}
    kept_names: list[str] = []
    kept: list[list[Any]] = []
    for name, values in zip(names, columns, strict=True):
        first = values[0]
        if first is None:
            if values.count(None) == count:
                continue  # no document has it
        elif count > 1 and values.count(first) == count:
            # Equal is not enough: 1, 1.0 and True are different values here.
            kind = type(first)
            if all(type(v) is kind for v in values):
                shared[name] = first
                continue
        kept_names.append(name)
        kept.append(values)
    rows = list(zip(*kept, strict=True)) if kept else [()] * count  # every column shared
    return Page(shared, tuple(kept_names), rows)


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
