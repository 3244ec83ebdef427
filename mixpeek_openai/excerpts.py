"""One short excerpt per document, taken where the query's words are.

A model deciding which results answer a question needs a glimpse of each document's text,
not all of it: the first 600 characters of a transcript and of a description cost more
than the rest of the output, and the part that matches the query is often further in.
So each document gets one excerpt (about 150 characters, cut at word boundaries) from its
best text field: the one holding the most of the query's words, else the first long enough
in :data:`TEXT_FIELDS` order. The excerpt is the window around the query's words, started at
the beginning of their sentence when that is close; a cut end is marked with a single ``…``.

Cuts fall on whitespace, so a URL inside the text is kept whole or left out, never
shortened into a dead link; presigned URLs inside text are replaced (see
:mod:`mixpeek_openai.links`).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable

from mixpeek_openai.links import strip_signed

__all__ = [
    "MARKER",
    "TEXT_FIELDS",
    "Passage",
    "best_passage",
    "close",
    "cut",
    "next_space",
    "query_terms",
    "space_before",
]

MARKER = "…"
"""Marks where an excerpt's text was cut (one character, one token)."""

TEXT_FIELDS: tuple[str, ...] = (
    "summary",
    "description",
    "caption",
    "text",
    "transcript",
    "content",
    "body",
    "chunk",
    "snippet",
)
"""Fields an excerpt may come from, in order of preference when no query word decides."""

_STOP_WORDS = frozenset(
    {
        "a",
        "about",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "find",
        "for",
        "from",
        "get",
        "give",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "show",
        "some",
        "that",
        "the",
        "this",
        "to",
        "us",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    }
)
_SEARCHED_CHARS = 20_000  # query words are looked for in this much of each text
_MAX_HITS = 64
_SENTENCE_REACH = 60  # how far back an excerpt may start to begin at its sentence
_WORD_REACH = 300  # how far a cut looks for whitespace
_SLACK = 20  # a text at most this much longer than an excerpt is kept whole
# Matches up to the last sentence end in a window (the greedy ``.*`` backtracks from the
# window's end), one C-level match instead of iterating over every sentence end.
_LAST_SENTENCE_END = re.compile(r".*(?:[.!?;:]\s|\n)", re.DOTALL)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://")
_SPACE = re.compile(r"\s")


@functools.lru_cache(maxsize=256)
def query_terms(query: str | None) -> tuple[str, ...]:
    """The words of ``query`` that excerpts look for (lower case, no stop words)."""
    if not query:
        return ()
    seen: dict[str, None] = {}
    for word in re.findall(r"\w+", query.lower()):
        if (len(word) > 1 or word.isdigit()) and word not in _STOP_WORDS:
            seen.setdefault(word, None)
    return tuple(seen)[:16]


@functools.lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so "integrations" is not matched as "integration" + a stray "s".
    alternatives = sorted(terms, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, alternatives)) + ")", re.IGNORECASE)


class Passage:
    """A text and where its excerpt starts (so excerpts of several lengths agree)."""

    __slots__ = ("start", "text")

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.start = start

    def excerpt(self, chars: int) -> str:
        """The excerpt of about ``chars`` characters (see :func:`cut`)."""
        return cut(self.text, self.start, chars)


def _hits(text: str, terms: tuple[str, ...]) -> tuple[list[tuple[int, str]], int]:
    """Where query words start words of ``text`` (in order, at most :data:`_MAX_HITS`),
    and how many distinct words they are."""
    searched = text if len(text) <= _SEARCHED_CHARS else text[:_SEARCHED_CHARS]
    if not searched.isascii():
        # Lower-casing may change the length of non-ASCII text: let the regex find them.
        matches = _pattern(terms).finditer(searched)
        found = [(m.start(), m.group(0).lower()) for m in itertools.islice(matches, _MAX_HITS)]
        return found, len({w for _, w in found})
    low = searched.lower()
    find = low.find
    found = []
    distinct = 0
    for term in terms:
        at = find(term)
        if at < 0:
            continue
        before = len(found)
        while at >= 0:
            if at == 0 or not low[at - 1].isalnum():
                found.append((at, term))
            at = find(term, at + len(term))
        if len(found) > before:
            distinct += 1
    if distinct > 1:
        found.sort()  # each word's hits are in order already
    if len(found) > _MAX_HITS:
        found = found[:_MAX_HITS]
        distinct = len({w for _, w in found})
    return found, distinct


def _best_window(hits: list[tuple[int, str]], distinct: int, chars: int) -> int:
    """Where the ``chars``-wide window holding the most distinct query words starts (the
    earliest of the best)."""
    best_at = hits[0][0]
    if hits[-1][0] < best_at + chars:
        return best_at  # the first window holds every hit
    best_key = (0, 0)
    words: dict[str, int] = {}
    j, count = 0, len(hits)
    for i, (at, word) in enumerate(hits):
        while j < count and hits[j][0] < at + chars:
            inside = hits[j][1]
            words[inside] = words.get(inside, 0) + 1
            j += 1
        key = (len(words), j - i)
        if key > best_key:
            best_at, best_key = at, key
            if len(words) == distinct:
                break  # every query word in one window: none can do better on that
        words[word] -= 1
        if not words[word]:
            del words[word]
    return best_at


