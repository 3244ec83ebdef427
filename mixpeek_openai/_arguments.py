"""The arguments the dispatcher adds to a tool: a bounded page size, and paging.

The model controls only a retriever's inputs and how many results it wants (at most the
developer's ``max_page_size``) and, for search tools, where the page starts (an offset of
at most :data:`MAX_OFFSET` documents). An out-of-range page size is brought into range
rather than refused: the model asked for "more" or "fewer", and the bound is the
developer's, not its mistake.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

__all__ = [
    "EMPTY_CONFIG",
    "MAX_OFFSET",
    "clamp_page_size",
    "empty_model",
    "offset_field_name",
    "page_field_name",
    "page_size_type",
    "wire_names",
    "with_paging",
]

MAX_OFFSET = 1000
"""Deepest page start a search tool accepts."""

_OFFSET_FIELD_CANDIDATES = ("offset", "page_offset", "result_offset", "skip")

PAGE_FIELD_CANDIDATES = ("limit", "max_results", "page_size", "result_limit", "top_n")


def wire_names(model: type[BaseModel]) -> dict[str, str]:
    """Input name (alias, or field name) -> Python field name."""
    return {(info.alias or name): name for name, info in model.model_fields.items()}


def _free_name(used: set[str], candidates: tuple[str, ...], stem: str) -> str:
    """The first of ``candidates`` not in ``used``, else ``<stem>_2``, ``<stem>_3``, ..."""
    for candidate in candidates:
        if candidate not in used:
            return candidate
    n = 2
    while f"{stem}_{n}" in used:
        n += 1
    return f"{stem}_{n}"


def page_field_name(model: type[BaseModel]) -> str:
    """A name for the page-size argument that no input already uses."""
    used = set(model.model_fields) | set(wire_names(model))
    return _free_name(used, PAGE_FIELD_CANDIDATES, "limit")


def _clamp(low: int, high: int, value: Any) -> Any:
    """A whole number brought into ``[low, high]`` rather than refused (the bound is the
    developer's, not the model's mistake); ``true``/``false`` refused (not numbers here)."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    if isinstance(value, int):
        return max(low, min(value, high))
    return value


def clamp_page_size(maximum: int, value: Any) -> Any:
    """An out-of-range page size is brought into range rather than refused: the model
    asked for "more" or "fewer", and the bound is the developer's, not its mistake."""
    return _clamp(1, maximum, value)


def page_size_type(max_page_size: int) -> Any:
    return Annotated[int | None, BeforeValidator(partial(clamp_page_size, max_page_size))]


def offset_field_name(model: type[BaseModel], taken: set[str]) -> str:
    """A name for the offset argument that no input (nor ``taken``) already uses."""
    used = set(model.model_fields) | set(wire_names(model)) | taken
    return _free_name(used, _OFFSET_FIELD_CANDIDATES, "offset")


def with_paging(
    inputs_model: type[BaseModel],
    field_name: str,
    max_page_size: int,
    offset_field: str | None = None,
) -> type[BaseModel]:
    """``inputs_model`` plus the page-size argument (and the offset argument, if named)."""
    description = (
        f"How many results to return, 1-{max_page_size}. "
        f"Send null for the maximum ({max_page_size})."
    )
    definitions: dict[str, Any] = {
        field_name: (
            page_size_type(max_page_size),
            Field(default=None, ge=1, le=max_page_size, description=description),
        )
    }
    if offset_field is not None:
        definitions[offset_field] = (
            Annotated[int | None, BeforeValidator(partial(_clamp, 0, MAX_OFFSET))],
            Field(
                default=None,
                ge=0,
                le=MAX_OFFSET,
                description=(
                    "How many of the best results to skip, to see the next ones (a multiple of "
                    f"the page size, at most {MAX_OFFSET}). Send null for the first page."
                ),
            ),
        )
    model: type[BaseModel] = create_model(
        inputs_model.__name__.removesuffix("Inputs") + "Arguments",
        __base__=inputs_model,
        __doc__=inputs_model.__doc__,
        **definitions,
    )
    return model


EMPTY_CONFIG = ConfigDict(extra="forbid")


def empty_model(name: str) -> type[BaseModel]:
    model: type[BaseModel] = create_model(name, __config__=EMPTY_CONFIG)
    return model
