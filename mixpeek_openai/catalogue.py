"""The exploration catalogue: namespace actions the model may be given as extra tools.

``actions=[...]`` adds one tool per namespace action (:data:`NAMESPACE_ACTIONS`: list or
look up retrievers, collections, taxonomies, clusters, objects) and, with ``describe`` /
``explain`` (:data:`RETRIEVER_ACTIONS`), one tool per retriever. Every action is a read:
each builds one fixed request from validated arguments, bounded like a search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, create_model

from mixpeek_openai._arguments import EMPTY_CONFIG, page_size_type
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.definitions import ToolDefinition, path_segment
from mixpeek_openai.schema import pascal_case

__all__ = ["ACTIONS", "NAMESPACE_ACTIONS", "RETRIEVER_ACTIONS", "action_specs", "action_tool"]

NAMESPACE_ACTIONS: tuple[str, ...] = (
    "search_retrievers",
    "get_retriever",
    "list_collections",
    "get_collection",
    "list_taxonomies",
    "get_taxonomy",
    "list_clusters",
    "get_object",
)
"""Exploration actions that add one tool each to the tool set."""


RETRIEVER_ACTIONS: tuple[str, ...] = ("describe", "explain")
"""Actions that add one tool per retriever (``describe_<name>``, ``explain_<name>``)."""


ACTIONS: tuple[str, ...] = NAMESPACE_ACTIONS + RETRIEVER_ACTIONS
"""Every valid name for ``actions=[...]``."""


@dataclass(frozen=True)
class _ActionSpec:
    """A namespace exploration action: its description, arguments and request."""

    description: str
    fields: dict[str, tuple[Any, Any]]
    build: Callable[[dict[str, Any], int], MixpeekRequest]


def _list_body(args: dict[str, Any], max_page_size: int) -> dict[str, Any]:
    body: dict[str, Any] = {"limit": min(args.get("limit") or max_page_size, max_page_size)}
    if args.get("search"):
        body["search"] = args["search"]
    return body


def action_specs(max_page_size: int) -> dict[str, _ActionSpec]:
    def search_field(what: str) -> tuple[Any, Any]:
        return (
            str | None,
            Field(default=None, description=f"Words to look for in {what}; null for all."),
        )

    limit_field = (
        page_size_type(max_page_size),
        Field(
            default=None,
            ge=1,
            le=max_page_size,
            description=f"How many to return, 1-{max_page_size}; null for {max_page_size}.",
        ),
    )

    def id_field(what: str) -> tuple[Any, Any]:
        return (str, Field(description=f"Id (or name) of the {what}."))

    return {
        "search_retrievers": _ActionSpec(
            "List the retrievers (search pipelines) of this Mixpeek namespace, optionally "
            "matching words in their names and descriptions.",
            {"search": search_field("retriever names and descriptions")},
            lambda a, n: MixpeekRequest(
                "POST",
                "/retrievers/list",
                body={"search": a["search"]} if a.get("search") else {},
            ),
        ),
        "get_retriever": _ActionSpec(
            "Get one retriever's definition: its stages, inputs and collections.",
            {"retriever_id": id_field("retriever")},
            lambda a, n: MixpeekRequest(
                "GET",
                f"/retrievers/{path_segment(a['retriever_id'])}",
                retriever_id=a["retriever_id"],
            ),
        ),
        "list_collections": _ActionSpec(
            "List the collections (indexed content with extracted features) of this namespace.",
            {"search": search_field("collection names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/collections/list", body=_list_body(a, n)),
        ),
        "get_collection": _ActionSpec(
            "Get one collection: its source, feature extractors and document schema.",
            {"collection_id": id_field("collection")},
            lambda a, n: MixpeekRequest("GET", f"/collections/{path_segment(a['collection_id'])}"),
        ),
        "list_taxonomies": _ActionSpec(
            "List the taxonomies (classification schemes) of this namespace.",
            {"search": search_field("taxonomy names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/taxonomies/list", body=_list_body(a, n)),
        ),
        "get_taxonomy": _ActionSpec(
            "Get one taxonomy and its categories.",
            {"taxonomy_id": id_field("taxonomy")},
            lambda a, n: MixpeekRequest("GET", f"/taxonomies/{path_segment(a['taxonomy_id'])}"),
        ),
        "list_clusters": _ActionSpec(
            "List the clusters (groupings of similar documents) of this namespace.",
            {"search": search_field("cluster names and descriptions"), "limit": limit_field},
            lambda a, n: MixpeekRequest("POST", "/clusters/list", body=_list_body(a, n)),
        ),
        "get_object": _ActionSpec(
            "Get one source object (an uploaded file and its metadata) from a bucket.",
            {"bucket_id": id_field("bucket"), "object_id": id_field("object")},
            lambda a, n: MixpeekRequest(
                "GET",
                f"/buckets/{path_segment(a['bucket_id'])}/objects/{path_segment(a['object_id'])}",
            ),
        ),
    }


def action_tool(action: str, spec: _ActionSpec, name: str, max_page_size: int) -> ToolDefinition:
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        pascal_case(action) + "Args", __config__=EMPTY_CONFIG, **spec.fields
    )

    def build(arguments: BaseModel) -> MixpeekRequest:
        request = spec.build(arguments.model_dump(), max_page_size)
        return MixpeekRequest(
            request.method,
            request.path,
            body=request.body,
            idempotent=True,
            retriever_id=request.retriever_id,
            labels={"tool": name, "action": action},
        )

    return ToolDefinition(
        name=name,
        description=spec.description,
        arguments_model=model,
        retriever_id=None,
        kind="action",
        request_builder=build,
    )
