"""Request handling of the fake Mixpeek API, independent of HTTP plumbing.

:class:`FakeApi` turns a routed, authenticated request into ``(status, json_body)``; the
server in ``_fake_mixpeek`` adds transport, faults and recording around it.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import mixpeek.models as _mixpeek_models

from ._contract import error_body, validate_filters, validate_inputs, validate_request_body
from ._fake_mixpeek_data import (
    SampleNamespace,
    decode_cursor,
    default_binding,
    encode_cursor,
    group_matches,
    input_conditions,
    input_value,
    query_terms,
    rank,
    result_document,
)

# The generated models are not all re-exported for type checkers; use them untyped.
_models: Any = _mixpeek_models

__all__ = ["ENDPOINTS", "MAX_BATCH_QUERIES", "FakeApi", "Route", "route"]

#: A batch execute accepts at most this many queries (a 17th is refused with 422).
MAX_BATCH_QUERIES = 16

Reply = tuple[int, Any]


@dataclass(frozen=True)
class Route:
    """A matched request: the endpoint name and its path parameters."""

    endpoint: str
    params: Mapping[str, str]


_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile("^/v1" + pattern + "/?$"), endpoint)
    for method, pattern, endpoint in (
        ("POST", r"/retrievers/list", "list_retrievers"),
        ("POST", r"/retrievers/(?P<retriever_id>[^/]+)/execute", "execute"),
        ("POST", r"/retrievers/(?P<retriever_id>[^/]+)/execute/batch", "execute_batch"),
        ("POST", r"/retrievers/(?P<retriever_id>[^/]+)/execute/explain", "explain"),
        ("GET", r"/retrievers/(?P<retriever_id>[^/]+)", "get_retriever"),
        ("POST", r"/collections/list", "list_collections"),
        ("POST", r"/collections/(?P<collection_id>[^/]+)/documents/list", "list_documents"),
        (
            "GET",
            r"/collections/(?P<collection_id>[^/]+)/documents/(?P<document_id>[^/]+)",
            "get_document",
        ),
        ("GET", r"/collections/(?P<collection_id>[^/]+)", "get_collection"),
        ("POST", r"/taxonomies/list", "list_taxonomies"),
        ("GET", r"/taxonomies/(?P<taxonomy_id>[^/]+)", "get_taxonomy"),
        ("POST", r"/clusters/list", "list_clusters"),
        ("GET", r"/clusters/(?P<cluster_id>[^/]+)", "get_cluster"),
        ("POST", r"/buckets/(?P<bucket_id>[^/]+)/objects/list", "list_objects"),
        ("GET", r"/buckets/(?P<bucket_id>[^/]+)/objects/(?P<object_id>[^/]+)", "get_object"),
    )
)

#: Every endpoint name the fake serves (what :meth:`FakeMixpeek.inject` accepts, with "*").
ENDPOINTS: tuple[str, ...] = tuple(dict.fromkeys(e for _, _, e in _ROUTES))


def route(method: str, path: str) -> Route | str | None:
    """The route for ``method path``; ``"method_not_allowed"`` or ``None`` (unknown)."""
    path_matched = False
    for route_method, pattern, endpoint in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if route_method != method:
            path_matched = True
            continue
        return Route(endpoint, {k: unquote(v) for k, v in match.groupdict().items()})
    return "method_not_allowed" if path_matched else None


def _not_found(kind: str, key: str, **details: Any) -> Reply:
    return 404, error_body(
        404,
        f"{kind.capitalize()} '{key}' not found",
        details={f"{kind}_id": key, **details},
        code=f"{kind}_not_found",
    )


def _invalid(errors: list[dict[str, Any]], message: str = "Request validation failed") -> Reply:
    first = errors[0] if errors else {}
    loc = ".".join(str(p) for p in first.get("loc", ()))
    if loc:
        message = f"{message}: {loc}: {first.get('msg')}"
    return 422, error_body(422, message, details={"errors": errors}, code="validation_error")


_PAGING_KEYS = ("limit", "page_size", "offset", "page", "cursor", "include_total")


def _fields_of(model: Any) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def _stable_number(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


_SPANS = ("queue", "plan", "embed_query", "search", "merge", "hydrate_payloads", "serialize")


def _trace_spans(stage: str, duration: float, exec_no: int, index: int) -> list[dict[str, Any]]:
    """A per-stage trace like the real API's, deterministic per execution."""
    spans = []
    start = 0.0
    share = duration / len(_SPANS)
    for span_index, span in enumerate(_SPANS):
        jitter = _stable_number(exec_no, index, span) % 50 / 100
        spans.append(
            {
                "name": f"{stage}.{span}",
                "start_ms": round(start, 3),
                "duration_ms": round(share + jitter, 3),
                "attributes": {"span_index": span_index, "sampled": True},
            }
        )
        start += share + jitter
    return spans


