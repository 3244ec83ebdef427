"""StubOpenAI through the real ``openai`` clients (sync and async), with no network."""

from __future__ import annotations

import json
import threading
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler, AsyncAssistantEventHandler
from pydantic import BaseModel

from mixpeek_openai.testing import RecordedOpenAIRequest, StubOpenAI, StubTurn

# The openai client marks the whole Assistants surface deprecated (two message styles).
pytestmark = [
    pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:deprecated$:DeprecationWarning"),
]

SEARCH_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "what to look for"},
        "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
    "required": ["query", "limit"],
    "additionalProperties": False,
}


def chat_tool(name: str = "search_demos", params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "Search product demos.",
            "strict": params is None,
            "parameters": params or SEARCH_PARAMS,
        },
    }


def responses_tool(name: str = "search_demos") -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": SEARCH_PARAMS, "strict": True}


DOCS_OUTPUT = json.dumps(
    {
        "documents": [
            {"document_id": "doc_1", "metadata": {"title": "Cat video"}},
            {"document_id": "doc_2", "title": "Dog video"},
        ]
    }
)


def error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict)
    # The openai client unwraps {"error": {...}}; the fields follow OpenAI's error shape.
    return body


# ---------------------------------------------------------------------------
# Chat Completions
# ---------------------------------------------------------------------------


def test_chat_default_model_calls_first_tool_then_summarises(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    tools = [chat_tool(), chat_tool("other_tool")]
    messages: list[Any] = [{"role": "user", "content": "cat videos"}]

    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "search_demos"
    assert json.loads(call.function.arguments) == {"query": "cat videos", "limit": None}
    assert first.usage is not None and first.usage.prompt_tokens > 0

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": DOCS_OUTPUT})
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)

    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Found 2 results: Cat video, Dog video"
    assert second.usage is not None
    assert second.usage.total_tokens == second.usage.prompt_tokens + second.usage.completion_tokens


async def test_async_chat_scripted_parallel_calls(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {"query": "a", "limit": 2}, call_id="call_a"),
                stub_openai.call("search_demos", '{"query": "b", "limit"', call_id="call_b"),
                stub_openai.call("no_such_tool", {}),
            ],
            usage=(11, 7),
        )
    )
    client = stub_openai.async_client()

    completion = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[chat_tool()]
    )

    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert [c.id for c in calls[:2]] == ["call_a", "call_b"]
    assert [c.function.name for c in calls] == ["search_demos", "search_demos", "no_such_tool"]
    assert calls[1].function.arguments == '{"query": "b", "limit"'  # malformed, verbatim
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert stub_openai.pending_turns == 0


def test_chat_stream_tool_call_deltas_assemble(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {"query": "first query", "limit": 3}),
                stub_openai.call("search_demos", '{"query": "broken'),
            ]
        )
    )
    client = stub_openai.client()

    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "go"}],
        tools=[chat_tool()],
        stream=True,
        stream_options={"include_usage": True},
    )
    assembled: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                slot = assembled.setdefault(delta.index, {"id": None, "name": None, "args": ""})
                if slot["id"] is None:
                    assert delta.id and delta.function and delta.function.name
                    slot["id"], slot["name"] = delta.id, delta.function.name
                else:
                    # id and name come only in the first fragment of each call
                    assert delta.id is None
                    assert delta.function is not None and delta.function.name is None
                    fragments[delta.index] = fragments.get(delta.index, 0) + 1
                if delta.function and delta.function.arguments:
                    slot["args"] += delta.function.arguments

    assert finish == "tool_calls"
    assert json.loads(assembled[0]["args"]) == {"query": "first query", "limit": 3}
    assert assembled[1]["args"] == '{"query": "broken'
    assert assembled[0]["id"] != assembled[1]["id"]
    assert fragments[0] > 1  # arguments are split over several fragments
    assert usage is not None and usage.total_tokens > 0


async def test_chat_stream_with_openai_stream_helper(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {"query": "x", "limit": None}),
                stub_openai.call("search_demos", {"query": "y", "limit": 1}),
            ]
        ),
        stub_openai.text("All done here."),
    )
    client = stub_openai.async_client()
    messages: list[Any] = [{"role": "user", "content": "go"}]

    async with client.chat.completions.stream(
        model="gpt-4o", messages=messages, tools=[chat_tool()]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.parsed_arguments for c in calls] == [
        {"query": "x", "limit": None},
        {"query": "y", "limit": 1},
    ]

    text_deltas: list[str] = []
    async with client.chat.completions.stream(model="gpt-4o", messages=messages) as stream:
        async for event in stream:
            if event.type == "content.delta":
                text_deltas.append(event.delta)
    assert len(text_deltas) > 1
    assert "".join(text_deltas) == "All done here."


