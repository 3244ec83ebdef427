"""Fitting an output to a token budget with as few exact counts as possible.

An exact cl100k count costs more than shaping a page, so it is the last resort: a text of
at most ``budget`` UTF-8 bytes fits without counting (a byte-level BPE token covers at
least one byte); otherwise a cheap estimate, calibrated to run slightly above cl100k on
search outputs, picks how much to keep, and one exact count confirms the pick. Only when
the estimate was wrong is the pick redone, with the ratio that count measured; after
:data:`MAX_EXACT_COUNTS` misses the byte bound decides alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mixpeek_openai.tokens import TokenCounter, estimate_tokens, exact_counter

__all__ = ["MAX_EXACT_COUNTS", "MAX_FALLBACK_COUNTS", "PICK_SCALE", "Budget", "fit_prefix"]

PICK_SCALE = 0.95
"""cl100k tokens per estimated token that picks use: above the 0.82-0.93 measured on
realistic search outputs (benchmarks, figure 3), so a pick rarely needs a second count."""

MAX_EXACT_COUNTS = 3
"""Exact counts one output may take when the estimate keeps missing."""

MAX_FALLBACK_COUNTS = 4
"""Further counts a custom counter (no byte bound to fall back on) may take to shorten
the pick; past them, only the empty prefix is tried."""


class Budget:
    """Decides whether texts fit, counting exactly as rarely as it can.

    ``proven`` needs no count (the byte bound); ``guess`` is the calibrated estimate that
    picks; ``confirm`` counts exactly and recalibrates ``guess`` from what it saw.
    """

    def __init__(self, budget_tokens: int, counter: TokenCounter | None = None) -> None:
        self.limit = budget_tokens
        custom = counter
        self.count: TokenCounter = custom or exact_counter() or estimate_tokens
        # A byte-level BPE token covers at least one byte; a custom counter may differ.
        self.byte_bound = custom is None
        self.scale = 1.0 if self.count is estimate_tokens else PICK_SCALE
        self.counts = 0
        self._estimated: tuple[str, int] = ("", 0)

    def _estimate(self, text: str) -> int:
        # The same text is often guessed, then confirmed: estimate it once.
        if self._estimated[0] is not text:
            self._estimated = (text, estimate_tokens(text))
        return self._estimated[1]

    def proven(self, text: str) -> bool:
        """Fits by the byte bound alone (no count)."""
        return self.byte_bound and len(text.encode("utf-8")) <= self.limit

    def guess(self, text: str) -> float:
        """The calibrated estimate of ``text``'s tokens."""
        return self._estimate(text) * self.scale

    def confirm(self, text: str) -> bool:
        """Fits, by the byte bound or one exact count (at most :data:`MAX_EXACT_COUNTS`
        per budget; past them, ``False``)."""
        if self.proven(text):
            return True
        if self.counts >= MAX_EXACT_COUNTS:
            return False
        self.counts += 1
        guessed = self._estimate(text)
        exact = guessed if self.count is estimate_tokens else self.count(text)
        if guessed:
            self.scale = max(self.scale, exact / guessed * 1.02)
        return exact <= self.limit


def _pick(pieces: Sequence[str], empty: str, limit: float, guess: Callable[[str], float]) -> int:
    """How many of ``pieces`` (in order) the guess says fit around an envelope ``empty``."""
    total = guess(empty)
    for k, piece in enumerate(pieces):
        total += guess(piece) + 0.5  # the separating comma
        if total > limit:
            return k
    return len(pieces)


def fit_prefix(
    pieces: Sequence[str], render: Callable[[int], str], budget: Budget
) -> tuple[int, str] | None:
    """The longest prefix of ``pieces`` whose ``render`` fits, and its text; ``None`` when
    not even an empty one does. One exact count in the common case."""
    whole = render(len(pieces))
    if budget.proven(whole):
        return len(pieces), whole
    tried: set[int] = set()
    while budget.counts < MAX_EXACT_COUNTS:
        k = _pick(pieces, render(0), budget.limit, budget.guess)
        if k in tried:
            k -= 1  # the same pick failed before: one fewer
        if k < 0:
            break
        tried.add(k)
        text = whole if k == len(pieces) else render(k)
        if budget.confirm(text):
            return k, text
    # The estimate kept missing: fall back on the byte bound, which needs no count.
    k = len(pieces)
    if budget.byte_bound:
        while k > 0 and not budget.proven(render(k)):
            k = max(0, k - max(1, k // 4))
        text = render(k)
        return (k, text) if budget.proven(text) else None
    while k >= 0:
        if budget.counts >= MAX_EXACT_COUNTS + MAX_FALLBACK_COUNTS:
            k = 0  # out of counts: the empty prefix is the last thing to try
        text = render(k)
        budget.counts += 1
        if budget.count(text) <= budget.limit:
            return k, text
        k = k // 2 if k > 1 else k - 1
    return None
