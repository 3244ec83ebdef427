"""Tool names and descriptions: valid for the API, unique, and short enough.

Search tools are ``search_<base>``, where ``<base>`` is the retriever name sanitised to
``[a-z0-9_-]`` with a leading ``search_`` / trailing ``_search`` removed
(``product_demo_search`` -> ``search_product_demo``), cut to 64 characters and made unique
with ``_2``, ``_3``... suffixes. Descriptions are cut at a word boundary.
"""

from __future__ import annotations

import re

__all__ = ["MAX_DESCRIPTION_CHARS", "NAME_RE", "clip", "sanitize", "tool_base", "unique"]

MAX_DESCRIPTION_CHARS = 1024
"""Tool descriptions are cut to this many characters (at a word boundary)."""


NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def sanitize(text: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "_", text.strip()).strip("_-")
    return re.sub(r"_{2,}", "_", cleaned).lower()


def tool_base(label: str, retriever_id: str) -> str:
    """The retriever part of its tool names: ``product_demo_search`` -> ``product_demo``."""
    base = sanitize(label) or sanitize(retriever_id) or "retriever"
    for affix in ("search_", "_search"):
        trimmed = base.removeprefix(affix) if affix == "search_" else base.removesuffix(affix)
        if trimmed and trimmed != base:
            base = trimmed
    return base


def unique(candidate: str, taken: set[str]) -> str:
    candidate = candidate[:64]
    name, n = candidate, 2
    while name in taken:
        suffix = f"_{n}"
        name, n = candidate[: 64 - len(suffix)] + suffix, n + 1
    taken.add(name)
    return name


def clip(text: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
