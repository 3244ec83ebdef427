"""Reading tool calls from every OpenAI API shape and answering in the same shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.beta.threads.required_action_function_tool_call import (
    Function as RequiredFunction,
)
from openai.types.beta.threads.required_action_function_tool_call import (
    RequiredActionFunctionToolCall,
)
from openai.types.beta.threads.run import RequiredAction, RequiredActionSubmitToolOutputs, Run
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageFunctionToolCall
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.responses import Response, ResponseFunctionToolCall, ResponseOutputMessage

from mixpeek_openai.calls import ToolCall, format_output, normalize_calls
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import MixpeekTools

SEARCH = "search_product_demo"
ARGS = json.dumps({"query": "sso setup"})


def chat_call(call_id: str, name: str = SEARCH) -> ChatCompletionMessageFunctionToolCall:
    return ChatCompletionMessageFunctionToolCall(
        id=call_id, type="function", function=Function(name=name, arguments=ARGS)
    )


def assistants_call(call_id: str) -> RequiredActionFunctionToolCall:
    return RequiredActionFunctionToolCall(
        id=call_id, type="function", function=RequiredFunction(name=SEARCH, arguments=ARGS)
    )


def responses_call(call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call", call_id=call_id, name=SEARCH, arguments=ARGS, id=f"fc_{call_id}"
    )


def run_with(calls: list[RequiredActionFunctionToolCall]) -> Run:
    return Run.model_construct(
        id="run_1",
        object="thread.run",
        status="requires_action",
        required_action=RequiredAction(
            type="submit_tool_outputs",
            submit_tool_outputs=RequiredActionSubmitToolOutputs(tool_calls=calls),
        ),
    )


def response_with(items: list[Any]) -> Response:
    return Response.model_construct(id="resp_1", object="response", output=items)


def message() -> ResponseOutputMessage:
    return ResponseOutputMessage.model_construct(
        id="msg_1", type="message", role="assistant", status="completed", content=[]
    )


@pytest.fixture(scope="module")
def tools() -> Iterator[MixpeekTools]:
    with FakeMixpeek() as fake:
        yield MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"])


def test_chat_objects_dicts_and_messages() -> None:
    as_dict = chat_call("b").model_dump()
    calls = normalize_calls([chat_call("a"), as_dict])
    assert calls == [
        ToolCall("a", SEARCH, ARGS, "chat"),
        ToolCall("b", SEARCH, ARGS, "chat"),
    ]
    msg = ChatCompletionMessage(role="assistant", content=None, tool_calls=[chat_call("c")])
    assert [c.call_id for c in normalize_calls(msg)] == ["c"]
    assert normalize_calls(msg.model_dump())[0].call_id == "c"
    assert normalize_calls(ChatCompletionMessage(role="assistant", content="hi")) == []


def test_assistants_calls_runs_and_required_actions() -> None:
    calls = [assistants_call("a"), assistants_call("b")]
    run = run_with(calls)
    for given in (calls, run, run.required_action, run.model_dump()):
        normalized = normalize_calls(given)
        assert [(c.call_id, c.style) for c in normalized] == [
            ("a", "assistants"),
            ("b", "assistants"),
        ]
    # Plain dicts look like Chat calls; style= says otherwise.
    dicts = [c.model_dump() for c in calls]
    assert {c.style for c in normalize_calls(dicts, style="assistants")} == {"assistants"}
    done = Run.model_construct(id="run_2", object="thread.run", required_action=None)
    assert normalize_calls(done) == []


def test_responses_items_output_lists_and_responses() -> None:
    items = [message(), responses_call("a"), responses_call("b")]
    for given in (items, response_with(items), [i.model_dump() for i in items]):
        normalized = normalize_calls(given)
        assert [(c.call_id, c.style, c.item_id) for c in normalized] == [
            ("a", "responses", "fc_a"),
            ("b", "responses", "fc_b"),
        ]


def test_output_shapes() -> None:
    assert format_output("c1", "{}", "chat") == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "{}",
    }
    assert format_output("c1", "{}", "assistants") == {"tool_call_id": "c1", "output": "{}"}
    assert format_output("c1", "{}", "responses") == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "{}",
    }


def test_calls_without_ids_and_wrong_inputs_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no id"):
        normalize_calls([{"type": "function", "function": {"name": "x", "arguments": "{}"}}])
    with pytest.raises(ConfigurationError, match="call_id"):
        normalize_calls([{"type": "function_call", "name": "x", "arguments": "{}"}])
    with pytest.raises(ConfigurationError):
        normalize_calls("tool_calls")
    with pytest.raises(ConfigurationError):
        normalize_calls(42)


def test_custom_tool_calls_are_still_answered(tools: MixpeekTools) -> None:
    custom = {"id": "x1", "type": "custom", "custom": {"name": "grep", "input": "foo"}}
    [output] = tools.handle([custom])
    assert output["tool_call_id"] == "x1"
    assert json.loads(output["content"])["error"]["type"] == "unknown_tool"


@pytest.mark.parametrize("api", ["chat", "assistants", "responses"])
async def test_handle_answers_in_the_shape_of_the_input(tools: MixpeekTools, api: str) -> None:
    given: Any
    if api == "chat":
        given = [chat_call("a"), chat_call("b", name="nope")]
    elif api == "assistants":
        given = run_with([assistants_call("a"), assistants_call("b")])
    else:
        given = response_with([message(), responses_call("a"), responses_call("b")])

    sync_outputs = tools.handle(given)
    async_outputs = await tools.ahandle(given)

    for outputs in (sync_outputs, async_outputs):
        if api == "chat":
            assert [(o["role"], o["tool_call_id"]) for o in outputs] == [
                ("tool", "a"),
                ("tool", "b"),
            ]
            assert "unknown_tool" in outputs[1]["content"]
        elif api == "assistants":
            assert [sorted(o) for o in outputs] == [["output", "tool_call_id"]] * 2
            assert [o["tool_call_id"] for o in outputs] == ["a", "b"]
        else:
            assert [(o["type"], o["call_id"]) for o in outputs] == [
                ("function_call_output", "a"),
                ("function_call_output", "b"),
            ]
