"""FakeMixpeek: the real ``mixpeek.Mixpeek`` client against the loopback fake."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import mixpeek.models as mm
import pytest
import urllib3
from mixpeek import Mixpeek

from mixpeek_openai.testing import (
    DEFAULT_API_KEY,
    ENDPOINTS,
    ContractViolation,
    FakeMixpeek,
    Fault,
    validate_response,
)

ALL_FIELD_TYPES = {
    "string",
    "number",
    "integer",
    "float",
    "boolean",
    "object",
    "array",
    "date",
    "datetime",
    "text",
    "image",
    "audio",
    "video",
    "pdf",
    "excel",
    "document_reference",
}


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeMixpeek]:
    """One fake for the read-only tests of this module (faults are never queued on it)."""
    with FakeMixpeek() as fake:
        yield fake


@pytest.fixture(scope="module")
def client(shared_fake: FakeMixpeek) -> Mixpeek:
    return shared_fake.client()


def _api_error(call: Callable[[], Any]) -> Any:
    """The HTTP error the mixpeek client raised (its class is not exported, so it is
    recognised by the ``status`` it carries)."""
    try:
        call()
    except Exception as exc:
        if isinstance(getattr(exc, "status", None), int):
            return exc
        raise
    pytest.fail("the call succeeded; an HTTP error was expected")


class _HTTPError(Exception):
    """A non-2xx answer to :func:`_api`, with the status and the decoded body."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.detail = detail


def _api(fake: FakeMixpeek, method: str, path: str, body: Any = None) -> Any:
    """An endpoint the mixpeek client has no public method for, called as the client would
    (same headers, JSON body); the decoded body, or :class:`_HTTPError`."""
    response = _raw(fake, method, path, body)
    data = json.loads(response.data) if response.data else None
    if response.status >= 400:
        raise _HTTPError(response.status, data)
    return data


def _raw(
    fake: FakeMixpeek,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> urllib3.BaseHTTPResponse:
    """A request without the mixpeek client (no retries), to see raw status and headers."""
    sent = {
        "Authorization": f"Bearer {fake.api_key}",
        "X-Namespace": fake.namespace,
        "Content-Type": "application/json",
    }
    sent.update(headers or {})
    return urllib3.request(
        method,
        fake.base_url + path,
        body=json.dumps(body).encode() if body is not None else None,
        headers={k: v for k, v in sent.items() if v},
        retries=False,
        timeout=timeout,
    )


# --- basics ----------------------------------------------------------------------------


def test_base_url_client_and_repr_hold_no_secret(shared_fake: FakeMixpeek) -> None:
    assert shared_fake.base_url.startswith("http://127.0.0.1:")
    assert shared_fake.base_url.endswith("/v1")
    assert shared_fake.port > 0
    client = shared_fake.client(timeout=3.0)
    assert isinstance(client, Mixpeek)
    assert client.base_url == shared_fake.base_url
    assert client.namespace == shared_fake.namespace
    assert DEFAULT_API_KEY not in repr(shared_fake)


def test_get_retriever_by_id_and_by_name(client: Mixpeek) -> None:
    by_id = client.retrievers.get("ret_product_demos")
    by_name = client.retrievers.get("product_demo_search")
    assert by_id == by_name
    assert by_id["input_schema"]["query"]["required"] is True
    mm.RetrieverModelOutput.from_dict(by_id)


def test_list_retrievers_returns_every_sample_retriever(
    client: Mixpeek, shared_fake: FakeMixpeek
) -> None:
    listed = client.retrievers.list()
    assert listed["total"] == len(shared_fake.retriever_ids) >= 4
    assert [r["retriever_id"] for r in listed["results"]] == list(shared_fake.retriever_ids)
    assert {"ret_product_demos", "ret_visual_moments", "ret_document_qa", "ret_audio_clips"} <= set(
        shared_fake.retriever_ids
    )


def _field_types(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], int]]:
    def walk(spec: dict[str, Any], depth: int) -> Iterator[tuple[str, dict[str, Any], int]]:
        yield spec["type"], spec, depth
        if isinstance(spec.get("items"), dict):
            yield from walk(spec["items"], depth + 1)
        for child in (spec.get("properties") or {}).values():
            yield from walk(child, depth + 1)

    for spec in schema.values():
        yield from walk(spec, 0)


def test_sample_namespace_covers_every_field_type(shared_fake: FakeMixpeek) -> None:
    specs = [
        item
        for rid in shared_fake.retriever_ids
        for item in _field_types(shared_fake.retriever(rid)["input_schema"])
    ]
    assert {kind for kind, _, _ in specs} == ALL_FIELD_TYPES
    assert any(spec.get("enum") for _, spec, _ in specs)
    assert any("default" in spec for _, spec, _ in specs)
    assert any(spec.get("required") for _, spec, _ in specs)
    assert all(spec.get("description") for _, spec, depth in specs if depth == 0)
    assert any(spec.get("examples") for _, spec, _ in specs)
    # object -> array -> object -> array: document_qa's scope.sections[].pages
    scope = shared_fake.retriever("ret_document_qa")["input_schema"]["scope"]
    sections = scope["properties"]["sections"]
    assert sections["type"] == "array" and sections["items"]["type"] == "object"
    assert sections["items"]["properties"]["pages"]["type"] == "array"
    docs = shared_fake.documents
    assert len(docs) >= 60
    assert 2 <= len({d["collection_id"] for d in docs}) <= 3
    assert any(len(d.get("transcript", "")) > 1000 for d in docs)


