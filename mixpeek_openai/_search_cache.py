"""A small, opt-in memory of recent searches (``DispatchConfig.search_cache_ttl_s``).

Models repeat themselves: the same search, word for word, two turns apart. Searches are
reads, so within a short time-to-live the earlier response can answer again without a
request. Entries are keyed by tool name and the validated arguments (normalised: the
model's ``null`` and an omitted field are the same), expire on the retry policy's clock,
and the least recently used entry goes first when the cache is full. The result of a
cached answer says so (``ToolCallResult.cached``).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["SearchCache"]


class SearchCache:
    """Thread-safe LRU of search responses with a time-to-live."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float]) -> None:
        """Keep at most ``max_entries`` responses, each for ``ttl_s`` seconds of ``clock``."""
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    @staticmethod
    def key(tool: str, arguments: dict[str, Any]) -> str:
        """The cache key of a call: tool name plus canonical JSON of its arguments."""
        return tool + "\x00" + json.dumps(arguments, sort_keys=True, separators=(",", ":"))

    def get(self, key: str) -> Any | None:
        """The remembered response for ``key``, or ``None`` (missing or expired)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, response: Any) -> None:
        """Remember ``response`` for ``key``."""
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, response)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