def test_chat_missing_tool_message_is_400(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ],
    }
    messages: list[Any] = [
        {"role": "user", "content": "hi"},
        assistant,
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=messages)

    assert info.value.status_code == 400
    body = error_body(info.value)
    assert body["type"] == "invalid_request_error"
    assert "call_2" in body["message"]
    assert body["param"] == "messages.[1].role"
    assert "code" in body

    # A tool message that answers nothing is refused too.
    stray = [*messages, {"role": "tool", "tool_call_id": "call_2", "content": "ok"}]
    stray.append({"role": "tool", "tool_call_id": "call_9", "content": "?"})
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding"):
        client.chat.completions.create(model="gpt-4o", messages=stray)

    complete = [*messages, {"role": "tool", "tool_call_id": "call_2", "content": "ok"}]
    ok = client.chat.completions.create(model="gpt-4o", messages=complete)
    assert ok.choices[0].message.content


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ([chat_tool("bad name!")], "does not match pattern"),
        ([chat_tool("x" * 65)], "does not match pattern"),
        ([chat_tool("dup"), chat_tool("dup")], "Duplicate tool name"),
        (
            [
                chat_tool(
                    "loose",
                    {"type": "object", "properties": {"q": {"type": "string"}}, "required": []},
                )
            ],
            None,
        ),
    ],
)
def test_chat_tool_names_checked(
    stub_openai: StubOpenAI, tools: list[dict[str, Any]], fragment: str | None
) -> None:
    client = stub_openai.client()
    messages: Any = [{"role": "user", "content": "hi"}]
    if fragment is None:  # a non-strict tool with an optional property is fine
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
        return
    with pytest.raises(openai.BadRequestError, match=fragment):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)


def test_strict_schema_gaps_are_refused(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    messages: Any = [{"role": "user", "content": "hi"}]
    not_required = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["q"],
        "additionalProperties": False,
    }
    with_default = {
        "type": "object",
        "properties": {"n": {"type": "integer", "default": 5}},
        "required": ["n"],
        "additionalProperties": False,
    }
    open_object = {"type": "object", "properties": {}, "required": []}
    for schema, fragment in [
        (not_required, "Missing 'n'"),
        (with_default, "'default' is not permitted"),
        (open_object, "additionalProperties"),
    ]:
        tool = {"type": "function", "function": {"name": "t", "strict": True, "parameters": schema}}
        with pytest.raises(openai.BadRequestError, match=fragment):
            client.chat.completions.create(model="gpt-4o", messages=messages, tools=[tool])