@dataclass(frozen=True)
class _Listed:
    """A read-only resource served by the generic list/get handlers."""

    singular: str
    id_param: str
    name_field: str
    request_model: Any
    items: Callable[[SampleNamespace], list[dict[str, Any]]]


_LISTED: dict[str, _Listed] = {
    "collections": _Listed(
        "collection",
        "collection_id",
        "collection_name",
        _models.ListCollectionsRequest,
        lambda data: data.collections,
    ),
    "taxonomies": _Listed(
        "taxonomy",
        "taxonomy_id",
        "taxonomy_name",
        _models.ListTaxonomiesRequest,
        lambda data: data.taxonomies,
    ),
    "clusters": _Listed(
        "cluster",
        "cluster_id",
        "cluster_name",
        _models.ListClustersRequest,
        lambda data: data.clusters,
    ),
}


class FakeApi:
    """The fake API's behaviour over a :class:`SampleNamespace`."""

    def __init__(self, namespace: SampleNamespace, namespace_id: str) -> None:
        self.data = namespace
        self.namespace_id = namespace_id
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[..., Reply]] = {
            "list_retrievers": self._list_retrievers,
            "get_retriever": self._get_retriever,
            "execute": self._execute,
            "execute_batch": self._execute_batch,
            "explain": self._explain,
            "list_collections": functools.partial(self._list_resource, "collections"),
            "get_collection": functools.partial(self._get_resource, "collections"),
            "list_taxonomies": functools.partial(self._list_resource, "taxonomies"),
            "get_taxonomy": functools.partial(self._get_resource, "taxonomies"),
            "list_clusters": functools.partial(self._list_resource, "clusters"),
            "get_cluster": functools.partial(self._get_resource, "clusters"),
            "list_objects": self._list_objects,
            "get_object": self._get_object,
            "list_documents": self._list_documents,
            "get_document": self._get_document,
        }

    def next_id(self) -> int:
        """A process-unique, increasing number for execution ids."""
        with self._lock:
            return next(self._counter)

    def handle(
        self,
        matched: Route,
        query: Mapping[str, list[str]],
        body: Any,
        execution_fault: tuple[str, str] | None = None,
    ) -> Reply:
        """Answer a routed request with ``(status, body)``."""
        handler = self._handlers[matched.endpoint]
        return handler(
            params=matched.params, query=query, body=body, execution_fault=execution_fault
        )

    # --- retrievers -------------------------------------------------------------------

    def _list_retrievers(self, *, query: Mapping[str, list[str]], body: Any, **_: Any) -> Reply:
        request, errors = self._list_request(_models.ListRetrieversRequest, body)
        if errors:
            return _invalid(errors)
        items = list(self.data.retrievers.values())
        items = self._search(items, request.get("search"), ("retriever_name", "description"))
        page, pagination, problem = self._page(items, query, "retrievers")
        if problem:
            return problem
        return 200, {"results": page, "total": len(items), "pagination": pagination}

    def _get_retriever(self, *, params: Mapping[str, str], **_: Any) -> Reply:
        retriever = self.data.find_retriever(params["retriever_id"])
        if retriever is None:
            return _not_found("retriever", params["retriever_id"])
        return 200, retriever

    def _execute(
        self,
        *,
        params: Mapping[str, str],
        query: Mapping[str, list[str]],
        body: Any,
        execution_fault: tuple[str, str] | None,
        **_: Any,
    ) -> Reply:
        retriever = self.data.find_retriever(params["retriever_id"])
        if retriever is None:
            return _not_found("retriever", params["retriever_id"])
        request, errors = validate_request_body(_models.ExecuteRetrieverRequest, body)
        if errors:
            return _invalid(errors)
        errors = self._check_query(retriever, body.get("inputs"), body.get("filters"), [])
        if errors:
            return _invalid(errors)
        response = self._run(retriever, body, request, execution_fault)
        if query.get("include_legacy_results", [""])[0].lower() == "true":
            # The deprecated alias of ``documents``, only on request.
            response["results"] = response["documents"]
        return 200, response

    def _execute_batch(
        self,
        *,
        params: Mapping[str, str],
        body: Any,
        execution_fault: tuple[str, str] | None,
        **_: Any,
    ) -> Reply:
        retriever = self.data.find_retriever(params["retriever_id"])
        if retriever is None:
            return _not_found("retriever", params["retriever_id"])
        queries = body.get("queries") if isinstance(body, dict) else None
        if isinstance(queries, list) and len(queries) > MAX_BATCH_QUERIES:
            return 422, error_body(
                422,
                f"A batch holds at most {MAX_BATCH_QUERIES} queries, got {len(queries)}; "
                "split it into several requests.",
                details={
                    "limits": {"max_queries": MAX_BATCH_QUERIES},
                    "errors": [{"loc": ["queries"], "msg": "too many queries", "type": "too_long"}],
                },
                code="too_many_queries",
            )
        _, errors = validate_request_body(_models.ExecuteBatchRequest, body)
        if errors:
            return _invalid(errors)
        for i, item in enumerate(queries or []):
            errors.extend(
                self._check_query(
                    retriever, item.get("inputs"), item.get("filters"), ["queries", i]
                )
            )
        if errors:
            return _invalid(errors)
        batch_no = self.next_id()
        results = []
        for i, item in enumerate(queries or []):
            result = self._run(retriever, item, None, execution_fault)
            results.append({"query_index": i, **result})
        failed = sum(1 for r in results if r["status"] == "failed")
        return 200, {
            "batch_id": f"batch_{batch_no:06d}",
            "retriever_id": retriever["retriever_id"],
            "status": "failed" if failed == len(results) else "partial" if failed else "completed",
            "total_queries": len(results),
            "succeeded": len(results) - failed,
            "failed": failed,
            "results": results,
            "warnings": [],
        }

    def _explain(self, *, params: Mapping[str, str], body: Any, **_: Any) -> Reply:
        retriever = self.data.find_retriever(params["retriever_id"])
        if retriever is None:
            return _not_found("retriever", params["retriever_id"])
        _, errors = validate_request_body(_models.ExplainRetrieverRequest, body)
        if errors:
            return _invalid(errors)
        errors = self._check_query(retriever, body.get("inputs"), None, [])
        if errors:
            return _invalid(errors)
        return 200, self._explain_plan(retriever)

    # --- collections, taxonomies, clusters, objects, documents ----------------------

    def _list_resource(
        self,
        kind: str,
        *,
        query: Mapping[str, list[str]],
        body: Any,
        **_: Any,
    ) -> Reply:
        """``POST /v1/{kind}/list`` for collections, taxonomies and clusters."""
        resource = _LISTED[kind]
        request, errors = self._list_request(resource.request_model, body)
        if errors:
            return _invalid(errors)
        items = self._search(
            resource.items(self.data), request.get("search"), (resource.name_field, "description")
        )
        page, pagination, problem = self._page(items, query, kind, request)
        if problem:
            return problem
        return 200, {"results": page, "pagination": pagination, "total_count": len(items)}

    def _get_resource(self, kind: str, *, params: Mapping[str, str], **_: Any) -> Reply:
        """``GET /v1/{kind}/{id}`` for collections, taxonomies and clusters."""
        resource = _LISTED[kind]
        key = params[resource.id_param]
        found = self._find(resource.items(self.data), key, resource.singular)
        return (200, found) if found else _not_found(resource.singular, key)

    def _bucket(self, key: str) -> dict[str, Any] | None:
        return next(
            (b for b in self.data.buckets if key in (b["bucket_id"], b.get("bucket_name"))), None
        )

    def _list_objects(
        self, *, params: Mapping[str, str], query: Mapping[str, list[str]], body: Any, **_: Any
    ) -> Reply:
        bucket = self._bucket(params["bucket_id"])
        if bucket is None:
            return _not_found("bucket", params["bucket_id"])
        request, errors = self._list_request(_models.ListObjectsRequest, body)
        if errors:
            return _invalid(errors)
        items = [o for o in self.data.objects if o["bucket_id"] == bucket["bucket_id"]]
        page, pagination, problem = self._page(
            items, query, "objects:" + bucket["bucket_id"], request
        )
        if problem:
            return problem
        return 200, {"results": page, "pagination": pagination}

    def _get_object(self, *, params: Mapping[str, str], **_: Any) -> Reply:
        bucket = self._bucket(params["bucket_id"])
        if bucket is None:
            return _not_found("bucket", params["bucket_id"])
        found = next(
            (
                o
                for o in self.data.objects
                if o["bucket_id"] == bucket["bucket_id"] and o["object_id"] == params["object_id"]
            ),
            None,
        )
        return (200, found) if found else _not_found("object", params["object_id"])

    def _list_documents(
        self, *, params: Mapping[str, str], query: Mapping[str, list[str]], body: Any, **_: Any
    ) -> Reply:
        collection = self._find(self.data.collections, params["collection_id"], "collection")
        if collection is None:
            return _not_found("collection", params["collection_id"])
        request, errors = self._list_request(_models.ListDocumentsRequest, body)
        if errors:
            return _invalid(errors)
        items = [
            d for d in self.data.documents if d["collection_id"] == collection["collection_id"]
        ]
        filters = request.get("filters")
        if isinstance(filters, dict):
            errors = validate_filters(filters, ["filters"])
            if errors:
                return _invalid(errors)
            items = [d for d in items if group_matches(d, filters)]
        items = self._search(items, request.get("search"), ("title", "description"))
        page, pagination, problem = self._page(
            items, query, "documents:" + collection["collection_id"], request
        )
        if problem:
            return problem
        return 200, {
            "results": [result_document(d, None) for d in page],
            "pagination": pagination,
            "total_documents": len(items),
        }

    def _get_document(self, *, params: Mapping[str, str], **_: Any) -> Reply:
        collection = self._find(self.data.collections, params["collection_id"], "collection")
        if collection is None:
            return _not_found("collection", params["collection_id"])
        doc = self.data.find_document(collection["collection_id"], params["document_id"])
        if doc is None:
            return _not_found("document", params["document_id"])
        return 200, result_document(doc, None)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _find(items: list[dict[str, Any]], key: str, kind: str) -> dict[str, Any] | None:
        return next((i for i in items if key in (i.get(f"{kind}_id"), i.get(f"{kind}_name"))), None)

    @staticmethod
    def _search(
        items: list[dict[str, Any]], search: Any, fields: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        if not isinstance(search, str) or not search:
            return items
        needle = search.lower()
        return [i for i in items if any(needle in str(i.get(f, "")).lower() for f in fields)]

    @staticmethod
    def _list_request(model: Any, body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if body is None:
            return {}, []
        if isinstance(body, dict):
            # The paging query parameters are also accepted in list bodies (the mixpeek
            # client sends ``page_size``/``cursor`` there); check them apart.
            paging = {k: body[k] for k in _PAGING_KEYS if k in body}
            rest = {k: v for k, v in body.items() if k not in paging or k in _fields_of(model)}
            errors = [
                {"loc": [k], "msg": "Input should be a valid integer", "type": "int_type"}
                for k, v in paging.items()
                if k != "cursor" and (not isinstance(v, int) or isinstance(v, bool))
            ]
            if "cursor" in paging and not isinstance(paging["cursor"], str):
                errors.append(
                    {"loc": ["cursor"], "msg": "Input should be a string", "type": "string_type"}
                )
            _, more = validate_request_body(model, rest)
            errors.extend(more)
            return (body if not errors else {}), errors
        _, errors = validate_request_body(model, body)
        return {}, errors

    def _page(
        self,
        items: list[dict[str, Any]],
        query: Mapping[str, list[str]],
        scope: str,
        request: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], Reply | None]:
        request = request or {}
        numbers: dict[str, int] = {}
        for key in ("limit", "page_size", "offset", "page"):
            raw = query.get(key, [None])[0]
            value: Any = raw if raw is not None else request.get(key)
            if value is None:
                continue
            try:
                numbers[key] = int(value)
            except (TypeError, ValueError):
                numbers[key] = -1
            if numbers[key] < (0 if key == "offset" else 1):
                err = [{"loc": ["query", key], "msg": "must be a positive integer", "type": "int"}]
                return [], {}, _invalid(err)
        size = numbers.get("limit") or numbers.get("page_size") or 10
        offset = numbers.get("offset", (numbers.get("page", 1) - 1) * size)
        cursor = query.get("cursor", [None])[0] or request.get("cursor")
        if isinstance(cursor, str) and cursor:
            decoded = decode_cursor(cursor, scope)
            if decoded is None:
                err = [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
                return [], {}, _invalid(err)
            offset = decoded
        page = items[offset : offset + size]
        total = len(items)
        has_next = offset + size < total
        pagination = {
            "total": total,
            "page": offset // size + 1,
            "page_size": size,
            "total_pages": max(1, -(-total // size)),
            "next_cursor": encode_cursor(offset + size, scope) if has_next else None,
        }
        return page, pagination, None

    def _check_query(
        self,
        retriever: Mapping[str, Any],
        inputs: Any,
        filters: Any,
        loc: list[Any],
    ) -> list[dict[str, Any]]:
        errors = [
            {**e, "loc": [*loc, *e["loc"]]}
            for e in validate_inputs(retriever.get("input_schema") or {}, inputs)
        ]
        if filters is not None:
            errors.extend(validate_filters(filters, [*loc, "filters"]))
        return errors

    def _binding(self, retriever: Mapping[str, Any]) -> Mapping[str, Any]:
        binding = self.data.bindings.get(retriever["retriever_id"])
        if binding is None:
            binding = default_binding(retriever.get("input_schema") or {})
        return binding

    def _run(
        self,
        retriever: Mapping[str, Any],
        body: Mapping[str, Any],
        request: Any,
        execution_fault: tuple[str, str] | None,
    ) -> dict[str, Any]:
        """Execute one query and build the full ``ExecuteRetrieverResponse`` body."""
        exec_no = self.next_id()
        schema = retriever.get("input_schema") or {}
        inputs = body.get("inputs") or {}
        binding = self._binding(retriever)
        warnings: list[str] = []
        collection_ids = retriever.get("collection_ids") or retriever["collection_identifiers"]
        candidates = [d for d in self.data.documents if d["collection_id"] in collection_ids]
        terms = query_terms(binding, inputs, schema)
        ref_doc = None
        ref_name = binding.get("reference")
        ref = input_value(inputs, schema, ref_name) if ref_name else None
        if isinstance(ref, Mapping):
            ref_doc = self.data.find_document(ref["collection_id"], ref["document_id"])
            if ref_doc is None:
                warnings.append(
                    f"Reference document {ref['document_id']} not found in "
                    f"{ref['collection_id']}; ignored."
                )
            else:
                terms = list(
                    dict.fromkeys(
                        [*terms, *query_terms({"query": ["t"]}, {"t": ref_doc["title"]}, {})]
                    )
                )
                candidates = [d for d in candidates if d is not ref_doc]
        in_collections = len(candidates)
        conditions = input_conditions(binding, inputs, schema)
        if conditions:
            candidates = [d for d in candidates if group_matches(d, {"AND": conditions})]
        filters = body.get("filters")
        if filters:
            candidates = [d for d in candidates if group_matches(d, filters)]
        after_filters = len(candidates)
        ranked = rank(self.data, candidates, terms)
        min_score_input = binding.get("min_score")
        if min_score_input:
            threshold = input_value(inputs, schema, min_score_input) or 0.0
            ranked = [pair for pair in ranked if pair[0] >= threshold]

        method, limit, offset, cursor_problem = self._execute_paging(
            retriever, binding, inputs, schema, body
        )
        if cursor_problem:
            warnings.append(cursor_problem)
        total = len(ranked)
        window = ranked[offset : offset + limit]
        status = "completed"
        error: str | None = None
        degraded: list[dict[str, Any]] = []
        if execution_fault is not None:
            status, message = execution_fault
            if status == "failed":
                window, error = [], message
            else:
                window = window[: max(1, len(window) // 2)] if window else window
                warnings.append(message)
                degraded.append(
                    {
                        "resource": "vector_index",
                        "id": collection_ids[0],
                        "reason": message,
                        "next_step": "Retry shortly; results were served from a lagging replica.",
                        "stage": "feature_search",
                    }
                )
        drop = [
            field_name
            for input_name, field_name in binding.get("drop_unless", {}).items()
            if not input_value(inputs, schema, input_name)
        ]
        documents = [result_document(doc, score, drop) for score, doc in window]
        has_next = status != "failed" and offset + limit < total
        pagination: dict[str, Any] = {
            "method": method,
            "limit": limit,
            "returned": len(documents),
            "total": total if status != "failed" else 0,
            "cursor": encode_cursor(offset + limit, self._scope(retriever, body))
            if has_next
            else None,
            "has_next": has_next,
        }
        if method == "offset":
            pagination.update(
                page_number=offset // limit + 1,
                page_size=limit,
                total_pages=max(1, -(-total // limit)),
            )
        stats, budget = self._statistics(
            retriever, exec_no, in_collections, after_filters, total, len(documents), status, error
        )
        response: dict[str, Any] = {
            "retriever_id": retriever["retriever_id"],
            "execution_id": f"exec_{exec_no:06d}",
            "status": status,
            "documents": documents,
            "pagination": pagination,
            "stage_statistics": stats,
            "budget": budget,
            "warnings": warnings,
            "degraded": degraded,
            "limits": [],
            "cache_hit": False,
            "consistency_mode": "eventual",
            "completeness": {c: ("partial" if degraded else "complete") for c in collection_ids},
            "optimization_applied": True,
            "optimization_summary": {
                "rules_applied": ["filter_pushdown", "stage_fusion"],
                "stages_before": len(retriever["stages"]),
                "stages_after": len(retriever["stages"]),
            },
        }
        if error is not None:
            response["error"] = error
        if request is not None and getattr(request, "explain", False):
            response["explain_plan"] = self._explain_plan(retriever)
        target = body.get("target_collection_id")
        if isinstance(target, str):
            response["written_to"] = {"collection_id": target, "documents_written": len(documents)}
        return response

    def _scope(self, retriever: Mapping[str, Any], body: Mapping[str, Any]) -> str:
        # A cursor is only valid for the same retriever, inputs and filters.
        fingerprint = _stable_number(
            sorted((body.get("inputs") or {}).items(), key=lambda kv: kv[0]),
            body.get("filters"),
        )
        return f"exec:{retriever['retriever_id']}:{fingerprint}"

    def _execute_paging(
        self,
        retriever: Mapping[str, Any],
        binding: Mapping[str, Any],
        inputs: Mapping[str, Any],
        schema: Mapping[str, Any],
        body: Mapping[str, Any],
    ) -> tuple[str, int, int, str | None]:
        limit = body.get("limit")
        limit_input = binding.get("limit")
        if limit is None and limit_input:
            limit = input_value(inputs, schema, limit_input)
        if limit is None:
            limit = self._default_limit(retriever)
        pagination = body.get("pagination") or {}
        method = pagination.get("method", "cursor")
        offset = 0
        problem = None
        if method == "offset":
            limit = pagination.get("page_size") or limit
            offset = (pagination.get("page_number", 1) - 1) * limit
        else:
            limit = pagination.get("limit") or limit
            cursor = pagination.get("cursor") or pagination.get("scroll_id")
            if cursor:
                decoded = decode_cursor(cursor, self._scope(retriever, body))
                if decoded is None:
                    problem = "Cursor does not belong to this query; starting from the first page."
                else:
                    offset = decoded
        return method, max(1, int(limit)), offset, problem

    @staticmethod
    def _default_limit(retriever: Mapping[str, Any]) -> int:
        for stage in retriever["stages"]:
            final = (stage.get("parameters") or {}).get("final_top_k")
            if isinstance(final, int):
                return min(final, 10)
        return 10

    def _statistics(
        self,
        retriever: Mapping[str, Any],
        exec_no: int,
        candidates: int,
        after_filters: int,
        matched: int,
        returned: int,
        status: str,
        error: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Bulky, realistic ``stage_statistics`` and ``budget`` (deterministic)."""
        stages: dict[str, Any] = {}
        budget_stages = []
        flow = candidates
        total_ms = 0.0
        credits = 0.0
        for index, stage in enumerate(retriever["stages"]):
            name = stage["stage_name"]
            key = name if name not in stages else f"{name}_{index}"
            params = stage.get("parameters") or {}
            duration = round(
                4.0 + _stable_number(retriever["retriever_id"], exec_no, index) % 4000 / 100, 2
            )
            stage_credits = round(0.002 + index * 0.0015, 4)
            if name == "feature_search":
                out = min(matched, after_filters)
                metadata = self._search_metadata(retriever, stage, exec_no, index, candidates, out)
            elif name == "attribute_filter":
                out = after_filters
                metadata = {
                    "conditions": params.get("conditions"),
                    "selectivity": round(after_filters / candidates, 4) if candidates else 0.0,
                    "index_used": "payload_index_" + "_".join(sorted(str(k) for k in params)),
                    "pushed_down": True,
                    "evaluated_documents": candidates,
                }
            else:
                out = returned
                metadata = {
                    "model": params.get("inference_name") or params.get("model") or "default",
                    "batch_size": 32,
                    "pairs_scored": flow,
                    "truncated_inputs": 0,
                    "score_distribution": {"min": 0.01, "p50": 0.42, "p90": 0.81, "max": 0.97},
                    "parameters": params,
                }
            if status == "failed" and index == 0:
                out = 0
            metadata["trace"] = _trace_spans(name, duration, exec_no, index)
            metadata["resources"] = {
                "worker": f"retriever-worker-{_stable_number(exec_no, index) % 12:02d}",
                "region": "us-east-1",
                "memory_mb": 180 + _stable_number(exec_no, "mem", index) % 300,
                "cpu_ms": round(duration * 0.7, 2),
            }
            stage_stats: dict[str, Any] = {
                "input_count": flow,
                "output_count": out,
                "duration_ms": duration,
                "efficiency": round(out / flow, 4) if flow else 0,
                "cache_hit": False,
                "stage_cache_hit": False,
                "llm_calls": 1 if name.startswith("llm") else 0,
                "tokens_used": 850 if name.startswith("llm") else 0,
                "metadata": metadata,
            }
            if status == "failed" and index == 0 and error:
                stage_stats["error"] = error
            stages[key] = stage_stats
            budget_stages.append(
                {
                    "stage": key,
                    "credits": stage_credits,
                    "time_ms": duration,
                    "documents": out,
                    "credit_limit": 1.0,
                    "time_limit_ms": 10000,
                }
            )
            flow = out
            total_ms += duration
            credits += stage_credits
        total_ms = round(total_ms + 3.25, 2)
        credits = round(credits, 4)
        stats = {
            "stages": stages,
            "total_time_ms": total_ms,
            "credits_used": credits,
            "server_service_ms": round(total_ms - 1.5, 2),
        }
        budget = {
            "credits_used": credits,
            "credits_limit": 5.0,
            "credits_remaining": round(5.0 - credits, 4),
            "time_used_ms": total_ms,
            "time_limit_ms": 30000,
            "within_budget": True,
            "stages": budget_stages,
            "breakdown": {
                "embedding": round(credits * 0.4, 4),
                "vector_search": round(credits * 0.35, 4),
                "rerank": round(credits * 0.2, 4),
                "llm": round(credits * 0.05, 4),
            },
        }
        return stats, budget

    def _search_metadata(
        self,
        retriever: Mapping[str, Any],
        stage: Mapping[str, Any],
        exec_no: int,
        index: int,
        candidates: int,
        out: int,
    ) -> dict[str, Any]:
        params = stage.get("parameters") or {}
        searches = []
        for s_index, search in enumerate(params.get("searches") or [{}]):
            shards = [
                {
                    "shard_id": shard,
                    "latency_ms": round(
                        1.0 + _stable_number(exec_no, index, s_index, shard) % 900 / 100, 2
                    ),
                    "candidates": max(0, candidates // 8 + (shard % 3) - 1),
                    "segments_searched": 3 + shard % 4,
                }
                for shard in range(8)
            ]
            searches.append(
                {
                    "feature_uri": search.get("feature_uri"),
                    "top_k": search.get("top_k"),
                    "returned": out,
                    "index": {"type": "hnsw", "ef_search": 128, "m": 16, "quantization": "int8"},
                    "shards": shards,
                    "query_embedding": {
                        "dimensions": 1024,
                        "latency_ms": round(
                            8.0 + _stable_number(exec_no, "embed", s_index) % 1500 / 100, 2
                        ),
                        "cache_hit": False,
                        "normalized": True,
                    },
                }
            )
        return {
            "searches": searches,
            "final_top_k": params.get("final_top_k"),
            "collections": list(retriever.get("collection_ids") or []),
            "namespace_id": self.namespace_id,
            "fusion": retriever.get("fusion") or "none",
            "filters_pushed_down": True,
            "candidates_considered": candidates,
        }

    def _explain_plan(self, retriever: Mapping[str, Any]) -> dict[str, Any]:
        plans = []
        flow = sum(
            1
            for d in self.data.documents
            if d["collection_id"] in (retriever.get("collection_ids") or [])
        )
        total_cost = 0.0
        total_ms = 0.0
        for index, stage in enumerate(retriever["stages"]):
            out = max(1, flow // 2) if stage["stage_name"] != "feature_search" else min(flow, 25)
            cost = round(0.002 + index * 0.0015, 4)
            duration = round(12.0 + index * 9.5, 2)
            plans.append(
                {
                    "stage_index": index,
                    "stage_name": stage["stage_name"],
                    "stage_type": stage.get("stage_type") or "filter",
                    "estimated_input": flow,
                    "estimated_output": out,
                    "estimated_efficiency": round(out / flow, 4) if flow else 0,
                    "estimated_cost_credits": cost,
                    "estimated_duration_ms": duration,
                    "cache_likely": False,
                    "optimization_notes": [],
                    "warnings": [],
                }
            )
            flow = out
            total_cost += cost
            total_ms += duration
        slowest = max(plans, key=lambda p: p["estimated_duration_ms"]) if plans else None
        return {
            "retriever_id": retriever["retriever_id"],
            "retriever_name": retriever["retriever_name"],
            "estimated_cost": {
                "total_credits": round(total_cost, 4),
                "total_duration_ms": round(total_ms, 2),
            },
            "execution_plan": plans,
            "optimization_suggestions": [],
            "total_estimated_stages": len(plans),
            "bottleneck_stages": [slowest["stage_name"]] if slowest else [],
            "optimization_level": "standard",
            "optimization_applied": True,
            "optimization_details": {"rules_applied": ["filter_pushdown"]},
        }
