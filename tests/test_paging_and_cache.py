"""Paging through results with the search tool's offset, and the opt-in search cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from mixpeek_openai.config import DispatchConfig
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import MixpeekTools

SEARCH = "search_product_demo"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as server:
        yield server


def call(call_id: str, **arguments: Any) -> dict[str, Any]:
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": SEARCH,
        "arguments": json.dumps(arguments),
    }


def ids(result: Any) -> list[str]:
    return [d["document_id"] for d in result.raw["documents"]]


def test_the_search_tool_takes_a_bounded_offset(fake: FakeMixpeek) -> None:
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"])
    schema = tools.get(SEARCH).parameters()  # type: ignore[union-attr]
    offset = schema["properties"]["offset"]
    integer, null = offset["anyOf"]
    assert integer == {"type": "integer", "minimum": 0, "maximum": 1000} and null["type"] == "null"
    assert "offset" in schema["required"]  # strict mode: every property is required


def test_the_next_offset_returns_the_next_documents(fake: FakeMixpeek) -> None:
    with MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"]) as tools:
        [first] = tools.dispatch([call("c1", query="demo", limit=2, offset=None)])
        [second] = tools.dispatch([call("c2", query="demo", limit=2, offset=2)])
        [both] = tools.dispatch([call("c3", query="demo", limit=4, offset=None)])

    assert first.ok and second.ok
    assert len(ids(first)) == 2 and len(ids(second)) == 2
    assert ids(first) + ids(second) == ids(both)
    assert second.request is not None and second.request.body is not None
    assert second.request.body["pagination"] == {
        "method": "offset",
        "page_size": 2,
        "page_number": 2,
    }


def test_an_offset_beyond_the_bound_is_clamped_not_refused(fake: FakeMixpeek) -> None:
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"])
    [result] = tools.dispatch([call("c1", query="demo", limit=2, offset=10**6)])
    tools.close()
    assert result.error is None or result.error.kind != "invalid_arguments"
    assert result.request is not None and result.request.body is not None
    assert result.request.body["pagination"]["page_number"] == 1000 // 2 + 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_repeated_identical_searches_are_answered_from_the_cache(
    fake: FakeMixpeek, mode: str
) -> None:
    clock = ManualClock()
    config = DispatchConfig(
        search_cache_ttl_s=30, retry=RetryPolicy(sleep=clock.sleep, clock=clock.now)
    )
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"], config=config)
    fake.clear_requests()

    def run(calls: list[dict[str, Any]]) -> list[Any]:
        if mode == "sync":
            return tools.dispatch(calls)
        return asyncio.run(tools.adispatch(calls))

    [first] = run([call("c1", query="sso setup", limit=None, offset=None)])
    # The same search (null and an omitted field are the same): no request.
    [again] = run([call("c2", query="sso setup", offset=None)])
    [other] = run([call("c3", query="dashboards")])
    clock.advance(31)
    [expired] = run([call("c4", query="sso setup")])
    tools.close()

    assert not first.cached and again.cached and not other.cached and not expired.cached
    assert again.output == first.output and again.attempts == 0
    assert len(fake.requests_for("execute")) == 3


def test_the_cache_is_off_by_default(fake: FakeMixpeek) -> None:
    with MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"]) as tools:
        fake.clear_requests()
        results = [tools.dispatch([call(f"c{i}", query="sso setup")])[0] for i in range(2)]
    assert not any(r.cached for r in results)
    assert len(fake.requests_for("execute")) == 2