def test_parallel_tool_calls_refused_for_reasoning_models(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    with pytest.raises(openai.BadRequestError, match="parallel_tool_calls"):
        client.chat.completions.create(
            model="o3-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=[chat_tool()],
            parallel_tool_calls=False,
        )


def test_chat_finish_reasons(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.truncated("partial an"), stub_openai.content_filtered())
    client = stub_openai.client()
    messages: Any = [{"role": "user", "content": "hi"}]

    cut = client.chat.completions.create(model="gpt-4o", messages=messages)
    filtered = client.chat.completions.create(model="gpt-4o", messages=messages)

    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "partial an"
    assert filtered.choices[0].finish_reason == "content_filter"


def test_scripted_http_errors_and_client_retries(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.error(500, message="boom"),
        stub_openai.text("recovered"),
        stub_openai.error(429, {"error": {"message": "slow down", "type": "requests"}}),
    )
    messages: Any = [{"role": "user", "content": "hi"}]

    retried = stub_openai.client(max_retries=1).chat.completions.create(
        model="gpt-4o", messages=messages
    )
    assert retried.choices[0].message.content == "recovered"
    statuses = [r.status for r in stub_openai.requests_to("/v1/chat/completions")]
    assert statuses == [500, 200]

    with pytest.raises(openai.RateLimitError) as info:
        stub_openai.client().chat.completions.create(model="gpt-4o", messages=messages)
    assert error_body(info.value)["message"] == "slow down"


def test_inject_error_by_path(stub_openai: StubOpenAI) -> None:
    stub_openai.inject_error(503, path="/v1/responses", times=2)
    client = stub_openai.client()

    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4o", input="hi")
    ok = stub_openai.client(max_retries=1).responses.create(model="gpt-4o", input="hi")

    assert ok.output_text == "You said: hi"
    assert [r.status for r in stub_openai.requests_to("/v1/responses")] == [503, 503, 200]


@pytest.mark.parametrize("status", [200, 302, 99, 600])
def test_an_error_needs_an_error_status(stub_openai: StubOpenAI, status: int) -> None:
    with pytest.raises(ValueError, match="400-599"):
        stub_openai.error(status)
    with pytest.raises(ValueError, match="400-599"):
        stub_openai.inject_error(status)


# ---------------------------------------------------------------------------
# Responses and Conversations
# ---------------------------------------------------------------------------


def test_responses_previous_response_id_chain(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    tools: Any = [responses_tool()]

    first = client.responses.create(model="gpt-4o", input="dog videos", tools=tools)
    (item,) = first.output
    assert item.type == "function_call"
    assert item.name == "search_demos"
    assert json.loads(item.arguments) == {"query": "dog videos", "limit": None}
    assert first.usage is not None and first.usage.input_tokens > 0

    with pytest.raises(openai.BadRequestError, match=f"No tool output found.*{item.call_id}"):
        client.responses.create(
            model="gpt-4o", previous_response_id=first.id, input="more", tools=tools
        )
    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        client.responses.create(
            model="gpt-4o",
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )

    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": DOCS_OUTPUT}],
        tools=tools,
    )
    assert second.output_text == "Found 2 results: Cat video, Dog video"
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(second.id).id == second.id


async def test_async_responses_stateless_replay_and_scripted_calls(
    stub_openai: StubOpenAI,
) -> None:
    stub_openai.script(
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {"query": "q1", "limit": 1}, call_id="c1"),
                stub_openai.call("search_demos", {"query": "q2", "limit": 1}, call_id="c2"),
            ]
        )
    )
    client = stub_openai.async_client()
    history: list[Any] = [{"role": "user", "content": "two searches"}]

    first = await client.responses.create(
        model="gpt-4o", input=history, tools=[responses_tool()], store=False
    )
    assert [o.call_id for o in first.output if o.type == "function_call"] == ["c1", "c2"]
    history += [o.model_dump(exclude_none=True) for o in first.output]
    history += [
        {"type": "function_call_output", "call_id": c, "output": "[]"} for c in ("c1", "c2")
    ]

    second = await client.responses.create(model="gpt-4o", input=history)
    assert second.output_text.startswith("search_demos: Found 0 results.")


def test_responses_incomplete_and_failed(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.truncated("cut"), stub_openai.run_failed("model broke"))
    client = stub_openai.client()

    cut = client.responses.create(model="gpt-4o", input="hi")
    failed = client.responses.create(model="gpt-4o", input="hi")

    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.message == "model broke"


def test_responses_stream_events(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.text("streamed words here"))
    client = stub_openai.client()

    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == "streamed words here"
    assert final.output_text == "streamed words here"


def test_conversations_hold_state(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    conversation = client.conversations.create(items=[{"role": "user", "content": "earlier"}])

    first = client.responses.create(
        model="gpt-4o", conversation=conversation.id, input="find owls", tools=[responses_tool()]
    )
    call = first.output[0]
    assert call.type == "function_call"
    with pytest.raises(openai.BadRequestError, match="No tool output"):
        client.responses.create(model="gpt-4o", conversation=conversation.id, input="again")
    second = client.responses.create(
        model="gpt-4o",
        conversation=conversation.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "[1]"}],
    )

    assert second.output_text == "Found 1 result: 1"
    items = client.conversations.items.list(conversation.id, order="asc")
    kinds = [i.type for i in items.data]
    assert kinds == ["message", "message", "function_call", "function_call_output", "message"]
    with pytest.raises(openai.BadRequestError, match="Mutually exclusive"):
        client.responses.create(
            model="gpt-4o", conversation=conversation.id, previous_response_id=second.id, input="x"
        )