def best_passage(texts: Iterable[str], terms: tuple[str, ...], chars: int) -> Passage | None:
    """The text to excerpt among ``texts`` (given in order of preference) and its start.

    The text holding the most distinct query words wins; without any, the first at least
    ``chars`` long, else the first. The start is the window around the query's words.
    """
    if not terms:
        first = None
        for text in texts:
            if text and not text.isspace():
                if len(text) >= chars:
                    return Passage(text, 0)
                first = first or text
        return Passage(first, 0) if first else None
    best, best_hits, best_distinct = "", [], 0
    best_key: tuple[int, bool, int, int] | None = None
    for rank, text in enumerate(texts):
        if not text or text.isspace():
            continue
        hits, distinct = _hits(text, terms)
        key = (distinct, len(text) >= chars, len(hits), -rank)
        if best_key is None or key > best_key:
            best, best_hits, best_distinct, best_key = text, hits, distinct, key
    if best_key is None:
        return None
    if not best_hits:
        return Passage(best, 0)
    return Passage(best, _start_near(best, _best_window(best_hits, best_distinct, chars), chars))


def space_before(text: str, floor: int, at: int) -> int:
    """Index just after the last whitespace in ``text[floor:at]``, or -1."""
    found = max(
        text.rfind(" ", floor, at), text.rfind("\n", floor, at), text.rfind("\t", floor, at)
    )
    return found + 1 if found >= 0 else -1


def next_space(text: str, at: int) -> int:
    """Index of the first whitespace at or after ``at``, or ``len(text)``."""
    found = _SPACE.search(text, at)
    return found.start() if found is not None else len(text)


def close(piece: str) -> str:
    """``piece`` with the cut marker, kept apart from a URL it ends with (so the URL
    reads whole)."""
    return piece + (" " + MARKER if piece.rfind("://") > piece.rfind(" ") else MARKER)


def _start_near(text: str, at: int, chars: int) -> int:
    """A start at or before ``at`` on a word boundary: the sentence's start when near."""
    # Keep the excerpt full length when the window is close to the end of the text.
    at = min(at, max(0, len(text) - chars))
    if at <= _SENTENCE_REACH:
        return 0
    last = _LAST_SENTENCE_END.match(text, at - _SENTENCE_REACH, at)
    sentence = last.end() if last is not None else None
    if sentence is None:
        if at > 0 and not text[at - 1].isspace():
            sentence = space_before(text, max(0, at - _WORD_REACH), at)
            if sentence < 0:
                # Inside a very long token: begin after it rather than inside it.
                return min(len(text), next_space(text, at) + 1)
        else:
            sentence = at
    start = sentence
    while start < len(text) and text[start].isspace():
        start += 1
    return start


def _end_near(text: str, target: int, start: int) -> int:
    """A cut at or just after ``target`` on whitespace; before the word when it is long."""
    if target >= len(text) or text[target].isspace():
        return target
    space = text.find(" ", target, target + _SLACK)
    if space >= 0 and text[target:space].isprintable():
        return space  # the first whitespace: printable text holds no other kind
    found = _SPACE.search(text, target, target + _SLACK)
    if found is not None:
        return found.start()
    if target + _SLACK >= len(text):
        return len(text)
    # A long word straddles the cut: cut before it.
    back = space_before(text, max(start, target - _WORD_REACH), target)
    if back > start:
        return back
    # One token longer than the excerpt: cut it, unless it holds a URL (kept whole or left out).
    scheme = _SCHEME.search(text, start, target)
    return scheme.start() if scheme is not None else target


def cut(text: str, start: int, chars: int) -> str:
    """About ``chars`` characters of ``text`` from ``start`` (at least ``chars`` unless the
    text ends first), cut on whitespace, whitespace collapsed, ``…`` where text was left
    out, presigned URLs replaced."""
    lead = MARKER if start > 0 else ""
    if len(text) - start <= chars + _SLACK:
        piece, tail = text[start:], ""
    else:
        end = _end_near(text, start + chars, start)
        piece, tail = text[start:end], MARKER
    if "  " in piece or not piece.isprintable():
        piece = " ".join(piece.split())  # collapse runs, newlines and other whitespace
    else:
        piece = piece.strip(" ")  # the only whitespace printable text holds is " "
    if tail:
        piece = piece.rstrip(",;:-–—")
    if "://" not in piece:
        # No URL (the common case): nothing to keep apart from the marker, nothing signed.
        return lead + piece + tail
    return strip_signed(lead + (close(piece) if tail else piece))
