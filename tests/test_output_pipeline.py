"""What the model reads, through the public API: a realistic page served by the fake server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks._realistic import REALISTIC_QUERY, realistic_response
from mixpeek_openai.excerpts import MARKER
from mixpeek_openai.links import find_urls
from mixpeek_openai.results import default_token_counter
from mixpeek_openai.testing import FakeMixpeek, Fault
from mixpeek_openai.tokens import exact_counter
from mixpeek_openai.tools import MixpeekTools

TOOL = "search_product_demo"


def strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def search(fake: FakeMixpeek, raw: dict[str, Any], fields: list[str] | None = None) -> Any:
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"], max_page_size=50)
    if fields is not None:
        tools.add_retriever("ret_product_demos", fields=fields)
    fake.inject("execute", Fault.response(200, raw))
    arguments = json.dumps({"query": REALISTIC_QUERY, "limit": len(raw["documents"])})
    [result] = tools.dispatch(
        [{"id": "c1", "type": "function", "function": {"name": TOOL, "arguments": arguments}}]
    )
    assert result.ok, result.error
    return result


def test_a_realistic_page_is_small_whole_and_strict(fake: FakeMixpeek) -> None:
    raw = realistic_response(10)
    result = search(fake, raw)
    out = strict(result.output)
    assert out["columns"] == ["document_id", "score", "title", "excerpt"]
    assert out["shared"] == {"collection_id": "col_video_segments_prod"}
    assert [r[0] for r in out["rows"]] == [d["document_id"] for d in raw["documents"]]
    assert all(len(r[3].strip(MARKER)) >= 150 for r in out["rows"])
    assert out["total"] == 40 and out["more"].startswith("30 more results")
    # Presigned thumbnails stay on .raw, out of the model's view.
    assert "X-Amz" not in result.output
    assert result.raw["documents"][0]["thumbnail_url"] == raw["documents"][0]["thumbnail_url"]
    assert default_token_counter()(result.output) * 10 <= default_token_counter()(json.dumps(raw))


def test_projected_links_are_whole_and_signed_ones_left_out(fake: FakeMixpeek) -> None:
    raw = realistic_response(10)
    result = search(fake, raw, ["title", "video_url", "thumbnail_url", "text"])
    out = strict(result.output)
    assert "thumbnail_url" not in out["columns"]
    sources = strings(raw)
    urls = [u for s in strings(out) for u in find_urls(s)]
    assert len(urls) == 10
    assert all(any(u in s for s in sources) for u in urls)


def test_fifty_documents_mostly_fit_the_default_budget(fake: FakeMixpeek) -> None:
    raw = realistic_response(50)
    result = search(fake, raw)
    out = strict(result.output)
    count = default_token_counter()
    assert count(result.output) <= 2000
    if exact_counter() is not None:
        assert len(out["rows"]) >= 40
    shown = len(out["rows"])
    assert out["more"].startswith(f"{200 - shown} more results")


@pytest.mark.parametrize(
    "body",
    [
        {"documents": [{"score": float("nan")}]},
        {"documents": [{"title": "\ud800x", "score": 10**400}]},
    ],
)
def test_odd_values_still_give_strict_json(fake: FakeMixpeek, body: dict[str, Any]) -> None:
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"])
    fake.inject("execute", Fault.response(200, json.dumps(body)))
    [result] = tools.dispatch(
        [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": TOOL, "arguments": '{"query": "x"}'},
            }
        ]
    )
    strict(result.output)
    result.output.encode("utf-8")