def test_background_responses_move_through_their_statuses() -> None:
    stub = StubOpenAI(background_polls=2)
    stub.script(stub.text("done in the background"))
    client = stub.client()

    created = client.responses.create(model="gpt-4o", input="hi", background=True)
    seen = [client.responses.retrieve(created.id) for _ in range(4)]

    assert created.status == "queued" and created.output == []
    assert [r.status for r in seen] == ["in_progress", "in_progress", "completed", "completed"]
    assert seen[-1].output_text == "done in the background"
    assert seen[-1].usage is not None and seen[-1].usage.total_tokens > 0
    with pytest.raises(openai.BadRequestError, match="store"):
        client.responses.create(model="gpt-4o", input="hi", background=True, store=False)


async def test_background_responses_are_cancelled_while_they_run() -> None:
    stub = StubOpenAI(background_polls=10)
    client = stub.async_client()

    created = await client.responses.create(model="gpt-4o", input="hi", background=True)
    cancelled = await client.responses.cancel(created.id)
    again = await client.responses.cancel(created.id)

    assert cancelled.status == again.status == "cancelled" and cancelled.output == []
    assert (await client.responses.retrieve(created.id)).status == "cancelled"
    done = await client.responses.create(model="gpt-4o", input="hi")
    with pytest.raises(openai.BadRequestError, match="background"):
        await client.responses.cancel(done.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.cancel("resp_missing")


def test_function_outputs_may_carry_image_parts(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.tool_call("search_demos", {"query": "q", "limit": 1}))
    client = stub_openai.client()
    first = client.responses.create(model="gpt-4o", input="x", tools=[responses_tool()])
    call_id = first.output[0].call_id  # type: ignore[union-attr]
    parts = [
        {"type": "input_text", "text": DOCS_OUTPUT},
        {"type": "input_image", "image_url": "https://img.local/1.png", "detail": "low"},
    ]

    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call_id, "output": parts}],  # type: ignore[list-item]
    )

    assert second.output_text == "Found 2 results: Cat video, Dog video"
    assert stub_openai.requests[-1].body["input"][0]["output"] == parts


@pytest.mark.off_spec
def test_function_output_parts_of_other_types_are_refused(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.tool_call("search_demos", {"query": "q", "limit": 1}))
    client = stub_openai.client()
    first = client.responses.create(model="gpt-4o", input="x", tools=[responses_tool()])
    call_id = first.output[0].call_id  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError, match="input_image"):
        client.responses.create(
            model="gpt-4o",
            previous_response_id=first.id,
            input=[
                {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": [{"type": "image_url", "url": "https://img.local/1.png"}],
                }
            ],  # type: ignore[list-item]
        )


@pytest.mark.off_spec
def test_chat_takes_functions_only(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    with pytest.raises(openai.BadRequestError, match="'web_search'"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
        )
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[chat_tool(), {"type": "code_interpreter"}],  # type: ignore[list-item]
    )
    assert [t.type for t in assistant.tools] == ["function", "code_interpreter"]


def test_reasoning_items_must_come_back_findable() -> None:
    stub = StubOpenAI()
    client = stub.client()
    plain = client.responses.create(model="o4-mini", input="hi", store=False)
    encrypted = client.responses.create(
        model="o4-mini", input="hi", store=False, include=["reasoning.encrypted_content"]
    )
    stored = client.responses.create(model="o3", input="hi")

    assert plain.output[0].type == "reasoning" and plain.output[0].encrypted_content is None  # type: ignore[union-attr]
    item = encrypted.output[0].model_dump(exclude_none=True)
    assert item["encrypted_content"]
    user: Any = {"role": "user", "content": "more"}
    ok = client.responses.create(model="o4-mini", input=[item, user], store=False)
    assert ok.status == "completed"
    bare = {k: v for k, v in item.items() if k != "encrypted_content"}
    with pytest.raises(openai.BadRequestError, match="not persisted"):
        client.responses.create(model="o4-mini", input=[bare, user], store=False)
    with pytest.raises(openai.BadRequestError, match="could not be verified"):
        client.responses.create(
            model="o4-mini", input=[{**item, "encrypted_content": "forged"}, user], store=False
        )
    # A stored reasoning item is found by its id.
    kept = stored.output[0].model_dump(exclude_none=True)
    assert client.responses.create(model="o3", input=[kept, user]).status == "completed"
    assert client.responses.create(model="gpt-4o", input="hi").output[0].type == "message"