# --- execute -----------------------------------------------------------------------------


def test_execute_ranks_deterministically(client: Mixpeek) -> None:
    first = client.retrievers.execute("ret_catalog", inputs={"query": "security audit"}, limit=8)
    second = client.retrievers.execute("ret_catalog", inputs={"query": "security audit"}, limit=8)
    assert first["status"] == "completed"
    assert first["execution_id"] != second["execution_id"]
    docs = first["documents"]
    assert docs == second["documents"]
    assert 0 < len(docs) <= 8
    keys = [(-d["score"], d["document_id"]) for d in docs]
    assert keys == sorted(keys)
    for doc in docs:
        assert {"document_id", "collection_id", "score", "metadata", "title", "url"} <= set(doc)
        assert 0 < doc["score"] <= 1
    assert "security" in docs[0]["title"].lower()
    stats = first["stage_statistics"]
    assert stats["stages"] and first["budget"]["credits_used"] > 0
    assert len(json.dumps(stats)) + len(json.dumps(first["budget"])) > 2000


def test_legacy_results_alias_only_on_request(fake_mixpeek: FakeMixpeek) -> None:
    body = {"inputs": {"query": "crm"}, "limit": 2}
    plain = json.loads(_raw(fake_mixpeek, "POST", "/retrievers/ret_catalog/execute", body).data)
    assert "results" not in plain
    path = "/retrievers/ret_catalog/execute?include_legacy_results=true"
    legacy = json.loads(_raw(fake_mixpeek, "POST", path, body).data)
    assert legacy["results"] == legacy["documents"]
    assert fake_mixpeek.requests[-1].query == {"include_legacy_results": ("true",)}


def test_execute_without_query_terms_keeps_every_document(
    client: Mixpeek, shared_fake: FakeMixpeek
) -> None:
    out = client.retrievers.execute("ret_audio_clips", inputs={"explicit": True}, limit=100)
    podcasts = [d for d in shared_fake.documents if d["collection_id"] == "col_podcasts"]
    assert out["pagination"]["total"] == len(podcasts)
    assert {d["score"] for d in out["documents"]} == {0.0}


@pytest.mark.parametrize(
    ("condition", "check"),
    [
        (
            {"field": "category", "operator": "eq", "value": "security"},
            lambda d: d["category"] == "security",
        ),
        (
            {"field": "category", "operator": "ne", "value": "security"},
            lambda d: d["category"] != "security",
        ),
        (
            {"field": "metadata.category", "operator": "in", "value": ["crm", "mobile"]},
            lambda d: d["category"] in ("crm", "mobile"),
        ),
        (
            {"field": "category", "operator": "nin", "value": ["crm", "mobile"]},
            lambda d: d["category"] not in ("crm", "mobile"),
        ),
        ({"field": "duration_s", "operator": "gt", "value": 900}, lambda d: d["duration_s"] > 900),
        (
            {"field": "duration_s", "operator": "gte", "value": 900},
            lambda d: d["duration_s"] >= 900,
        ),
        ({"field": "duration_s", "operator": "lt", "value": 600}, lambda d: d["duration_s"] < 600),
        (
            {"field": "duration_s", "operator": "lte", "value": 600},
            lambda d: d["duration_s"] <= 600,
        ),
        (
            {"field": "published_at", "operator": "gte", "value": "2025-01-01"},
            lambda d: d["published_at"] >= "2025-01-01",
        ),
        (
            {"field": "tags", "operator": "contains", "value": "tutorial"},
            lambda d: "tutorial" in d["tags"],
        ),
        (
            {"field": "title", "operator": "contains", "value": "DEEP DIVE"},
            lambda d: "deep dive" in d["title"].lower(),
        ),
        ({"field": "transcript", "operator": "exists", "value": True}, lambda d: "transcript" in d),
        (
            {"field": "transcript", "operator": "exists", "value": False},
            lambda d: "transcript" not in d,
        ),
    ],
)
def test_execute_filters_by_operator(
    client: Mixpeek, condition: dict[str, Any], check: Callable[[dict[str, Any]], bool]
) -> None:
    out = client.retrievers.execute(
        "ret_product_demos",
        inputs={"query": "demo walkthrough setup", "include_transcript": True},
        filters={"AND": [condition]},
        limit=100,
    )
    docs = out["documents"]
    assert docs, condition
    assert all(check(d) for d in docs)


