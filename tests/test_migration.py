"""thread_to_conversation: an Assistants thread's history carried into a Conversation."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import openai
import pytest

from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.migration import athread_to_conversation, thread_to_conversation
from mixpeek_openai.responses import run_responses
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.tools import MixpeekTools


def make_thread(stub: StubOpenAI, turns: int) -> str:
    """A thread of ``turns`` user/assistant exchanges, the first user message with an image."""
    client = stub.client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # building the fixture only
        thread = client.beta.threads.create()
        for n in range(turns):
            content: Any = f"question {n}"
            if n == 0:
                content = [
                    {"type": "text", "text": "question 0"},
                    {"type": "image_file", "image_file": {"file_id": "file-abc", "detail": "low"}},
                ]
            client.beta.threads.messages.create(thread.id, role="user", content=content)
            client.beta.threads.messages.create(thread.id, role="assistant", content=f"answer {n}")
    return thread.id


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_copies_every_message_in_order_with_roles(mode: str, stub: StubOpenAI) -> None:
    thread_id = make_thread(stub, turns=13)  # 26 messages: more than one request of 20 items
    before = len(stub.requests)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Assistants calls must not warn
        if mode == "sync":
            conversation_id = thread_to_conversation(stub.client(), thread_id)
        else:
            conversation_id = asyncio.run(athread_to_conversation(stub.async_client(), thread_id))

    items = stub.conversation_items(conversation_id)
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        (role, f"{word} {n}")
        for n in range(13)
        for role, word in (("user", "question"), ("assistant", "answer"))
    ]
    assert items[0]["content"][1] == {"type": "input_image", "file_id": "file-abc", "detail": "low"}
    sent = stub.requests[before:]
    assert [(r.method, r.path.split("/v1/")[1].split("/")[0]) for r in sent] == [
        ("GET", "threads"),
        ("POST", "conversations"),
        ("POST", "conversations"),
    ]
    assert [len(r.body["items"]) for r in sent[1:]] == [20, 6]
    conversation = stub.client().conversations.retrieve(conversation_id)
    assert conversation.metadata == {"assistants_thread_id": thread_id}
    assert len(stub.thread_messages(thread_id)) == 26  # the thread is left as it was


def test_reads_every_page_of_a_long_thread(stub: StubOpenAI) -> None:
    thread_id = make_thread(stub, turns=55)  # 110 messages: two pages of 100

    conversation_id = thread_to_conversation(stub.client(), thread_id, metadata={"team": "a"})

    items = stub.conversation_items(conversation_id)
    assert len(items) == 110
    assert items[-1]["content"][0]["text"] == "answer 54"
    pages = stub.requests_to("/v1/threads/*/messages", "GET")
    assert len(pages) == 2 and "after" not in pages[0].query
    assert pages[1].query["after"] == stub.thread_messages(thread_id)[99]["id"]
    meta = stub.client().conversations.retrieve(conversation_id).metadata
    assert meta == {"team": "a", "assistants_thread_id": thread_id}


def test_the_conversation_continues_with_run_responses(
    stub: StubOpenAI, tools: MixpeekTools
) -> None:
    thread_id = make_thread(stub, turns=2)
    conversation_id = thread_to_conversation(stub.client(), thread_id)
    stub.script(stub.tool_call("search_product_demo", {"query": "sso"}), stub.text("Continued."))

    result = run_responses(
        stub.client(), tools, model="gpt-4o", input="question 2", conversation=conversation_id
    )

    assert result.content == "Continued." and result.conversation_id == conversation_id
    items = stub.conversation_items(conversation_id)
    texts = [i["content"][0]["text"] for i in items if i["type"] == "message"]
    assert texts[:5] == ["question 0", "answer 0", "question 1", "answer 1", "question 2"]
    assert texts[-1] == "Continued."


def test_a_failure_midway_removes_the_half_copied_conversation(stub: StubOpenAI) -> None:
    thread_id = make_thread(stub, turns=15)
    stub.inject_error(500, path="/v1/conversations/*/items", method="POST")

    with pytest.raises(openai.InternalServerError):
        thread_to_conversation(stub.client(), thread_id)

    created = stub.requests_to("/v1/conversations", "POST")[0]
    deleted = stub.requests_to("/v1/conversations/*", "DELETE")
    assert created.status == 200 and len(deleted) == 1 and deleted[0].status == 200


def test_unknown_thread_and_bad_arguments(stub: StubOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        thread_to_conversation(stub.client(), "thread_missing")
    assert stub.requests_to("/v1/conversations", "POST") == []
    with pytest.raises(ConfigurationError, match="thread id"):
        thread_to_conversation(stub.client(), "")