def test_usage_details_are_reported(stub_openai: StubOpenAI) -> None:
    stub_openai.report_usage_details(cached_tokens=7, reasoning_tokens=2)
    stub_openai.script(stub_openai.text("a", usage=(10, 5)), stub_openai.text("b", usage=(3, 1)))
    client = stub_openai.client()

    chat = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    response = client.responses.create(model="gpt-4o", input="x")

    assert chat.usage is not None and chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cached_tokens == 7
    assert chat.usage.completion_tokens_details is not None
    assert chat.usage.completion_tokens_details.reasoning_tokens == 2
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 3  # capped at the input
    assert response.usage.output_tokens_details.reasoning_tokens == 1


@pytest.mark.off_spec
def test_conversations_take_twenty_items_per_request(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    items: Any = [{"role": "user", "content": f"m{i}"} for i in range(21)]
    with pytest.raises(openai.BadRequestError, match="maximum length 20"):
        client.conversations.create(items=items)
    conversation = client.conversations.create(items=items[:20])
    with pytest.raises(openai.BadRequestError, match="maximum length 20"):
        client.conversations.items.create(conversation.id, items=items)


# ---------------------------------------------------------------------------
# Assistants
# ---------------------------------------------------------------------------


def _assistant_thread(client: openai.OpenAI, text: str = "find birds") -> tuple[str, str]:
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[chat_tool()])  # type: ignore[list-item]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return assistant.id, thread.id


def test_run_queued_requires_action_completed_without_sleeping(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)

    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "queued"
    assert run.expires_at is not None and run.expires_at > run.created_at

    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread_id)
    assert raw.headers["openai-poll-after-ms"] == "1"
    assert raw.parse().status == "in_progress"
    run = client.beta.threads.runs.poll(run.id, thread_id=thread_id)
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert json.loads(call.function.arguments) == {"query": "find birds", "limit": None}

    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": DOCS_OUTPUT}],
        poll_interval_ms=0,
    )
    assert run.status == "completed"
    assert run.usage is not None and run.usage.total_tokens > 0
    assert stub_openai.poll_count(run.id) == 4
    messages = client.beta.threads.messages.list(thread_id, order="asc")
    reply = messages.data[-1]
    assert reply.role == "assistant" and reply.run_id == run.id
    assert reply.content[0].type == "text"
    assert reply.content[0].text.value == "Found 2 results: Cat video, Dog video"


async def test_async_create_and_poll_takes_scripted_polls(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.text("slow answer", polls=3))
    client = stub_openai.async_client()
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    run = await client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )

    assert run.status == "completed"
    # in_progress, then three extra in_progress polls, then completed
    assert stub_openai.poll_count(run.id) == 5


def test_requires_action_twice_in_one_run(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.tool_call("search_demos", {"query": "a", "limit": None}),
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {"query": "b", "limit": None}),
                stub_openai.call("search_demos", {"query": "c", "limit": None}),
            ]
        ),
        stub_openai.text("done"),
    )
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)
    runs = client.beta.threads.runs

    run = runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    rounds = 0
    while run.status == "requires_action":
        assert run.required_action is not None
        calls = run.required_action.submit_tool_outputs.tool_calls
        rounds += 1
        run = runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=thread_id,
            tool_outputs=[{"tool_call_id": c.id, "output": "ok"} for c in calls],
        )

    assert (rounds, run.status) == (2, "completed")
    steps = runs.steps.list(run.id, thread_id=thread_id, order="asc")
    assert [s.type for s in steps.data] == ["tool_calls", "tool_calls", "message_creation"]