def test_execute_filters_and_or_not_groups(client: Mixpeek) -> None:
    out = client.retrievers.execute(
        "ret_catalog",
        inputs={"query": "pipeline dashboards sso podcast whitepaper"},
        filters={
            "AND": [
                {
                    "OR": [
                        {"field": "modality", "operator": "eq", "value": "audio"},
                        {"field": "file_type", "operator": "eq", "value": "pdf"},
                    ]
                },
                {"NOT": [{"field": "language", "operator": "eq", "value": "de"}]},
            ]
        },
        limit=100,
    )
    docs = out["documents"]
    assert docs
    assert all(d["modality"] == "audio" or d.get("file_type") == "pdf" for d in docs)
    assert all(d["language"] != "de" for d in docs)
    assert {d["collection_id"] for d in docs} == {"col_podcasts", "col_articles"}


def test_inputs_steer_the_search(client: Mixpeek) -> None:
    out = client.retrievers.execute(
        "ret_product_demos",
        inputs={
            "query": "deep dive",
            "category": "analytics",
            "max_duration": 1500.0,
            "published_after": "2023-06-01",
            "tags": ["dashboards", "reports", "metrics", "charts"],
        },
        limit=50,
    )
    docs = out["documents"]
    assert docs
    for doc in docs:
        assert doc["category"] == "analytics"
        assert doc["duration_s"] <= 1500.0
        assert doc["published_at"] >= "2023-06-01"
        assert "transcript" not in doc  # include_transcript defaults to false
    with_text = client.retrievers.execute(
        "ret_product_demos", inputs={"query": "deep dive", "include_transcript": True}, limit=50
    )
    assert any("transcript" in d for d in with_text["documents"])
    podcasts = client.retrievers.execute(
        "ret_audio_clips",
        inputs={"query": "roadmap", "speakers": [{"name": "Omar Haddad", "role": "host"}]},
        limit=50,
    )["documents"]
    assert podcasts
    assert all(
        "Omar Haddad" in [s["name"] for s in d["speakers"]] and not d["explicit"] for d in podcasts
    )


def test_media_and_reference_inputs_become_query_terms(client: Mixpeek) -> None:
    out = client.retrievers.execute(
        "ret_visual_moments",
        inputs={
            "image": "https://cdn.example.com/frames/beacon-dashboards.png",
            "region": {"x": 0.1, "y": 0.2},
            "captured_after": "2023-01-01T00:00:00Z",
        },
        limit=3,
    )
    assert "beacon" in out["documents"][0]["title"].lower()
    related = client.retrievers.execute(
        "ret_document_qa",
        inputs={
            "question": "whitepaper",
            "reference": {"collection_id": "col_articles", "document_id": "doc_art_002"},
        },
    )
    ids = [d["document_id"] for d in related["documents"]]
    assert ids and "doc_art_002" not in ids


def test_cursor_pagination_walks_every_result(client: Mixpeek) -> None:
    inputs = {"query": "podcast roadmap security dashboards"}
    full = client.retrievers.execute("ret_catalog", inputs=inputs, limit=500)
    total = full["pagination"]["total"]
    assert total > 6
    seen: list[str] = []
    cursor = None
    while True:
        pagination: dict[str, Any] = {"method": "cursor", "limit": 4}
        if cursor:
            pagination["cursor"] = cursor
        page = client.retrievers.execute("ret_catalog", inputs=inputs, pagination=pagination)
        seen.extend(d["document_id"] for d in page["documents"])
        assert page["pagination"]["returned"] == len(page["documents"])
        assert page["pagination"]["total"] == total
        cursor = page["pagination"]["cursor"]
        if not page["pagination"]["has_next"]:
            assert cursor is None
            break
    assert seen == [d["document_id"] for d in full["documents"]]


def test_offset_pagination(client: Mixpeek) -> None:
    inputs = {"query": "podcast roadmap security dashboards"}
    full = client.retrievers.execute("ret_catalog", inputs=inputs, limit=500)["documents"]
    page = client.retrievers.execute(
        "ret_catalog",
        inputs=inputs,
        pagination={"method": "offset", "page_size": 3, "page_number": 2},
    )
    assert [d["document_id"] for d in page["documents"]] == [d["document_id"] for d in full[3:6]]
    assert page["pagination"]["method"] == "offset"
    assert page["pagination"]["page_number"] == 2


def test_limit_comes_from_request_then_input_then_retriever(client: Mixpeek) -> None:
    inputs = {"query": "demo"}
    assert len(client.retrievers.execute("ret_catalog", inputs=inputs)["documents"]) == 5  # top_k
    assert (
        len(client.retrievers.execute("ret_catalog", inputs={**inputs, "top_k": 2})["documents"])
        == 2
    )
    assert len(client.retrievers.execute("ret_catalog", inputs=inputs, limit=7)["documents"]) == 7


