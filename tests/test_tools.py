"""MixpeekTools against FakeMixpeek: fetching, caching, naming, requests, actions."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pydantic
import pytest
import urllib3
from agents.strict_schema import ensure_strict_json_schema
from pydantic import BaseModel, ConfigDict, Field

from mixpeek_openai.errors import (
    ConfigurationError,
    MixpeekSchemaWarning,
    RetrieverNotFoundError,
    SchemaMismatchError,
    UnknownActionError,
)
from mixpeek_openai.schema import DocumentReference
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import (
    ACTIONS,
    NAMESPACE_ACTIONS,
    MixpeekTools,
    RetrieverCache,
    ToolDefinition,
)

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeMixpeek]:
    """One fake for the read-only tests of this module (fast)."""
    with FakeMixpeek() as fake:
        yield fake


@pytest.fixture
def fake(shared_fake: FakeMixpeek) -> Iterator[FakeMixpeek]:
    shared_fake.clear_requests()
    shared_fake.clear_faults()
    shared_fake.set_latency(0)
    yield shared_fake


@pytest.fixture
def cache() -> RetrieverCache:
    return RetrieverCache()


def assert_strict_ok(schema: dict[str, Any]) -> None:
    assert ensure_strict_json_schema(copy.deepcopy(schema)) == schema
    text = json.dumps(schema)
    assert '"default"' not in text and '"title"' not in text


def gets(fake: FakeMixpeek) -> int:
    return len(fake.requests_for("get_retriever"))


def sample_tools(fake: FakeMixpeek, cache: RetrieverCache, **kw: Any) -> MixpeekTools:
    return MixpeekTools.from_retrievers(fake.client(), fake.retriever_ids, cache=cache, **kw)


# --- building ---------------------------------------------------------------------------


def test_sample_namespace_tools_are_strict_valid_in_both_formats(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache, actions=ACTIONS)
    chat = tools.chat_tools()
    responses = tools.responses_tools()
    assert len(chat) == len(responses) == len(tools.definitions)
    assert len(fake.retriever_ids) >= 4
    for c, r in zip(chat, responses, strict=True):
        assert c["type"] == r["type"] == "function"
        fn = c["function"]
        assert fn["strict"] is r["strict"] is True
        assert fn["name"] == r["name"] and NAME_RE.match(fn["name"])
        assert fn["parameters"] == r["parameters"]
        assert fn["description"] == r["description"] and 0 < len(fn["description"]) <= 1024
        assert_strict_ok(fn["parameters"])
    assert len({c["function"]["name"] for c in chat}) == len(chat)
    loose = tools.chat_tools(strict=False)
    assert all(t["function"]["strict"] is False for t in loose)


def test_search_tool_names_and_descriptions_come_from_the_retriever(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache)
    by_id = {t.retriever_id: t for t in tools.definitions}
    demo = by_id["ret_product_demos"]
    assert demo.name == "search_product_demo"  # from retriever_name "product_demo_search"
    assert demo.kind == "search"
    assert demo.description.startswith(fake.retriever("ret_product_demos")["description"])
    assert "product_demo_search" in demo.description


def test_fetching_is_concurrent_cached_and_refreshable(
    fake_mixpeek: FakeMixpeek, caplog: pytest.LogCaptureFixture
) -> None:
    fake = fake_mixpeek
    ids = [
        fake.add_retriever(
            {
                "retriever_name": f"bulk_{i}",
                "description": f"Bulk retriever {i}",
                "input_schema": {"query": {"type": "text", "required": True}},
            }
        )
        for i in range(20)
    ]
    cache = RetrieverCache()
    client = fake.client()
    fake.set_latency(0.1, "get_retriever")
    fake.clear_requests()
    tools = MixpeekTools.from_retrievers(client, ids, cache=cache, max_fetch_workers=20)
    assert len(tools.definitions) == 20
    assert gets(fake) == 20
    # 20 requests of 100 ms each overlap on the server instead of running one by one (a
    # sequential build would show 1). Not all 20: a small listen backlog can hold a few
    # connections back; test_all_fetches_are_in_flight_together pins the full overlap.
    assert fake.max_overlap("get_retriever") >= 5
    assert "pool is full" not in caplog.text

    again = MixpeekTools.from_retrievers(client, ids, cache=cache)
    assert gets(fake) == 20  # served from the cache: no request
    assert again.names == tools.names

    MixpeekTools.from_retrievers(client, ids[:3], cache=cache, refresh=True)
    assert gets(fake) == 23
    tools.refresh()
    assert gets(fake) == 43
    cache.clear()
    MixpeekTools.from_retrievers(client, ids[:2], cache=cache)
    assert gets(fake) == 45


def test_all_fetches_are_in_flight_together(fake: FakeMixpeek) -> None:
    """Deterministic overlap: hold the server, see every fetch arrive before any answer."""
    ids = list(fake.retriever_ids)
    fake.pause("get_retriever")
    built: list[MixpeekTools] = []
    worker = threading.Thread(
        target=lambda: built.append(
            MixpeekTools.from_retrievers(fake.client(), ids, cache=RetrieverCache())
        )
    )
    worker.start()
    try:
        assert fake.wait_for_requests(len(ids), "get_retriever", in_flight=True)
        assert fake.in_flight("get_retriever") == len(ids)
    finally:
        fake.resume()
        worker.join(10)
    assert len(built[0].definitions) == len(ids)


def test_from_namespace_lists_every_page_without_fetching_each(fake_mixpeek: FakeMixpeek) -> None:
    fake = fake_mixpeek
    for i in range(12):  # more than one listing page (the API pages by 10)
        fake.add_retriever({"retriever_name": f"paged_{i}", "input_schema": {}})
    cache = RetrieverCache()
    client = fake.client()
    fake.clear_requests()
    tools = MixpeekTools.from_namespace(client, cache=cache)
    listed = {t.retriever_id for t in tools.definitions}
    assert set(fake.retriever_ids) <= listed
    assert len(fake.requests_for("list_retrievers")) >= 2
    assert gets(fake) == 0
    before = len(fake.requests)
    MixpeekTools.from_namespace(client, cache=cache)
    MixpeekTools.from_retrievers(client, fake.retriever_ids[:3], cache=cache)
    assert len(fake.requests) == before  # both served from the cache
    MixpeekTools.from_namespace(client, cache=cache, refresh=True)
    assert len(fake.requests) > before


def test_the_default_cache_is_scoped_by_api_and_namespace(fake: FakeMixpeek) -> None:
    client = fake.client()
    MixpeekTools.from_retrievers(client, ["ret_catalog"])
    fake.clear_requests()
    MixpeekTools.from_retrievers(client, ["ret_catalog"])
    assert gets(fake) == 0
    with FakeMixpeek() as other:
        MixpeekTools.from_retrievers(other.client(), ["ret_catalog"])
        assert len(other.requests_for("get_retriever")) == 1


def test_unknown_retriever_raises_not_found(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    with pytest.raises(RetrieverNotFoundError, match="ret_nope"):
        MixpeekTools.from_retrievers(fake.client(), ["ret_catalog", "ret_nope"], cache=cache)


def test_offline_construction_from_definitions(fake: FakeMixpeek) -> None:
    definitions = [fake.retriever(rid) for rid in fake.retriever_ids]
    tools = MixpeekTools(None, definitions)
    assert len(tools) == len(definitions)
    assert [t.retriever_id for t in tools] == list(fake.retriever_ids)
    assert fake.requests == []
    assert "search_catalog" in tools and tools["search_catalog"].kind == "search"
    assert tools.get("nope") is None
    with pytest.raises(KeyError, match="search_catalog"):
        tools["nope"]


def test_repr_has_no_secret(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    tools = sample_tools(fake, cache)
    assert fake.api_key not in repr(tools)
    assert fake.api_key not in repr(tools.definitions)
    assert "search_catalog" in repr(tools)


# --- naming and descriptions ------------------------------------------------------------


def definition(name: str, rid: str, **extra: Any) -> dict[str, Any]:
    return {"retriever_id": rid, "retriever_name": name, "input_schema": {}, **extra}


def test_names_are_sanitised_bounded_and_unique() -> None:
    defs = [
        definition("Product Demos (v2)!!", "ret_1"),
        definition("product-demos v2", "ret_2"),
        definition("x" * 100, "ret_3"),
        definition("x" * 100, "ret_4"),
        definition("検索", "ret_unicode"),
        definition("search_videos", "ret_5"),
        definition("audio_search", "ret_6"),
        definition("search", "ret_7"),
    ]
    tools = MixpeekTools(None, defs, actions=["describe", "explain"])
    names = tools.names
    assert all(NAME_RE.match(n) for n in names), names
    assert len(set(names)) == len(names)
    search = [t.name for t in tools if t.kind == "search"]
    assert search[:2] == ["search_product_demos_v2", "search_product-demos_v2"]
    assert search[2] == "search_" + "x" * 57 and search[3] == "search_" + "x" * 55 + "_2"
    assert search[4] == "search_ret_unicode"
    assert search[5:] == ["search_videos", "search_audio", "search_search"]
    assert "describe_videos" in names and "explain_audio" in names


def test_descriptions_are_capped_and_useful() -> None:
    long = "Finds product videos. " * 300
    tools = MixpeekTools(
        None,
        [
            definition("long", "ret_long", description=long),
            definition("bare", "ret_bare", collection_ids=["col_a"]),
        ],
    )
    assert len(tools["search_long"].description) <= 1024
    assert tools["search_long"].description.endswith("…")
    assert tools["search_long"].description.startswith("Finds product videos.")
    bare = tools["search_bare"].description
    assert "'bare'" in bare and "col_a" in bare


def test_unknown_field_type_warns_but_builds() -> None:
    odd = definition("odd", "ret_odd", input_schema={"h": {"type": "hologram"}})
    with pytest.warns(MixpeekSchemaWarning, match="hologram"):
        tools = MixpeekTools(None, [odd])
    assert_strict_ok(tools["search_odd"].parameters())


# --- requests ---------------------------------------------------------------------------


def test_search_request_holds_only_inputs_and_a_bounded_limit(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache)
    tool = tools["search_product_demo"]
    assert tool.page_size_field == "limit" and tool.max_page_size == 10
    args = {name: None for name in tool.parameters()["properties"]}
    args.update({"query": "sso setup", "category": "security", "limit": 500})
    request = tool.to_request(tool.parse_arguments(json.dumps(args)))
    assert request.method == "POST"
    assert request.path == "/retrievers/ret_product_demos/execute"
    assert request.body == {
        "inputs": {"query": "sso setup", "category": "security"},
        "limit": 10,
    }
    assert request.idempotent and request.retriever_id == "ret_product_demos"
    # the request is accepted as is by the API
    response = fake.client().retrievers.execute(tool.retriever_id, **request.body)
    assert response["documents"]


def test_model_cannot_reach_beyond_inputs(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    tool = sample_tools(fake, cache)["search_catalog"]
    for extra in ({"retriever_id": "ret_other"}, {"filters": {}}, {"target_collection_id": "x"}):
        with pytest.raises(pydantic.ValidationError):
            tool.parse_arguments({"query": "x", **extra})


def test_limit_is_renamed_when_an_input_is_called_limit() -> None:
    d = definition(
        "lim",
        "ret_lim",
        input_schema={"limit": {"type": "integer"}, "q": {"type": "string", "required": True}},
    )
    tool = MixpeekTools(None, [d], max_page_size=5)["search_lim"]
    assert tool.page_size_field == "max_results"
    props = tool.parameters()["properties"]
    assert props["max_results"]["anyOf"][0]["maximum"] == 5
    request = tool.to_request(tool.parse_arguments({"q": "x", "limit": 3, "max_results": 2}))
    assert request.body == {"inputs": {"q": "x", "limit": 3}, "limit": 2}


def test_developer_options_are_fixed_and_write_options_are_not_idempotent(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache)
    flt = {"AND": [{"field": "category", "operator": "eq", "value": "security"}]}
    tools.add_retriever(
        "ret_product_demos",
        filters=flt,
        fields=["title", "url"],
        max_page_size=3,
        execute_options={"target_collection_id": "col_saved", "return_presigned_urls": True},
    )
    tool = tools["search_product_demo"]
    assert tool.projection == ("title", "url") and tool.max_page_size == 3
    request = tool.to_request(tool.parse_arguments({"query": "sso", "limit": None}))
    assert request.body == {
        "inputs": {"query": "sso"},
        "limit": 3,
        "filters": flt,
        "target_collection_id": "col_saved",
        "return_presigned_urls": True,
    }
    assert request.idempotent is False
    assert tools.names.index("search_product_demo") == 0  # replaced in place


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"settings": {}}, "settings"),
        ({"inputs": {}}, "inputs"),
        ({"bogus": 1}, "Valid options are: .*target_collection_id"),
    ],
)
def test_invalid_execute_options_raise(
    fake: FakeMixpeek, cache: RetrieverCache, options: dict[str, Any], match: str
) -> None:
    tools = sample_tools(fake, cache)
    with pytest.raises(ConfigurationError, match=match):
        tools.add_retriever("ret_catalog", execute_options=options)


# --- user-declared models ---------------------------------------------------------------


class CatalogArgs(BaseModel):
    """My catalog search."""

    query: str = Field(description="Words to search")
    top_k: int = 5


class MissingQuery(BaseModel):
    top_k: int | None = None


class ExtraField(BaseModel):
    query: str
    colour: str | None = None
    size: int | None = None


def test_user_model_is_used_and_checked(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    tools = sample_tools(fake, cache)
    tools.add_retriever("ret_catalog", model=CatalogArgs, name="find_products", description="Mine")
    tool = tools["find_products"]
    assert "search_catalog" not in tools
    assert tool.description == "Mine"
    assert issubclass(tool.arguments_model, CatalogArgs)
    assert_strict_ok(tool.parameters())
    request = tool.to_request(tool.parse_arguments({"query": "lamp", "top_k": None, "limit": 2}))
    assert request.body == {"inputs": {"query": "lamp", "top_k": 5}, "limit": 2}


def test_user_model_missing_a_required_input_names_everything(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache)
    with pytest.raises(SchemaMismatchError) as info:
        tools.add_retriever("ret_catalog", model=MissingQuery)
    err = info.value
    assert err.fields == ["query"] and err.retriever_id == "ret_catalog"
    assert err.model == "MissingQuery"
    for word in ("MissingQuery", "catalog_search", "ret_catalog", "query"):
        assert word in str(err)
    assert "search_catalog" in tools  # the tool set is unchanged


def test_user_model_with_unknown_fields_names_them(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache)
    with pytest.raises(SchemaMismatchError, match=r"colour, size") as info:
        tools.add_retriever("ret_catalog", model=ExtraField)
    assert info.value.fields == ["colour", "size"]


def test_add_retriever_fetches_unknown_retrievers_once(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = MixpeekTools(fake.client(), cache=cache)
    assert len(tools) == 0
    tools.add_retriever("ret_catalog").add_retriever("ret_document_qa")
    assert tools.names == ("search_catalog", "search_document_qa")
    assert gets(fake) == 2
    MixpeekTools(fake.client(), cache=cache).add_retriever("ret_catalog")
    assert gets(fake) == 2


def test_invalid_names_and_page_sizes_raise(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    tools = sample_tools(fake, cache)
    with pytest.raises(ConfigurationError, match="not valid"):
        tools.add_retriever("ret_catalog", name="has space")
    with pytest.raises(ConfigurationError, match="max_page_size"):
        tools.add_retriever("ret_catalog", max_page_size=0)
    tools.add_retriever("ret_catalog", name="same")
    with pytest.raises(ConfigurationError, match="same tool name"):
        tools.add_retriever("ret_document_qa", name="same")
    with pytest.raises(ConfigurationError, match="BaseModel"):
        tools.add_retriever("ret_catalog", model=dict)  # type: ignore[arg-type]


# --- exploration actions --------------------------------------------------------------


def test_unknown_actions_raise_listing_valid_ones(fake: FakeMixpeek) -> None:
    with pytest.raises(UnknownActionError) as info:
        MixpeekTools(None, actions=["list_collections", "delete_everything"])
    assert info.value.unknown == ["delete_everything"]
    for action in ACTIONS:
        assert action in str(info.value)
    with pytest.raises(UnknownActionError):
        MixpeekTools.from_retrievers(fake.client(), [], actions=["nope"])


def _send(fake: FakeMixpeek, request: Any) -> Any:
    """Send a tool's request as the mixpeek client would (its headers, a JSON body) and
    return the decoded answer, asserting the API accepted it."""
    response = urllib3.request(
        request.method,
        fake.base_url + request.path,
        body=json.dumps(request.body).encode() if request.body is not None else None,
        headers={
            "Authorization": f"Bearer {fake.api_key}",
            "X-Namespace": fake.namespace,
            "Content-Type": "application/json",
        },
        retries=False,
        timeout=5.0,
    )
    assert response.status == 200, (request.path, response.status, response.data[:300])
    return json.loads(response.data)


ACTION_ARGS: dict[str, dict[str, Any]] = {
    "search_retrievers": {"search": "demo"},
    "get_retriever": {"retriever_id": "ret_catalog"},
    "list_collections": {"search": None, "limit": 2},
    "list_taxonomies": {"search": None, "limit": None},
    "list_clusters": {"search": None, "limit": None},
}


def test_every_namespace_action_builds_a_request_the_api_accepts(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    client = fake.client()
    tools = MixpeekTools(client, actions=NAMESPACE_ACTIONS, cache=cache)
    assert tools.names == NAMESPACE_ACTIONS
    listing = {}
    for name in ("list_collections", "list_taxonomies", "list_clusters"):
        request = tools[name].to_request(tools[name].parse_arguments(ACTION_ARGS[name]))
        listing[name] = _send(fake, request)
    args = dict(ACTION_ARGS)
    args["get_collection"] = {
        "collection_id": listing["list_collections"]["results"][0]["collection_id"]
    }
    args["get_taxonomy"] = {"taxonomy_id": listing["list_taxonomies"]["results"][0]["taxonomy_id"]}
    data = resources.files("mixpeek_openai.testing") / "data" / "objects.json"
    first = json.loads(data.read_text())["objects"][0]
    args["get_object"] = {"bucket_id": first["bucket_id"], "object_id": first["object_id"]}
    for tool in tools:
        assert tool.kind == "action" and tool.retriever_id is None
        assert_strict_ok(tool.parameters())
        request = tool.to_request(tool.parse_arguments(args[tool.name]))
        assert request.idempotent
        _send(fake, request)  # accepted
    list_body = (
        tools["list_collections"]
        .to_request(tools["list_collections"].parse_arguments({"search": None, "limit": 999}))
        .body
    )
    assert list_body == {"limit": 10}


def test_action_ids_cannot_walk_the_path() -> None:
    tools = MixpeekTools(None, actions=["get_collection"])
    tool = tools["get_collection"]
    request = tool.to_request(tool.parse_arguments({"collection_id": "../retrievers/x"}))
    assert request.path == "/collections/..%2Fretrievers%2Fx"


def test_describe_answers_locally_and_explain_asks_the_api(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache, actions=["describe", "explain"])
    fake.clear_requests()
    describe = tools["describe_product_demo"]
    assert describe.kind == "describe" and describe.retriever_id == "ret_product_demos"
    assert describe.parameters()["properties"] == {}
    answer = describe.local_output(describe.parse_arguments("{}"))
    assert answer["search_tool"] == "search_product_demo"
    assert answer["inputs"]["query"]["required"] is True
    assert answer["description"] == fake.retriever("ret_product_demos")["description"]
    assert fake.requests == []

    explain = tools["explain_product_demo"]
    assert explain.local_output(explain.parse_arguments({"query": "x"})) is None
    args = {name: None for name in explain.parameters()["properties"]}
    args["query"] = "sso"
    request = explain.to_request(explain.parse_arguments(args))
    assert request.path == "/retrievers/ret_product_demos/execute/explain"
    assert request.body == {"inputs": {"query": "sso"}}
    plan = _send(fake, request)
    assert plan
    # search tools come first, then per-retriever tools
    kinds = [t.kind for t in tools]
    assert kinds == sorted(kinds, key=lambda k: k != "search")


def test_tool_definition_is_a_frozen_value(fake: FakeMixpeek, cache: RetrieverCache) -> None:
    tool: ToolDefinition = sample_tools(fake, cache).definitions[0]
    with pytest.raises(AttributeError):
        tool.name = "other"  # type: ignore[misc]
    params = tool.parameters()
    params["properties"].clear()
    assert tool.parameters()["properties"]  # callers get copies


def test_document_reference_is_exposed_for_user_models() -> None:
    ref = DocumentReference(collection_id="c", document_id="d")
    assert ref.model_dump() == {"collection_id": "c", "document_id": "d"}


def test_handle_runs_tool_calls_through_the_dispatcher(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache, actions=["describe"])
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {
                "name": "search_catalog",
                "arguments": json.dumps({"query": "lamp", "top_k": None, "limit": 2}),
            },
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "describe_catalog", "arguments": "{}"},
        },
    ]
    fake.clear_requests()
    outputs = tools.handle(calls)
    assert [o["tool_call_id"] for o in outputs] == ["call_1", "call_2"]
    assert all(o["role"] == "tool" for o in outputs)
    executed = fake.requests_for("execute")
    assert len(executed) == 1
    assert executed[0].body == {"inputs": {"query": "lamp"}, "limit": 2}
    assert "search_catalog" in outputs[1]["content"]  # describe answered locally
    assert fake.api_key not in json.dumps(outputs)


class LooseArgs(BaseModel):
    model_config = ConfigDict(extra="allow")

    query: str


def test_extra_keys_of_a_permissive_user_model_never_reach_the_api(
    fake: FakeMixpeek, cache: RetrieverCache
) -> None:
    tools = sample_tools(fake, cache).add_retriever("ret_catalog", model=LooseArgs)
    tool = tools["search_catalog"]
    assert tool.parameters()["additionalProperties"] is False
    request = tool.to_request(tool.parse_arguments({"query": "x", "evil": 1, "limit": None}))
    assert request.body == {"inputs": {"query": "x"}, "limit": 10}
