"""How tool calls are run: :class:`DispatchConfig`, one frozen value per tool set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.retries import RetryPolicy

if TYPE_CHECKING:
    from mixpeek_openai.calls import CallEvent
    from mixpeek_openai.results import TokenCounter

__all__ = ["DispatchConfig"]

_MIN_BUDGET_TOKENS = 64


@dataclass(frozen=True)
class DispatchConfig:
    """How tool calls are run. Frozen; derive variants with :meth:`replace`.

    Raises:
        ConfigurationError: a value is out of range (the message says which).
    """

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """The retry policy (also carries the injectable clock and sleep)."""
    deadline_s: float = 20.0
    """Upper bound on one call, retries and waits included, whatever the server does."""
    max_concurrency: int = 8
    """Calls of one turn that run at the same time (and sync worker threads)."""
    max_connections: int = 32
    """Connections kept open to Mixpeek, and async requests in flight per event loop."""
    output_budget_tokens: int = 2000
    """Upper bound on one output's tokens."""
    max_argument_bytes: int = 64_000
    """Larger arguments are refused (and the model told so)."""
    max_text_chars: int = 600
    """Longest text value kept in an output."""
    score_digits: int = 3
    """Decimal digits kept in scores."""
    max_response_bytes: int = 32 * 1024 * 1024
    """Larger response bodies are refused without being parsed."""
    search_cache_ttl_s: float | None = None
    """Answer a repeated identical search (same tool, same arguments) from memory for this
    many seconds; ``None`` (the default) sends every search."""
    search_cache_size: int = 256
    """Most searches remembered when ``search_cache_ttl_s`` is set."""
    token_counter: TokenCounter | None = field(default=None, compare=False, repr=False)
    """How output tokens are counted (``None``: tiktoken if cached locally, else an estimate)."""
    on_call_event: Callable[[CallEvent], None] | None = field(
        default=None, compare=False, repr=False
    )
    """Called for every :class:`~mixpeek_openai.calls.CallEvent` (from worker threads on
    the sync path). An exception it raises stops the batch and propagates to the caller."""

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ConfigurationError("DispatchConfig.deadline_s must be positive.")
        if self.max_concurrency < 1:
            raise ConfigurationError("DispatchConfig.max_concurrency must be at least 1.")
        if self.max_connections < 1:
            raise ConfigurationError("DispatchConfig.max_connections must be at least 1.")
        if self.output_budget_tokens < _MIN_BUDGET_TOKENS:
            raise ConfigurationError(
                f"DispatchConfig.output_budget_tokens must be at least {_MIN_BUDGET_TOKENS}."
            )
        if self.max_argument_bytes < 1 or self.max_response_bytes < 1:
            raise ConfigurationError("DispatchConfig byte limits must be positive.")
        if self.max_text_chars < 20:
            raise ConfigurationError("DispatchConfig.max_text_chars must be at least 20.")
        if self.score_digits < 0:
            raise ConfigurationError("DispatchConfig.score_digits must not be negative.")
        if self.search_cache_ttl_s is not None and not self.search_cache_ttl_s > 0:
            raise ConfigurationError(
                "DispatchConfig.search_cache_ttl_s must be positive, or None to turn it off."
            )
        if self.search_cache_size < 1:
            raise ConfigurationError("DispatchConfig.search_cache_size must be at least 1.")

    def replace(self, **changes: Any) -> DispatchConfig:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