def test_execute_batch_and_its_limit(client: Mixpeek) -> None:
    out = client.retrievers.execute_batch(
        "ret_catalog", queries=[{"query": "dashboards"}, {"inputs": {"query": "podcast"}}]
    )
    assert out["total_queries"] == 2 and out["status"] == "completed"
    assert [r["query_index"] for r in out["results"]] == [0, 1]
    assert all(r["documents"] for r in out["results"])
    error = _api_error(
        lambda: client.retrievers.execute_batch(
            "ret_catalog", queries=[{"query": f"q{i}"} for i in range(17)]
        )
    )
    assert error.status == 422
    assert error.detail["error"]["details"]["limits"]["max_queries"] == 16


def test_explain_returns_a_plan(client: Mixpeek, shared_fake: FakeMixpeek) -> None:
    out = _api(
        shared_fake,
        "POST",
        "/retrievers/ret_product_demos/execute/explain",
        body={"inputs": {"query": "sso"}},
    )
    assert out["retriever_id"] == "ret_product_demos"
    assert out["total_estimated_stages"] == len(out["execution_plan"]) == 3


def test_exploration_endpoints(client: Mixpeek, shared_fake: FakeMixpeek) -> None:
    collections = client.collections.list()
    assert collections["total_count"] == 3
    assert client.collections.get("help-center-articles")["collection_id"] == "col_articles"
    taxonomies = _api(shared_fake, "POST", "/taxonomies/list")
    assert {t["taxonomy_id"] for t in taxonomies["results"]} == {
        "tax_product_areas",
        "tax_doc_topics",
    }
    assert (
        _api(shared_fake, "GET", "/clusters/demo-topic-clusters")["cluster_id"] == "clu_demo_topics"
    )
    objects = client.buckets.list_objects("bkt_media", page_size=5)
    assert len(objects["results"]) == 5 and objects["pagination"]["next_cursor"]
    following = client.buckets.list_objects(
        "bkt_media", page_size=5, cursor=objects["pagination"]["next_cursor"]
    )
    assert following["results"][0]["object_id"] != objects["results"][0]["object_id"]
    docs = client.documents.list("col_podcasts", page_size=3)
    assert len(docs["results"]) == 3 and docs["total_documents"] == 14
    assert client.documents.get("col_podcasts", "doc_pod_001")["title"].startswith("Ep. 1")


# --- auth, namespace, routing ------------------------------------------------------------


def test_missing_or_wrong_api_key_is_401_without_echoing_it(shared_fake: FakeMixpeek) -> None:
    missing = _raw(shared_fake, "GET", "/retrievers/ret_catalog", headers={"Authorization": ""})
    assert missing.status == 401
    wrong_client = shared_fake.client(api_key="mxp-not-the-key")
    error = _api_error(lambda: wrong_client.retrievers.get("ret_catalog"))
    assert error.status == 401
    assert error.detail["error"]["type"] == "AuthenticationError"
    assert "mxp-not-the-key" not in json.dumps(error.detail)
    mm.ErrorResponse.from_dict(error.detail)


def test_namespace_header_is_checked(shared_fake: FakeMixpeek) -> None:
    other = shared_fake.client(namespace="ns_other")
    error = _api_error(lambda: other.retrievers.list())
    assert error.status == 403
    missing = _raw(shared_fake, "POST", "/retrievers/list", headers={"X-Namespace": ""})
    assert missing.status == 400
    assert json.loads(missing.data)["error"]["code"] == "namespace_required"


def test_unknown_paths_and_ids_get_the_api_404_shape(
    client: Mixpeek, shared_fake: FakeMixpeek
) -> None:
    for call in (
        lambda: _api(shared_fake, "GET", "/no/such/thing"),
        lambda: client.retrievers.get("ret_missing"),
        lambda: client.retrievers.execute("ret_missing", inputs={}),
        lambda: client.collections.get("col_missing"),
    ):
        error = _api_error(call)
        assert error.status == 404
        assert error.detail["success"] is False
        assert error.detail["error"]["type"] == "NotFoundError"
        assert isinstance(error.detail["error"]["details"], dict)
        validate_response("error", error.detail, status=404)
    assert _raw(shared_fake, "DELETE", "/retrievers/list").status == 405


