"""Images in tool outputs: Responses takes them as ``input_image`` parts; Chat and the
Assistants API take text only, so a tool with images is refused there, saying so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mixpeek_openai.chat import run_chat
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.responses import arun_responses, run_responses
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"


@pytest.fixture
def visual(fake: FakeMixpeek) -> MixpeekTools:
    fake.clear_requests()
    tools = MixpeekTools(fake.client())
    return tools.add_retriever("ret_product_demos", images=2)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_responses_outputs_carry_the_top_thumbnails(
    visual: MixpeekTools, stub: StubOpenAI, fake: FakeMixpeek, mode: str
) -> None:
    stub.script(stub.tool_call(DEMO, {"query": "sso setup"}, call_id="call_1"), stub.text("ok"))

    if mode == "sync":
        result = run_responses(stub.client(), visual, model="gpt-4o", input="Show me SSO")
    else:
        result = asyncio.run(
            arun_responses(stub.async_client(), visual, model="gpt-4o", input="Show me SSO")
        )

    (call,) = result.calls
    assert call.ok and len(call.images) == 2
    # The images are the first documents' own thumbnails, whole.
    documents = call.raw["documents"]
    assert list(call.images) == [d["thumbnail_url"] for d in documents[:2]]
    sent = stub.requests_to("/v1/responses", "POST")[1].body
    (item,) = [i for i in sent["input"] if i["type"] == "function_call_output"]
    parts: list[dict[str, Any]] = item["output"]
    assert parts[0]["type"] == "input_text" and "rows" in parts[0]["text"]
    assert parts[1:] == [
        {"type": "input_image", "image_url": url, "detail": "low"} for url in call.images
    ]


def test_chat_refuses_a_tool_with_images_before_any_request(
    visual: MixpeekTools, stub: StubOpenAI, fake: FakeMixpeek
) -> None:
    with pytest.raises(ConfigurationError, match="responses_tools") as info:
        visual.chat_tools()
    assert DEMO in str(info.value) and "images=0" in str(info.value)
    with pytest.raises(ConfigurationError, match="text only"):
        run_chat(stub.client(), visual, model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert stub.requests == [] and fake.requests == []


def test_without_images_the_chat_tool_is_offered(fake: FakeMixpeek) -> None:
    tools = MixpeekTools(fake.client()).add_retriever("ret_product_demos", images=0)
    assert [t["function"]["name"] for t in tools.chat_tools()] == [DEMO]
