"""Typed exceptions.

Everything this package raises derives from :class:`MixpeekOpenAIError`. Mistakes the
*model* makes (bad JSON, wrong types, unknown tools) never raise: they become tool
outputs that tell the model what to fix. Mistakes the *programmer* makes raise one of
the configuration errors below, with a message that says what to change.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "MixpeekOpenAIError",
    "RetrieverNotFoundError",
    "SchemaMismatchError",
    "UnknownActionError",
]


class MixpeekOpenAIError(Exception):
    """Base class of every exception raised by ``mixpeek_openai``."""


class ConfigurationError(MixpeekOpenAIError, ValueError):
    """The package was called with arguments that cannot work; the message says what to change."""


class UnknownActionError(ConfigurationError):
    """An exploration action name is not one of the supported actions."""

    def __init__(self, unknown: list[str], valid: list[str]) -> None:
        self.unknown = unknown
        self.valid = valid
        super().__init__(
            f"Unknown action(s) {', '.join(map(repr, unknown))}. "
            f"Valid actions are: {', '.join(valid)}."
        )


class SchemaMismatchError(ConfigurationError):
    """A user-declared arguments model does not fit the retriever's ``input_schema``."""

    def __init__(self, message: str, *, retriever_id: str, model: str, fields: list[str]) -> None:
        self.retriever_id = retriever_id
        self.model = model
        self.fields = fields
        super().__init__(message)


class RetrieverNotFoundError(ConfigurationError):
    """A retriever id given to the tool set does not exist in the namespace."""

    def __init__(self, retriever_id: str, detail: Any = None) -> None:
        self.retriever_id = retriever_id
        self.detail = detail
        super().__init__(
            f"Retriever {retriever_id!r} was not found in this namespace. "
            "Check the id (or name) and the client's namespace."
        )