# --- contract validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"inputs": {"query": "x"}, "settings": {}}, ["settings"]),
        ({"inputs": {"query": "x"}, "limit": "5"}, ["limit"]),
        ({"inputs": {"query": "x"}, "limit": 0}, ["limit"]),
        (
            {"inputs": {"query": "x"}, "pagination": {"method": "cursor", "limt": 3}},
            ["pagination", "limt"],
        ),
        ({"inputs": {"query": "x", "bogus": 1}}, ["inputs", "bogus"]),
        ({"inputs": {}}, ["inputs", "query"]),
        ({"inputs": {"query": 42}}, ["inputs", "query"]),
        ({"inputs": {"query": "x", "category": "toys"}}, ["inputs", "category"]),
        ({"inputs": {"query": "x", "max_duration": "long"}}, ["inputs", "max_duration"]),
        ({"inputs": {"query": "x", "top_k": 2.5}}, ["inputs", "top_k"]),
        ({"inputs": {"query": "x", "include_transcript": "yes"}}, ["inputs", "include_transcript"]),
        ({"inputs": {"query": "x", "published_after": "yesterday"}}, ["inputs", "published_after"]),
        ({"inputs": {"query": "x", "tags": "sso"}}, ["inputs", "tags"]),
        (
            {
                "inputs": {"query": "x"},
                "filters": {"AND": [{"field": "a", "operator": "like", "value": 1}]},
            },
            ["filters", "AND", 0, "operator"],
        ),
        (
            {
                "inputs": {"query": "x"},
                "filters": {"AND": [{"field": "a", "operator": "in", "value": 1}]},
            },
            ["filters", "AND", 0, "value"],
        ),
        ({"inputs": {"query": "x"}, "filters": {"XOR": []}}, ["filters", "XOR"]),
    ],
)
def test_bad_execute_requests_are_refused_with_422(
    client: Mixpeek, body: dict[str, Any], loc: list[Any], shared_fake: FakeMixpeek
) -> None:
    error = _api_error(
        lambda: _api(shared_fake, "POST", "/retrievers/ret_product_demos/execute", body=body)
    )
    assert error.status == 422
    assert error.detail["error"]["type"] == "ValidationError"
    assert loc in [e["loc"] for e in error.detail["error"]["details"]["errors"]]
    validate_response("error", error.detail, status=422)


@pytest.mark.parametrize(
    ("inputs", "loc"),
    [
        ({"image": "u", "region": {"x": 0.1}}, ["inputs", "region", "y"]),
        ({"image": "u", "region": {"x": 0.1, "y": 0.1, "z": 1}}, ["inputs", "region", "z"]),
        ({"image": "u", "captured_after": "2024-13-45T00:00:00Z"}, ["inputs", "captured_after"]),
        ({"image": "u", "frame_stride": 7}, ["inputs", "frame_stride"]),
        ({"image": ""}, ["inputs", "image"]),
    ],
)
def test_nested_and_typed_inputs_are_checked(
    client: Mixpeek, inputs: dict[str, Any], loc: list[Any]
) -> None:
    error = _api_error(lambda: client.retrievers.execute("ret_visual_moments", inputs=inputs))
    assert error.status == 422
    assert loc in [e["loc"] for e in error.detail["error"]["details"]["errors"]]


def test_deeply_nested_inputs_are_checked(client: Mixpeek) -> None:
    good = {
        "question": "pricing",
        "scope": {"sections": [{"heading": "FAQ", "pages": [1, 2]}], "language": "en"},
        "reference": {"collection_id": "col_articles", "document_id": "doc_art_003"},
        "document": "https://docs.example.com/pdf/x.pdf",
        "spreadsheet": "https://docs.example.com/xlsx/y.xlsx",
    }
    assert client.retrievers.execute("ret_document_qa", inputs=good)["status"] == "completed"
    bad_page = {**good, "scope": {"sections": [{"heading": "FAQ", "pages": ["one"]}]}}
    error = _api_error(lambda: client.retrievers.execute("ret_document_qa", inputs=bad_page))
    assert ["inputs", "scope", "sections", 0, "pages", 0] in [
        e["loc"] for e in error.detail["error"]["details"]["errors"]
    ]
    bad_ref = {**good, "reference": {"document_id": "doc_art_003"}}
    error = _api_error(lambda: client.retrievers.execute("ret_document_qa", inputs=bad_ref))
    assert error.status == 422


def test_batch_and_list_bodies_are_checked(client: Mixpeek, shared_fake: FakeMixpeek) -> None:
    error = _api_error(
        lambda: _api(
            shared_fake,
            "POST",
            "/retrievers/ret_catalog/execute/batch",
            body={"queries": [{"inputs": {"query": "a"}, "extra": 1}]},
        )
    )
    assert ["queries", 0, "extra"] in [e["loc"] for e in error.detail["error"]["details"]["errors"]]
    error = _api_error(lambda: _api(shared_fake, "POST", "/collections/list", body={"serach": "x"}))
    assert error.status == 422


