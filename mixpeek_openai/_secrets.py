"""Keeping the API key out of everything the package emits.

A :class:`Scrubber` knows one key and removes it, and any 12-character piece of it, from
text and from response bytes. The dispatcher scrubs a response body *before* it is
decoded and shaped (so cutting a long text can never leave a fragment of a key behind),
and every message, log line, event and exception text the package builds passes through
the same scrubber. ``Bearer <token>`` is redacted whatever the token.

Finding every 12-character fragment cheaply: any 12-character window of the key contains
one of the key's 6-character pieces that start at multiples of 6, so the text is first
searched for those few pieces (fast substring searches in C); only when one occurs is the
text searched window by window.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FRAGMENT", "REDACTED", "Scrubber"]

REDACTED = "[redacted]"
FRAGMENT = 12
"""Shortest piece of the key that is treated as the key."""

_ANCHOR = FRAGMENT // 2
# Scrubbed texts are often JSON (a response body, a rendered output): the token stops at a
# backslash (but for JSON's ``\/``), so the ``\"`` that may close it stays an escape and the
# JSON stays valid, and an escaped newline or tab after "Bearer" separates like the real one.
_BEARER = re.compile(r"(?i)(bearer(?:\s|\\[nrt])+)(?:[^\s\"',;\\]|\\/)+")
_BEARER_BYTES = re.compile(rb"(?i)(bearer(?:\s|\\[nrt])+)(?:[^\s\"',;\\]|\\/)+")


class Scrubber:
    """Removes one secret (and its 12-character fragments) from text and bytes."""

    __slots__ = ("_anchors", "_anchors_b", "_secret", "_windows", "_windows_b")

    def __init__(self, secret: str | None) -> None:
        """Scrub ``secret``; ``None`` or a very short value only redacts Bearer tokens."""
        self._secret = secret if secret and len(secret) >= 4 else None
        windows: list[str] = []
        anchors: list[str] = []
        if self._secret is not None and len(self._secret) > FRAGMENT:
            key = self._secret
            windows = [key[i : i + FRAGMENT] for i in range(len(key) - FRAGMENT + 1)]
            anchors = [key[i : i + _ANCHOR] for i in range(0, len(key) - _ANCHOR + 1, _ANCHOR)]
        self._windows = windows
        self._anchors = anchors
        self._windows_b = [w.encode("utf-8") for w in windows]
        self._anchors_b = [a.encode("utf-8") for a in anchors]

    def __repr__(self) -> str:
        return "Scrubber(secret=[redacted])" if self._secret else "Scrubber(secret=None)"

    def text(self, value: str) -> str:
        """``value`` without the secret, its fragments or any Bearer token."""
        secret = self._secret
        if secret is not None:
            if secret in value:
                value = value.replace(secret, REDACTED)
            if self._anchors and any(a in value for a in self._anchors):
                for window in self._windows:
                    if window in value:
                        value = value.replace(window, REDACTED)
        if "earer" in value:
            value = _BEARER.sub(r"\1" + REDACTED, value)
        return value

    def data(self, value: bytes) -> bytes:
        """:meth:`text` for raw bytes (a response body before it is decoded)."""
        secret = self._secret
        if secret is not None:
            raw = secret.encode("utf-8")
            if raw in value:
                value = value.replace(raw, REDACTED.encode())
            if self._anchors_b and any(a in value for a in self._anchors_b):
                for window in self._windows_b:
                    if window in value:
                        value = value.replace(window, REDACTED.encode())
        if b"earer" in value:
            value = _BEARER_BYTES.sub(rb"\1" + REDACTED.encode(), value)
        return value

    def value(self, value: Any) -> Any:
        """:meth:`text` applied to every string of decoded JSON (keys included): a body may
        write the key with ``\\u`` escapes, which only decoding turns into the key."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def contains(self, value: str) -> bool:
        """Whether ``value`` still holds the secret or a fragment of it (for checks)."""
        return self.text(value) != value