def test_submit_rule_violations(stub_openai: StubOpenAI) -> None:
    stub_openai.script(
        stub_openai.tool_calls(
            [
                stub_openai.call("search_demos", {}, call_id="call_x"),
                stub_openai.call("search_demos", {}, call_id="call_y"),
            ]
        )
    )
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)
    runs = client.beta.threads.runs
    run = runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "requires_action"

    bad: list[list[dict[str, str]]] = [
        [{"tool_call_id": "call_x", "output": "1"}],  # missing one
        [
            {"tool_call_id": "call_x", "output": "1"},
            {"tool_call_id": "call_y", "output": "2"},
            {"tool_call_id": "call_z", "output": "3"},
        ],  # extra
        [
            {"tool_call_id": "call_x", "output": "1"},
            {"tool_call_id": "call_x", "output": "1"},
            {"tool_call_id": "call_y", "output": "2"},
        ],  # duplicate
    ]
    for outputs in bad:
        with pytest.raises(openai.BadRequestError) as info:
            runs.submit_tool_outputs(run.id, thread_id=thread_id, tool_outputs=outputs)  # type: ignore[arg-type]
        assert error_body(info.value)["type"] == "invalid_request_error"
    assert stub_openai.run(run.id)["status"] == "requires_action"

    # The thread is locked while the run is active.
    with pytest.raises(openai.BadRequestError, match=r"while a run .* is active"):
        client.beta.threads.messages.create(thread_id, role="user", content="more")
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        runs.create(thread_id=thread_id, assistant_id=assistant_id)

    # Once expired, the run accepts no outputs and the thread unlocks.
    stub_openai.advance_clock(3600)
    good = [{"tool_call_id": c, "output": "1"} for c in ("call_x", "call_y")]
    with pytest.raises(openai.BadRequestError, match='status "expired"'):
        runs.submit_tool_outputs(run.id, thread_id=thread_id, tool_outputs=good)  # type: ignore[arg-type]
    assert runs.retrieve(run.id, thread_id=thread_id).status == "expired"
    client.beta.threads.messages.create(thread_id, role="user", content="more")


def test_cancel_goes_cancelling_then_cancelled(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)
    runs = client.beta.threads.runs
    run = runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)
    assert run.status == "requires_action"

    cancelling = runs.cancel(run.id, thread_id=thread_id)
    assert cancelling.status == "cancelling"
    assert cancelling.required_action is None
    cancelled = runs.retrieve(run.id, thread_id=thread_id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run"):
        runs.cancel(run.id, thread_id=thread_id)
    with pytest.raises(openai.BadRequestError, match='status "cancelled"'):
        runs.submit_tool_outputs(run.id, thread_id=thread_id, tool_outputs=[])


@pytest.mark.parametrize(
    ("turn", "status", "check"),
    [
        (
            StubOpenAI.run_failed("tool backend down", code="server_error"),
            "failed",
            lambda run: run.last_error.message == "tool backend down",
        ),
        (
            StubOpenAI.error(429),
            "failed",
            lambda run: run.last_error.code == "rate_limit_exceeded",
        ),
        (StubOpenAI.run_expired(), "expired", lambda run: run.required_action is None),
        (
            StubOpenAI.run_incomplete("max_prompt_tokens"),
            "incomplete",
            lambda run: run.incomplete_details.reason == "max_prompt_tokens",
        ),
        (
            StubOpenAI.truncated("half"),
            "incomplete",
            lambda run: run.incomplete_details.reason == "max_completion_tokens",
        ),
        (StubOpenAI.run_cancelled(), "cancelled", lambda run: run.cancelled_at is not None),
        (
            StubOpenAI.content_filtered(),
            "failed",
            lambda run: run.last_error.code == "invalid_prompt",
        ),
    ],
)
def test_scripted_run_outcomes(
    stub_openai: StubOpenAI, turn: StubTurn, status: str, check: Any
) -> None:
    stub_openai.script(turn)
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)

    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)

    assert run.status == status
    assert check(run)
    assert run.usage is not None


def test_streamed_run_events_parse_and_make_no_polls(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client, "find owls")
    seen: list[str] = []
    text: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event: Any) -> None:
            seen.append(event.event)

        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            text.append(delta.value)

    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action"
    assert seen[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert seen[-1] == "thread.run.requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls

    seen.clear()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": DOCS_OUTPUT}],
        event_handler=Handler(),
    ) as stream:
        stream.until_done()
        final_run = stream.get_final_run()
        final_messages = stream.get_final_messages()

    assert final_run.status == "completed"
    assert "thread.message.delta" in seen and "thread.message.completed" in seen
    assert seen[-1] == "thread.run.completed"
    assert "".join(text) == "Found 2 results: Cat video, Dog video"
    assert final_messages[0].content[0].type == "text"
    assert stub_openai.poll_count() == 0


async def test_async_streamed_run(stub_openai: StubOpenAI) -> None:
    stub_openai.script(stub_openai.text("streamed reply"))
    client = stub_openai.async_client()
    assistant = await client.beta.assistants.create(model="gpt-4o")
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=AsyncAssistantEventHandler()
    ) as stream:
        pieces = [delta async for delta in stream.text_deltas]
        run = await stream.get_final_run()

    assert "".join(pieces) == "streamed reply"
    assert run.status == "completed"
    assert stub_openai.poll_count() == 0