def _call_every_endpoint(fake: FakeMixpeek) -> dict[str, Any]:
    client = fake.client()
    return {
        "get_retriever": client.retrievers.get("ret_visual_moments"),
        "list_retrievers": client.retrievers.list(),
        "execute": client.retrievers.execute(
            "ret_product_demos", inputs={"query": "sso"}, explain=True, limit=3
        ),
        "execute_batch": client.retrievers.execute_batch("ret_catalog", queries=[{"query": "crm"}]),
        "explain": _api(
            fake, "POST", "/retrievers/ret_audio_clips/execute/explain", body={"inputs": {}}
        ),
        "list_collections": client.collections.list(),
        "get_collection": client.collections.get("col_product_demos"),
        "list_taxonomies": _api(fake, "POST", "/taxonomies/list", body={"search": "doc"}),
        "get_taxonomy": _api(fake, "GET", "/taxonomies/tax_product_areas"),
        "list_clusters": _api(fake, "POST", "/clusters/list"),
        "get_cluster": _api(fake, "GET", "/clusters/clu_podcast_themes"),
        "list_objects": client.buckets.list_objects("bkt_docs"),
        "get_object": _api(fake, "GET", "/buckets/bkt_docs/objects/obj_art_001"),
        "list_documents": client.documents.list("col_articles", page_size=50),
        "get_document": client.documents.get("col_articles", "doc_art_002"),
    }


def test_every_response_validates_against_the_generated_models(shared_fake: FakeMixpeek) -> None:
    with FakeMixpeek(validate_responses=True) as checking:
        responses = _call_every_endpoint(checking)
        assert {r.status for r in checking.requests} == {200}
    assert set(responses) == set(ENDPOINTS)
    for endpoint, body in responses.items():
        validate_response(endpoint, body)
    for rid in shared_fake.retriever_ids:
        mm.RetrieverModelOutput.from_dict(shared_fake.retriever(rid))
    errors = [
        _raw(shared_fake, "GET", "/retrievers/ret_catalog", headers={"X-Namespace": ""}),
        _raw(shared_fake, "GET", "/retrievers/ret_catalog", headers={"Authorization": "Bearer no"}),
        _raw(shared_fake, "GET", "/retrievers/ret_catalog", headers={"X-Namespace": "ns_x"}),
        _raw(shared_fake, "GET", "/nope"),
        _raw(shared_fake, "PUT", "/retrievers/list"),
        _raw(shared_fake, "POST", "/retrievers/ret_catalog/execute", {"inputs": {}}),
    ]
    assert [e.status for e in errors] == [400, 401, 403, 404, 405, 422]
    for error in errors:
        validate_response("error", json.loads(error.data), status=error.status)


def test_contract_validation_catches_a_bad_response(fake_mixpeek: FakeMixpeek) -> None:
    bad = {"retriever_id": "ret_x", "retriever_name": "x", "stages": [], "fusion": None}
    fake_mixpeek.inject("get_retriever", Fault.response(200, bad))
    served = fake_mixpeek.client().retrievers.get("ret_catalog")
    with pytest.raises(ContractViolation) as info:
        validate_response("get_retriever", served)
    assert ["collection_identifiers"] in [e["loc"] for e in info.value.errors]
    assert "RetrieverModelOutput" in str(info.value)
    with pytest.raises(ContractViolation):
        fake_mixpeek.add_retriever(
            {"retriever_name": "broken", "input_schema": {"q": {"type": "blob"}}}
        )


def test_add_retriever_serves_a_custom_schema(fake_mixpeek: FakeMixpeek) -> None:
    rid = fake_mixpeek.add_retriever(
        {
            "retriever_name": "kb",
            "input_schema": {
                "q": {"type": "string", "required": True},
                "category": {"type": "string", "enum": ["security", "crm"]},
            },
        }
    )
    assert rid == "ret_kb" and rid in fake_mixpeek.retriever_ids
    client = fake_mixpeek.client()
    out = client.retrievers.execute(rid, inputs={"q": "audit", "category": "security"})
    assert out["documents"] and all(d["category"] == "security" for d in out["documents"])
    fake_mixpeek.remove_retriever(rid)
    assert _api_error(lambda: client.retrievers.get(rid)).status == 404


def test_add_retriever_takes_a_model_dump_and_refuses_what_is_not_json(
    fake_mixpeek: FakeMixpeek,
) -> None:
    # model_dump() holds datetimes: served as the API writes them (ISO text).
    dumped = mm.RetrieverModelOutput.model_validate(fake_mixpeek.retriever("ret_catalog"))
    definition = {**dumped.model_dump(), "retriever_id": "ret_copy", "retriever_name": "copy"}
    assert fake_mixpeek.add_retriever(definition) == "ret_copy"
    client = fake_mixpeek.client()
    served = client.retrievers.get("ret_copy")
    assert isinstance(served["created_at"], str)
    assert "ret_copy" in [r["retriever_id"] for r in client.retrievers.list()["results"]]
    with pytest.raises(ValueError, match="must be JSON data"):
        fake_mixpeek.add_retriever({"retriever_name": "odd", "metadata": {"x": object()}})
    with pytest.raises(ContractViolation):
        fake_mixpeek.add_retriever({"retriever_name": "listed", "input_schema": ["q"]})
    with pytest.raises(ValueError, match="JSON value"):
        Fault.response(200, {"documents": object()})
    fake_mixpeek.remove_retriever("ret_copy")


# --- faults ------------------------------------------------------------------------------


def test_status_fault_with_retryable_false_is_not_retried(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("execute", Fault.status(503, retryable=False, retry_after_seconds=7))
    error = _api_error(
        lambda: fake_mixpeek.client().retrievers.execute("ret_catalog", inputs={"query": "x"})
    )
    assert error.status == 503
    assert error.detail["error"]["details"] == {"retry_after_seconds": 7, "retryable": False}
    assert error.retry_after == 7
    assert [r.status for r in fake_mixpeek.requests_for("execute")] == [503]


def test_429_with_retry_after_zero_is_retried_by_the_client(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("execute", Fault.status(429, retry_after=0), times=2)
    out = fake_mixpeek.client().retrievers.execute("ret_catalog", inputs={"query": "crm"})
    assert out["status"] == "completed"
    records = fake_mixpeek.requests_for("execute")
    assert [(r.status, r.fault) for r in records] == [(429, "status"), (429, "status"), (200, None)]


def test_retry_after_header_and_custom_body(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("*", Fault.status(503, retry_after=1.5, message="writer booting"))
    fake_mixpeek.inject("list_retrievers", Fault.response(418, "teapot", {"X-Why": "test"}))
    first = _raw(fake_mixpeek, "GET", "/retrievers/ret_catalog")
    assert first.status == 503 and first.headers["Retry-After"] == "1.5"
    assert json.loads(first.data)["error"]["message"] == "writer booting"
    second = _raw(fake_mixpeek, "POST", "/retrievers/list")
    assert (second.status, second.data, second.headers["X-Why"]) == (418, b"teapot", "test")
    assert _raw(fake_mixpeek, "POST", "/retrievers/list").status == 200


def test_reset_drops_the_connection(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("execute", Fault.reset())
    with pytest.raises(urllib3.exceptions.ProtocolError):
        fake_mixpeek.client().retrievers.execute("ret_catalog", inputs={"query": "x"})
    assert fake_mixpeek.wait_until_idle()
    (record,) = fake_mixpeek.requests_for("execute")
    assert record.status is None and record.fault == "reset" and not record.in_flight


def test_wait_until_idle_waits_for_a_request_still_being_read(
    fake_mixpeek: FakeMixpeek,
) -> None:
    body = b'{"inputs": {"query": "x"}}'
    head = (
        f"POST /v1/retrievers/ret_catalog/execute HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nX-Namespace: {fake_mixpeek.namespace}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = fake_mixpeek.base_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as idle:
        # An open connection with nothing sent on it is idle.
        assert fake_mixpeek.wait_until_idle(timeout=2)
        with socket.create_connection((host, int(port))) as client:
            client.sendall(head)
            # Half a request: the server is reading it, so it is not idle.
            assert not fake_mixpeek.wait_until_idle(timeout=0.1)
            # The client writes the rest and gives up at once, before any answer.
            client.sendall(body)
        assert fake_mixpeek.wait_until_idle(timeout=5)
        (record,) = fake_mixpeek.requests_for("execute")
        assert record.body == {"inputs": {"query": "x"}} and not record.in_flight
        assert idle.fileno() >= 0


def test_hang_makes_the_client_time_out(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("execute", Fault.hang(60))
    client = fake_mixpeek.client(timeout=0.2)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.retrievers.execute("ret_catalog", inputs={"query": "x"})
    assert fake_mixpeek.requests_for("execute")[0].fault == "hang"
    assert fake_mixpeek.wait_until_idle()
    (record,) = fake_mixpeek.requests_for("execute")
    assert record.status is None and not record.in_flight


def test_urllib3_retries_a_get_after_a_hang(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("get_retriever", Fault.hang(60))
    assert fake_mixpeek.client(timeout=0.2).retrievers.get("ret_catalog")
    assert fake_mixpeek.wait_until_idle()
    statuses = [(r.fault, r.status) for r in fake_mixpeek.requests_for("get_retriever")]
    assert statuses == [("hang", None), (None, 200)]


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.malformed_json(), lambda c: pytest.raises(ValueError)),
        (Fault.empty_body(), None),
    ],
)
def test_malformed_and_empty_bodies(
    fake_mixpeek: FakeMixpeek, fault: Fault, check: Callable[[Any], Any] | None
) -> None:
    fake_mixpeek.inject("list_retrievers", fault)
    client = fake_mixpeek.client()
    if check is None:
        assert client.retrievers.list() is None
    else:
        with check(client):
            client.retrievers.list()
    assert fake_mixpeek.requests[-1].fault == fault.kind


def test_huge_body_is_valid_json(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.inject("execute", Fault.huge_body(2_000_000))
    response = _raw(
        fake_mixpeek, "POST", "/retrievers/ret_catalog/execute", {"inputs": {"query": "x"}}
    )
    assert len(response.data) >= 2_000_000
    validate_response("execute", json.loads(response.data))


def test_failed_and_degraded_executions(fake_mixpeek: FakeMixpeek) -> None:
    client = fake_mixpeek.client()
    fake_mixpeek.inject("execute", Fault.failed_execution("index unavailable"))
    fake_mixpeek.inject("execute", Fault.degraded_execution("replica lagging"))
    failed = client.retrievers.execute("ret_catalog", inputs={"query": "dashboards"})
    degraded = client.retrievers.execute("ret_catalog", inputs={"query": "dashboards"})
    normal = client.retrievers.execute("ret_catalog", inputs={"query": "dashboards"})
    assert (failed["status"], failed["error"], failed["documents"]) == (
        "failed",
        "index unavailable",
        [],
    )
    assert (
        degraded["status"] == "degraded" and degraded["degraded"][0]["reason"] == "replica lagging"
    )
    assert "replica lagging" in degraded["warnings"]
    assert 0 < len(degraded["documents"]) < len(normal["documents"])
    for body in (failed, degraded, normal):
        validate_response("execute", body)
    fake_mixpeek.inject("execute_batch", Fault.failed_execution())
    batch = client.retrievers.execute_batch("ret_catalog", queries=[{"query": "a"}, {"query": "b"}])
    assert batch["status"] == "failed" and batch["failed"] == 2
    validate_response("execute_batch", batch)


def test_delay_repeat_and_clear(fake_mixpeek: FakeMixpeek) -> None:
    client = fake_mixpeek.client()
    fake_mixpeek.inject("get_retriever", Fault.delay(0.01), times=None)
    for _ in range(3):
        client.retrievers.get("ret_catalog")
    fake_mixpeek.clear_faults()
    client.retrievers.get("ret_catalog")
    assert [r.fault for r in fake_mixpeek.requests] == ["delay", "delay", "delay", None]
    with pytest.raises(ValueError, match="Unknown endpoint"):
        fake_mixpeek.inject("exectue", Fault.reset())
    with pytest.raises(ValueError):
        fake_mixpeek.inject("execute", Fault.reset(), times=0)


# --- records and concurrency -------------------------------------------------------------


def test_records_hold_no_secrets(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.client().retrievers.execute("ret_catalog", inputs={"query": "crm"}, limit=2)
    (record,) = fake_mixpeek.requests
    assert (record.method, record.path, record.endpoint) == (
        "POST",
        "/v1/retrievers/ret_catalog/execute",
        "execute",
    )
    assert record.retriever_id == "ret_catalog"
    assert record.body == {"inputs": {"query": "crm"}, "limit": 2}
    assert record.headers["Authorization"] == "REDACTED"
    assert record.headers["X-Namespace"] == fake_mixpeek.namespace
    assert record.status == 200
    assert record.finished_at is not None and record.finished_at >= record.started_at
    assert fake_mixpeek.api_key not in repr(fake_mixpeek.requests)
    fake_mixpeek.clear_requests()
    assert fake_mixpeek.requests == []


def test_overlap_is_measured_from_records(fake_mixpeek: FakeMixpeek) -> None:
    fake_mixpeek.pause("execute")
    errors: list[BaseException] = []

    def run(query: str) -> None:
        try:
            fake_mixpeek.client().retrievers.execute("ret_catalog", inputs={"query": query})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"q{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    assert fake_mixpeek.wait_for_requests(4, "execute", in_flight=True, timeout=10)
    assert fake_mixpeek.in_flight("execute") == 4
    fake_mixpeek.resume()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert fake_mixpeek.max_overlap("execute") == 4
    assert fake_mixpeek.max_concurrency() == 4

    fake_mixpeek.clear_requests()
    client = fake_mixpeek.client()
    for _ in range(3):
        client.retrievers.get("ret_catalog")
    assert fake_mixpeek.max_overlap("get_retriever") == 1
    assert fake_mixpeek.max_overlap("execute") == 0


def test_close_ends_every_thread_even_with_hung_requests() -> None:
    baseline = threading.active_count()
    fake = FakeMixpeek().start()
    fake.set_latency(30, endpoint="execute")
    fake.inject("get_retriever", Fault.hang(60))
    outcomes: list[str] = []

    def call(fn: Callable[[], Any]) -> None:
        try:
            fn()
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    client = fake.client(timeout=60)
    threads = [
        threading.Thread(target=call, args=(lambda: client.retrievers.get("ret_catalog"),)),
        threading.Thread(
            target=call,
            args=(lambda: fake.client().retrievers.execute("ret_catalog", inputs={"query": "x"}),),
        ),
    ]
    for thread in threads:
        thread.start()
    assert fake.wait_for_requests(2, in_flight=True, timeout=10)
    fake.close()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(outcomes) == 2 and "ok" not in outcomes
    assert threading.active_count() == baseline
    fake.close()  # idempotent
    with pytest.raises(RuntimeError):
        fake.start()


def test_fixture_from_the_plugin(fake_mixpeek: FakeMixpeek) -> None:
    assert fake_mixpeek.client().retrievers.get("ret_catalog")["retriever_name"] == "catalog_search"