# ---------------------------------------------------------------------------
# Records, secrets, concurrency, default arguments
# ---------------------------------------------------------------------------


def test_records_hold_no_secrets(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    (record,) = stub_openai.requests
    assert isinstance(record, RecordedOpenAIRequest)
    assert (record.method, record.path, record.status) == ("POST", "/v1/chat/completions", 200)
    assert record.body["messages"][0]["content"] == "hi"
    assert "authorization" not in record.headers
    assert "sk-stub" not in repr(record) and "sk-stub" not in repr(stub_openai)

    stranger = StubOpenAI(api_key="sk-secret-value")
    wrong = stranger.client(api_key="sk-wrong-value")
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.models.list()
    assert "sk-wrong-value" not in str(info.value)
    assert "sk-secret-value" not in repr(stranger)


def test_requests_to_patterns(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    assistant_id, thread_id = _assistant_thread(client)
    client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id)

    assert len(stub_openai.requests_to("/v1/threads/*/runs")) == 1
    assert len(stub_openai.requests_to("/v1/threads/*/runs/*", method="GET")) == 2
    assert len(stub_openai.requests_to("/v1/threads/**")) == 3
    assert stub_openai.poll_count() == 2


def test_concurrent_requests_are_safe() -> None:
    stub = StubOpenAI()
    client = stub.client()
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            done = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}], tools=[chat_tool()]
            )
            calls = done.choices[0].message.tool_calls or []
            with lock:
                ids.extend(c.id for c in calls)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(ids) == 30 and len(set(ids)) == 30
    assert len(stub.requests) == 30


def test_default_arguments_follow_the_schema(stub_openai: StubOpenAI) -> None:
    params = {
        "type": "object",
        "properties": {
            "inputs": {
                "type": "object",
                "properties": {
                    "category": {"type": "string", "enum": ["video", "article"]},
                    "search_text": {"type": "string"},
                    "published_after": {"type": "string", "format": "date"},
                },
                "required": ["search_text", "category"],
            },
            "page_size": {"type": "integer", "minimum": 1, "maximum": 3},
            "optional_flag": {"type": "boolean"},
        },
        "required": ["inputs", "page_size"],
    }
    client = stub_openai.client()

    done = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "red shoes"}],
        tools=[chat_tool("lookup", params)],
    )

    (call,) = done.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {
        "inputs": {"search_text": "red shoes", "category": "video"},
        "page_size": 3,
    }


def test_tool_choice_steers_the_default_model(stub_openai: StubOpenAI) -> None:
    client = stub_openai.client()
    tools: Any = [chat_tool("first_tool"), chat_tool("second_tool")]
    messages: Any = [{"role": "user", "content": "hey"}]

    none = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=tools, tool_choice="none"
    )
    named = client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "second_tool"}},
    )

    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content == "You said: hey"
    (call,) = named.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "second_tool"


def test_unknown_path_is_404_in_openai_shape(stub_openai: StubOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        stub_openai.client().embeddings.create(model="text-embedding-3-small", input="x")
    assert error_body(info.value)["type"] == "invalid_request_error"


class _Trip(BaseModel):
    city: str
    days: int
    tags: list[str]
    note: str | None


def test_the_rule_based_model_answers_structured_outputs(stub_openai: StubOpenAI) -> None:
    # parse() validates the answer against the model: the stub's must fit the schema.
    client = stub_openai.client()

    chat = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Paris"}], response_format=_Trip
    )
    responses = client.responses.parse(model="gpt-4o", input="Paris", text_format=_Trip)
    json_mode = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Paris"}],
        response_format={"type": "json_object"},
    )

    for parsed in (chat.choices[0].message.parsed, responses.output_parsed):
        assert isinstance(parsed, _Trip) and "Paris" in parsed.city
    assert json.loads(json_mode.choices[0].message.content or "") == {"answer": "You said: Paris"}
    stub_openai.script(stub_openai.text('{"city": "Rome", "days": 2, "tags": [], "note": null}'))
    scripted = client.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], response_format=_Trip
    )
    assert scripted.choices[0].message.parsed == _Trip(city="Rome", days=2, tags=[], note=None)
