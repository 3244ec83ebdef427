"""OpenAI-side servers we did not write, and a model that sends garbage.

The real ``openai`` client talks to :class:`Scripted` (an ``httpx2.MockTransport`` that
answers whatever the test scripts: odd but valid replies, and replies no API should send)
or to :class:`StubOpenAI`; :class:`FakeMixpeek` is the Mixpeek side. Every request the
loops send to :class:`Scripted` is checked against OpenAI's OpenAPI description with a
checker of this module's own, so each test says which request was off-spec.

What the loops must do with all of it: answer every call id once, in order; turn the
model's mistakes into outputs it can fix; raise only the typed errors of
:mod:`mixpeek_openai.errors` (or the SDK's own API errors) for replies they cannot use,
after cancelling whatever they started; never leak the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from mixpeek_openai import MixpeekTools, run_assistant, run_chat, run_responses
from mixpeek_openai.assistants import create_assistant
from mixpeek_openai.chat import arun_chat
from mixpeek_openai.errors import (
    ConfigurationError,
    ContentFilteredError,
    MixpeekOpenAIError,
    OutputTruncatedError,
    ResponseDeadlineExceededError,
    ResponseFailedError,
    RunDeadlineExceededError,
    RunExpiredError,
)
from mixpeek_openai.retries import ManualClock
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.testing._openapi import OpenAPIRequestChecker

MIXPEEK_KEY = "mxpk-ADVERSARIAL-SECRET-0123456789abcdef"
OPENAI_KEY = "sk-ADVERSARIAL-openai-key-9f8e7d6c5b4a"
DEMO = "search_product_demo"
CATALOG = "search_catalog"
USER = [{"role": "user", "content": "How do I set up SSO?"}]
SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "openai" / "openapi.json"

# A typed failure is fine; anything else (AttributeError, TypeError, ValueError...) is not.
TYPED = (MixpeekOpenAIError, openai.APIError)


# -- the OpenAI side we script ---------------------------------------------------------------


Answer = Any  # dict (JSON 200), bytes (SSE 200), httpx2.Response, or a callable of the request


class Scripted:
    """An OpenAI API that answers from per-route queues (the last answer of a queue repeats).

    Routes are ``(method, path suffix)``; the first matching route with answers wins.
    """

    def __init__(self, routes: dict[tuple[str, str], list[Answer]] | None = None) -> None:
        self.routes = {k: list(v) for k, v in (routes or {}).items()}
        self.requests: list[tuple[str, str, Any]] = []

    @classmethod
    def chat(cls, *answers: Answer) -> Scripted:
        return cls({("POST", "/chat/completions"): list(answers)})

    @classmethod
    def responses(cls, *answers: Answer, **routes: list[Answer]) -> Scripted:
        table: dict[tuple[str, str], list[Answer]] = {("POST", "/responses"): list(answers)}
        for name, queue in routes.items():
            method, suffix = {
                "retrieve": ("GET", "/responses/resp_bg"),
                "cancel": ("POST", "/cancel"),
            }[name]
            table = {(method, suffix): queue, **table}
        return cls(table)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        for (method, suffix), queue in self.routes.items():
            if method == request.method and request.url.path.endswith(suffix) and queue:
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if callable(answer):
                    answer = answer(request, body)
                if isinstance(answer, httpx2.Response):
                    return answer
                if isinstance(answer, bytes):
                    return httpx2.Response(
                        200, content=answer, headers={"content-type": "text/event-stream"}
                    )
                return httpx2.Response(200, json=answer)
        return httpx2.Response(
            500, json={"error": {"message": f"no route for {request.url.path}", "type": "x"}}
        )

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=OPENAI_KEY,
            base_url="https://api.openai.test/v1",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(self.handler)),
        )

    def async_client(self) -> openai.AsyncOpenAI:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            await request.aread()
            return self.handler(request)

        return openai.AsyncOpenAI(
            api_key=OPENAI_KEY,
            base_url="https://api.openai.test/v1",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )

    def bodies(self, suffix: str, method: str = "POST") -> list[Any]:
        return [b for m, p, b in self.requests if m == method and p.endswith(suffix)]

    def paths(self) -> list[tuple[str, str]]:
        return [(m, p.split("/v1", 1)[-1]) for m, p, _ in self.requests]


# -- Chat Completions bodies ---------------------------------------------------------------


def completion(
    message: dict[str, Any] | None = None,
    finish: str | None = "stop",
    *,
    choices: list[Any] | None = None,
    usage: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    base_message = {"role": "assistant", "content": None, "refusal": None, **(message or {})}
    body: dict[str, Any] = {
        "id": "chatcmpl-adv",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": choices
        if choices is not None
        else [{"index": 0, "message": base_message, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    body.update(extra)
    return body


def tool_call(call_id: Any, name: Any, arguments: Any, kind: str = "function") -> dict[str, Any]:
    return {"id": call_id, "type": kind, "function": {"name": name, "arguments": arguments}}


def calls_turn(*calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return completion({"content": content, "tool_calls": list(calls)}, "tool_calls")


DONE = completion({"content": "done"})


def sse(*events: Any, done: bool = True) -> bytes:
    out = []
    for event in events:
        out.append(event if isinstance(event, bytes) else b"data: " + json.dumps(event).encode())
        out.append(b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    choices: list[Any] | None = None,
    usage: Any = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-adv",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": choices
        if choices is not None
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def fragment(
    index: Any, call_id: str | None = None, name: str | None = None, args: Any = None
) -> dict[str, Any]:
    frag: dict[str, Any] = {"index": index}
    if call_id is not None:
        frag.update(id=call_id, type="function")
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    if function:
        frag["function"] = function
    return chunk({"tool_calls": [frag]})


STREAM_DONE = sse(chunk({"role": "assistant", "content": "done"}), chunk({}, "stop"))


# -- Responses bodies ----------------------------------------------------------------------


def response(
    output: list[Any] | None = None,
    status: str | None = "completed",
    *,
    rid: str = "resp_1",
    **kw: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-4o",
        "output": output if output is not None else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    body.update(kw)
    return body


def message_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(call_id: str, name: Any, arguments: Any, item_id: str | None = None) -> Any:
    return {
        "type": "function_call",
        "id": item_id or f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


ANSWER = response([message_item("done")], rid="resp_2")


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": 0, **fields}


# -- Assistants bodies ---------------------------------------------------------------------


def run(status: Any, required_action: Any = None, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "run_1",
        "object": "thread.run",
        "created_at": 1,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": status,
        "required_action": required_action,
        "last_error": None,
        "expires_at": None,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "model": "gpt-4o",
        "instructions": "",
        "tools": [],
        "metadata": {},
        "usage": None,
        "parallel_tool_calls": True,
        "response_format": "auto",
        "tool_choice": "auto",
        "truncation_strategy": None,
    }
    body.update(kw)
    return body


def requires(*calls: Any) -> dict[str, Any]:
    return run(
        "requires_action",
        {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": list(calls)}},
    )


MESSAGES = {
    "object": "list",
    "data": [
        {
            "id": "msg_1",
            "object": "thread.message",
            "created_at": 1,
            "thread_id": "thread_1",
            "role": "assistant",
            "content": [{"type": "text", "text": {"value": "final", "annotations": []}}],
            "assistant_id": "asst_1",
            "run_id": "run_1",
            "attachments": [],
            "metadata": {},
            "status": "completed",
        }
    ],
    "first_id": "msg_1",
    "last_id": "msg_1",
    "has_more": False,
}


def assistants(
    create: Answer, polls: list[Answer], submits: list[Answer] | None = None
) -> Scripted:
    return Scripted(
        {
            ("POST", "/submit_tool_outputs"): submits or [run("in_progress")],
            ("POST", "/cancel"): [run("cancelled")],
            ("POST", "/threads/thread_1/runs"): [create],
            ("POST", "/threads"): [{"id": "thread_1", "object": "thread", "created_at": 1}],
            ("GET", "/runs/run_1"): polls,
            ("GET", "/messages"): [MESSAGES],
        }
    )


def assistant(server: Scripted, **kw: Any) -> Any:
    clock = ManualClock()
    kw.setdefault("poll_interval_s", 1.0)
    return run_assistant(
        server.client(),
        kw.pop("tools"),
        assistant_id="asst_1",
        message="hi",
        sleep=clock.sleep,
        clock=clock.now,
        **kw,
    )


def respond(server: Scripted, tools: Any, **kw: Any) -> Any:
    clock = ManualClock()
    return run_responses(
        server.client(), tools, model="gpt-4o", input="hi", sleep=clock.sleep, clock=clock.now, **kw
    )


# -- fixtures and checks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek(api_key=MIXPEEK_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def module_tools(fake: FakeMixpeek) -> Iterator[MixpeekTools]:
    with MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos", "ret_catalog"]) as t:
        yield t


@pytest.fixture
def tools(module_tools: MixpeekTools, fake: FakeMixpeek) -> MixpeekTools:
    fake.clear_requests()
    return module_tools


@pytest.fixture(scope="module")
def spec() -> OpenAPIRequestChecker | None:
    return OpenAPIRequestChecker.from_path(SPEC) if SPEC.is_file() else None


def spec_problems(server: Scripted, spec: OpenAPIRequestChecker | None) -> list[str]:
    if spec is None:
        return []
    found = []
    for method, path, body in server.requests:
        if body is not None:
            found += [f"{method} {path}: {p}" for p in spec.check(method, path, body)]
    return found


def error_type(output: str) -> str:
    return str(json.loads(output)["error"]["type"])


def assert_no_secret(*things: Any) -> None:
    for thing in things:
        text = repr(thing)
        assert MIXPEEK_KEY not in text
        assert OPENAI_KEY not in text


def chat_tool_messages(messages: list[dict[str, Any]]) -> list[str]:
    return [m["tool_call_id"] for m in messages if m.get("role") == "tool"]


# ==========================================================================================
# The dispatcher fed garbage directly
# ==========================================================================================

GARBAGE_ARGUMENTS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("whitespace", "  \n\t "),
    ("trailing_garbage", '{"query": "a"} xyz'),
    ("two_objects", '{"query": "a"}{"query": "b"}'),
    ("array", "[1, 2]"),
    ("string", '"sso"'),
    ("number", "5"),
    ("null", "null"),
    ("nan", '{"query": NaN}'),
    ("bom", '\ufeff{"query": "a"}'),
    ("control_char", '{"query": "a\u0000b"}'),
    ("args_none", None),
    ("args_int", 5),
    ("args_list", ["a"]),
    ("deep", '{"query": ' + "[" * 10_000 + "]" * 10_000 + "}"),
    ("unbalanced", '{"query": ' + "[" * 100_000),
    ("huge", '{"query": "' + "a" * 3_000_000 + '"}'),
    ("long_int", '{"query": "a", "limit": ' + "9" * 5000 + "}"),
    ("fractional_limit", '{"query": "a", "limit": 2.5}'),
    ("operator_object", '{"query": {"$gt": 1}}'),
]


def test_garbage_arguments_get_one_fixable_output_each_in_order(tools: MixpeekTools) -> None:
    calls = [tool_call(f"call_{label}", CATALOG, args) for label, args in GARBAGE_ARGUMENTS]
    calls.append(tool_call("call_ok", CATALOG, '{"query": "sso"}'))

    results = tools.dispatch(calls)

    assert [r.call_id for r in results] == [c["id"] for c in calls]
    for result in results[:-1]:
        assert result.error is not None and result.error.kind == "invalid_arguments", result
        assert result.attempts == 0
        payload = json.loads(result.output)["error"]
        assert payload["hint"] and len(result.output) < 2000, result.call_id
    assert results[-1].ok
    assert_no_secret(results)


def test_async_garbage_arguments_match_the_sync_outputs(tools: MixpeekTools) -> None:
    calls = [tool_call(f"call_{label}", CATALOG, args) for label, args in GARBAGE_ARGUMENTS]
    sync = tools.handle(calls)
    async_ = asyncio.run(tools.ahandle(calls))
    assert async_ == sync
    assert [o["tool_call_id"] for o in async_] == [c["id"] for c in calls]


@pytest.mark.parametrize(
    "name",
    [None, 5, {"a": 1}, "", "x" * 1_000_000, "search_catalog\u0000", "../../etc/passwd"],
    ids=["none", "int", "dict", "empty", "one_mb", "nul", "path"],
)
def test_unknown_or_garbage_tool_names_are_bounded_unknown_tool_outputs(
    tools: MixpeekTools, fake: FakeMixpeek, name: Any
) -> None:
    [out] = tools.handle([tool_call("call_1", name, '{"query": "a"}')])
    assert out["tool_call_id"] == "call_1"
    assert error_type(out["content"]) == "unknown_tool"
    assert CATALOG in out["content"] and len(out["content"]) < 1000
    assert fake.requests_for("execute") == []


def test_non_utf8_bytes_arguments_are_answered(tools: MixpeekTools) -> None:
    [result] = tools.dispatch([tool_call("call_1", CATALOG, b'{"query": "\xff\xfe"}')])
    assert result.call_id == "call_1"
    assert result.error is None or result.error.kind != "internal_error"


def test_repeated_call_ids_through_handle_run_once(tools: MixpeekTools, fake: FakeMixpeek) -> None:
    results = tools.dispatch(
        [tool_call("dup", CATALOG, '{"query": "a"}'), tool_call("dup", CATALOG, '{"query": "b"}')]
    )
    assert [r.call_id for r in results] == ["dup", "dup"]
    assert results[0].ok
    assert results[1].error is not None and results[1].error.kind == "duplicate_call"
    assert len(fake.requests_for("execute")) == 1


@pytest.mark.parametrize(
    "calls",
    [5, "tool_calls", b"bytes", [{"id": 7, "type": "function", "function": {"name": CATALOG}}]],
    ids=["int", "str", "bytes", "int_id"],
)
def test_unreadable_call_lists_raise_configuration_errors(tools: MixpeekTools, calls: Any) -> None:
    with pytest.raises(ConfigurationError):
        tools.handle(calls)


@pytest.mark.parametrize(
    "call",
    [{"id": "call_1"}, {"id": "call_1", "type": "mcp_call"}, {"id": "call_1", "function": None}],
    ids=["bare", "other_type", "function_null"],
)
def test_a_chat_tool_call_without_a_function_is_not_dropped(
    tools: MixpeekTools, call: dict[str, Any]
) -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    try:
        outputs = tools.handle(message)
    except ConfigurationError:
        return
    assert [o["tool_call_id"] for o in outputs] == ["call_1"]


def test_a_boolean_page_size_is_a_fixable_mistake(tools: MixpeekTools, fake: FakeMixpeek) -> None:
    [result] = tools.dispatch([tool_call("call_1", CATALOG, '{"query": "a", "limit": true}')])
    assert result.error is not None and result.error.kind == "invalid_arguments"
    assert fake.requests_for("execute") == []


# ==========================================================================================
# Chat Completions: odd but valid replies
# ==========================================================================================


@pytest.fixture(params=["sync", "async"])
def chat(request: pytest.FixtureRequest, tools: MixpeekTools) -> Callable[..., Any]:
    def go(server: Scripted, **kw: Any) -> Any:
        kw.setdefault("model", "gpt-4o")
        kw.setdefault("messages", USER)
        if request.param == "sync":
            return run_chat(server.client(), tools, **kw)
        return asyncio.run(arun_chat(server.async_client(), tools, **kw))

    return go


def test_odd_tool_calls_keep_the_conversation_valid(
    chat: Any, spec: OpenAPIRequestChecker | None, fake: FakeMixpeek
) -> None:
    server = Scripted.chat(
        calls_turn(
            tool_call("c_empty", CATALOG, ""),
            tool_call("c_ws", CATALOG, "   "),
            tool_call("c_trailing", CATALOG, '{"query": "a"} }'),
            tool_call("c_two", CATALOG, '{"query": "a"}{"query": "b"}'),
            tool_call("c_array", CATALOG, '["a"]'),
            tool_call("c_unknown", "drop_all_tables", "{}"),
            tool_call("c_dup", CATALOG, '{"query": "a"}'),
            tool_call("c_dup", CATALOG, '{"query": "b"}'),
            tool_call("c_ok", CATALOG, '{"query": "sso"}'),
            content="Let me look that up.",
        ),
        DONE,
    )

    result = chat(server)

    assert result.content == "done"
    ids = ["c_empty", "c_ws", "c_trailing", "c_two", "c_array", "c_unknown", "c_dup", "c_ok"]
    assert [c["id"] for c in result.messages[1]["tool_calls"]] == ids
    assert result.messages[1]["content"] == "Let me look that up."
    assert chat_tool_messages(result.messages) == ids
    assert [c.error.kind if c.error else "ok" for c in result.calls] == [
        *["invalid_arguments"] * 5,
        "unknown_tool",
        "ok",
        "duplicate_call",
        "ok",
    ]
    assert len(fake.requests_for("execute")) == 2
    assert spec_problems(server, spec) == []
    assert_no_secret(result.calls, result.events, result.messages)


def test_n_choices_missing_usage_and_unknown_fields_are_tolerated(
    chat: Any, spec: OpenAPIRequestChecker | None
) -> None:
    first = completion(
        choices=[
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [tool_call("c1", CATALOG, '{"query": "a"}')],
                    "surprise": {"nested": [1, 2]},
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "other"},
                "finish_reason": "stop",
            },
        ],
        usage=False,
        service_tier="default",
        brand_new_field={"x": 1},
    )
    server = Scripted.chat(first, completion({"content": "done"}, usage=False))

    result = chat(server)

    assert result.content == "done" and result.turns == 2
    assert chat_tool_messages(result.messages) == ["c1"]
    assert result.usage.total_tokens == 0
    assert spec_problems(server, spec) == []


def test_a_refusal_ends_the_loop_with_the_refusal(chat: Any) -> None:
    result = chat(Scripted.chat(completion({"refusal": "I can't help with that."})))
    assert result.content == "" and result.refusal == "I can't help with that."


@pytest.mark.parametrize(
    ("finish", "error"),
    [("length", OutputTruncatedError), ("content_filter", ContentFilteredError)],
)
def test_cut_off_replies_with_tool_calls_raise_typed_and_send_nothing(
    chat: Any, fake: FakeMixpeek, finish: str, error: type[Exception]
) -> None:
    server = Scripted.chat(
        completion({"tool_calls": [tool_call("c1", CATALOG, '{"query": "a')]}, finish), DONE
    )
    with pytest.raises(error) as raised:
        chat(server)
    assert raised.value.partial["tool_calls"][0]["id"] == "c1"
    assert fake.requests_for("execute") == []
    assert len(server.requests) == 1
    assert_no_secret(raised.value)


def test_arguments_sent_as_an_object_are_replayed_as_a_string(
    chat: Any, spec: OpenAPIRequestChecker | None
) -> None:
    server = Scripted.chat(calls_turn(tool_call("c1", CATALOG, {"query": "a"})), DONE)
    result = chat(server)
    assert result.content == "done"
    assert spec_problems(server, spec) == []


@pytest.mark.parametrize("call_id", [None, "", 5], ids=["missing", "empty", "int"])
def test_a_server_tool_call_without_an_id_is_not_a_configuration_error(
    chat: Any, call_id: Any
) -> None:
    call = tool_call(call_id, CATALOG, '{"query": "a"}')
    if call_id is None:
        del call["id"]
    server = Scripted.chat(calls_turn(call), DONE)
    try:
        chat(server)
    except ConfigurationError as exc:
        pytest.fail(f"ConfigurationError for the server's reply: {exc}")
    except TYPED:
        pass


@pytest.mark.parametrize(
    "reply",
    [completion(choices=[]), completion({"content": None}, "tool_calls")],
    ids=["zero_choices", "tool_calls_without_calls"],
)
def test_an_empty_reply_is_not_a_clean_answer(chat: Any, reply: dict[str, Any]) -> None:
    with pytest.raises(TYPED):
        chat(Scripted.chat(reply, DONE))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_custom_tool_call_is_kept_as_it_was_made(chat: Any, stream: bool) -> None:
    custom = {"id": "c1", "type": "custom", "custom": {"name": "lookup", "input": "sso"}}
    if stream:
        first: Answer = sse(
            chunk({"tool_calls": [{"index": 0, **custom}]}), chunk({}, "tool_calls")
        )
        done: Answer = STREAM_DONE
    else:
        first, done = calls_turn(custom), DONE
    result = chat(Scripted.chat(first, done), stream=stream)
    [call] = result.messages[1]["tool_calls"]
    assert call["type"] == "custom" or call["function"]["name"] == "lookup"
    assert "lookup" in result.calls[0].output


@pytest.mark.parametrize(
    "reply",
    [
        completion(choices=[{"index": 0, "message": None, "finish_reason": "stop"}]),
        completion(choices=[{"index": 0, "finish_reason": "stop"}]),
        [1, 2],
        "hello",
    ],
    ids=["message_null", "message_missing", "array_body", "string_body"],
)
def test_a_garbled_completion_raises_a_typed_error(chat: Any, reply: Any) -> None:
    with pytest.raises(TYPED):
        chat(Scripted.chat(reply))


# ==========================================================================================
# Chat Completions: streaming oddities
# ==========================================================================================


def test_keepalives_usage_only_chunks_and_index_gaps_are_handled(
    chat: Any, spec: OpenAPIRequestChecker | None
) -> None:
    first = b": keep-alive\n\n" + sse(
        b": ping",
        fragment(0, "c1", CATALOG, ""),
        fragment(0, args='{"qu'),
        b": ping",
        fragment(2, "c3", DEMO, '{"query": "b"}'),
        fragment(0, args='ery": "a"}'),
        chunk(choices=[]),
        chunk({}, "tool_calls"),
        chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
    )
    server = Scripted.chat(first, STREAM_DONE)

    result = chat(server, stream=True)

    assert result.content == "done"
    assert [c.call_id for c in result.calls] == ["c1", "c3"]
    assert all(c.ok for c in result.calls)
    assert result.calls[0].arguments == {"query": "a"}
    assert chat_tool_messages(result.messages) == ["c1", "c3"]
    assert result.usage.total_tokens == 5
    deltas = [e for e in result.events if e.type == "tool_call_delta"]
    assert {e.call_id for e in deltas} == {"c1", "c3"}
    assert spec_problems(server, spec) == []


def test_a_name_repeated_in_every_fragment_is_not_doubled(chat: Any) -> None:
    first = sse(
        fragment(0, "c1", CATALOG, ""),
        fragment(0, "c1", CATALOG, '{"query": "a"}'),
        chunk({}, "tool_calls"),
    )
    result = chat(Scripted.chat(first, STREAM_DONE), stream=True)
    assert [c.name for c in result.calls] == [CATALOG] and result.calls[0].ok


def test_a_stream_error_event_raises_the_sdk_error(chat: Any) -> None:
    with pytest.raises(openai.APIError):
        chat(
            Scripted.chat(sse({"error": {"message": "boom", "type": "server_error"}})), stream=True
        )


def test_a_tool_name_split_across_chunks_is_reassembled(chat: Any) -> None:
    first = sse(
        fragment(0, "c1", "search_", ""),
        fragment(0, None, "catalog", '{"query": '),
        fragment(0, args='"a"}'),
        chunk({}, "tool_calls"),
    )
    result = chat(Scripted.chat(first, STREAM_DONE), stream=True)
    assert [c.name for c in result.calls] == [CATALOG]
    assert result.calls[0].ok


@pytest.mark.parametrize(
    "first",
    [
        sse(chunk({"role": "assistant", "content": "The answer is"}), done=False),
        sse(fragment(0, "c1", CATALOG, '{"query": "a"}'), done=False),
        b"",
    ],
    ids=["text", "tool_call", "empty"],
)
def test_a_stream_cut_before_its_finish_reason_is_not_a_clean_stop(
    chat: Any, fake: FakeMixpeek, first: bytes
) -> None:
    server = Scripted.chat(first, STREAM_DONE)
    try:
        result = chat(server, stream=True)
    except TYPED:
        return
    assert result.finish_reason != "stop"
    assert fake.requests_for("execute") == []


@pytest.mark.parametrize("mixed", [False, True], ids=["all_missing", "mixed"])
def test_fragments_without_an_index_are_kept_apart(chat: Any, mixed: bool) -> None:
    def frag(index: int, call_id: str, query: str) -> dict[str, Any]:
        body = fragment(index, call_id, CATALOG, json.dumps({"query": query}))
        if not mixed or index:
            del body["choices"][0]["delta"]["tool_calls"][0]["index"]
        return body

    first = sse(frag(0, "c1", "a"), frag(1, "c2", "b"), chunk({}, "tool_calls"))
    result = chat(Scripted.chat(first, STREAM_DONE), stream=True)
    assert [c.call_id for c in result.calls] == ["c1", "c2"]
    assert all(c.ok for c in result.calls)


@pytest.mark.parametrize(
    "first",
    [
        sse(chunk(choices=[{"index": 0, "delta": None, "finish_reason": None}]), chunk({}, "stop")),
        sse(chunk(choices=[{"index": 0, "finish_reason": "stop"}])),
        sse(fragment(0, "c1", CATALOG, {"query": "a"}), chunk({}, "tool_calls")),
    ],
    ids=["delta_null", "delta_missing", "arguments_object"],
)
def test_garbled_stream_chunks_do_not_raise_untyped(chat: Any, first: bytes) -> None:
    with contextlib.suppress(*TYPED):
        chat(Scripted.chat(first, STREAM_DONE), stream=True)


# ==========================================================================================
# Responses API
# ==========================================================================================


def test_odd_function_calls_and_reasoning_items_replay_validly(
    tools: MixpeekTools, spec: OpenAPIRequestChecker | None
) -> None:
    first = response(
        [
            {"type": "reasoning", "id": "rs_1", "summary": [], "status": "completed"},
            function_call("c_trailing", CATALOG, '{"query": "a"} junk'),
            function_call("c_array", CATALOG, "[]"),
            function_call("c_empty", CATALOG, ""),
            function_call("c_unknown", "nope", "{}"),
            function_call("c_ok", CATALOG, '{"query": "sso"}'),
            message_item("Checking."),
        ]
    )
    server = Scripted.responses(first, ANSWER)

    result = respond(server, tools, chain="replay")

    assert result.content == "done"
    ids = ["c_trailing", "c_array", "c_empty", "c_unknown", "c_ok"]
    assert [c.call_id for c in result.calls] == ids
    outputs = [i["call_id"] for i in result.items if i.get("type") == "function_call_output"]
    assert outputs == ids
    assert [c.ok for c in result.calls] == [False, False, False, False, True]
    assert spec_problems(server, spec) == []
    assert_no_secret(result.calls, result.events, result.items)


@pytest.mark.parametrize(
    ("details", "error"),
    [
        ({"reason": "max_output_tokens"}, OutputTruncatedError),
        ({"reason": "content_filter"}, ContentFilteredError),
        (None, ResponseFailedError),
        ({"reason": "something_new"}, ResponseFailedError),
    ],
    ids=["tokens", "filter", "no_details", "new_reason"],
)
def test_incomplete_responses_raise_typed_and_run_no_tools(
    tools: MixpeekTools, fake: FakeMixpeek, details: Any, error: type[Exception]
) -> None:
    first = response(
        [function_call("c1", CATALOG, '{"query": "a"}')],
        status="incomplete",
        incomplete_details=details,
    )
    with pytest.raises(error):
        respond(Scripted.responses(first, ANSWER), tools)
    assert fake.requests_for("execute") == []


@pytest.mark.parametrize(
    "item",
    [
        function_call("c1", CATALOG, {"query": "a"}),
        function_call("c1", None, '{"query": "a"}'),
        function_call("c1", CATALOG, None),
    ],
    ids=["arguments_object", "name_null", "arguments_null"],
)
def test_replayed_function_calls_are_valid_input(
    tools: MixpeekTools, spec: OpenAPIRequestChecker | None, item: dict[str, Any]
) -> None:
    server = Scripted.responses(response([item]), ANSWER)
    respond(server, tools, chain="replay")
    assert spec_problems(server, spec) == []


@pytest.mark.parametrize("call_id", [None, ""], ids=["missing", "empty"])
def test_a_function_call_without_call_id_is_not_a_configuration_error(
    tools: MixpeekTools, call_id: Any
) -> None:
    item = function_call("x", CATALOG, '{"query": "a"}')
    if call_id is None:
        del item["call_id"]
    else:
        item["call_id"] = call_id
    try:
        respond(Scripted.responses(response([item]), ANSWER), tools)
    except ConfigurationError as exc:
        pytest.fail(f"ConfigurationError for the server's reply: {exc}")
    except TYPED:
        pass


def test_a_client_side_hosted_tool_call_is_not_a_final_answer(tools: MixpeekTools) -> None:
    shell_call = {
        "type": "local_shell_call",
        "id": "lsh_1",
        "call_id": "call_shell",
        "action": {"type": "exec", "command": ["ls"], "env": {}},
        "status": "completed",
    }
    server = Scripted.responses(response([shell_call]), ANSWER)
    try:
        result = respond(server, [tools, {"type": "local_shell"}])
    except TYPED:
        return
    answered = {i.get("call_id") for i in result.items if str(i.get("type")).endswith("_output")}
    assert "call_shell" in answered


@pytest.mark.parametrize(
    "reply",
    [
        {**response(), "output": None},
        response([{"type": "message", "id": "m", "role": "assistant", "content": None}]),
        [1],
    ],
    ids=["output_null", "content_null", "array_body"],
)
def test_a_garbled_response_raises_a_typed_error(tools: MixpeekTools, reply: Any) -> None:
    with pytest.raises(TYPED):
        respond(Scripted.responses(reply), tools)


# -- streaming -------------------------------------------------------------------------------


def test_a_streamed_response_with_keepalives_and_unknown_events_completes(
    tools: MixpeekTools,
) -> None:
    call = function_call("c1", CATALOG, "")
    first = b": keepalive\n\n" + sse(
        event("response.created", response=response([], status="in_progress")),
        event("response.something_new", payload={"x": 1}),
        event("response.output_item.added", output_index=0, item={**call, "status": "in_progress"}),
        event("response.function_call_arguments.delta", item_id="fc_c1", output_index=0, delta="{"),
        event("response.function_call_arguments.delta", item_id="fc_c1", output_index=0, delta="}"),
        event(
            "response.completed",
            response=response([function_call("c1", CATALOG, '{"query": "a"}')]),
        ),
        done=False,
    )
    second = sse(event("response.completed", response=ANSWER), done=False)
    result = respond(Scripted.responses(first, second), tools, stream=True)
    assert result.content == "done"
    assert [c.call_id for c in result.calls] == ["c1"] and result.calls[0].ok
    deltas = [e for e in result.events if e.type == "tool_call_delta"]
    assert [(e.call_id, e.name) for e in deltas] == [("c1", CATALOG)] * 2


@pytest.mark.parametrize(
    "body",
    [
        sse(
            event(
                "response.output_text.delta",
                item_id="m",
                output_index=0,
                content_index=0,
                delta="part",
                logprobs=[],
            ),
            done=False,
        ),
        b"",
        sse(event("error", code="server_error", message="boom", param=None), done=False),
        sse(
            event(
                "response.failed",
                response=response(
                    [], status="failed", error={"code": "server_error", "message": "x"}
                ),
            ),
            done=False,
        ),
    ],
    ids=["cut", "empty", "error_event", "failed"],
)
def test_broken_response_streams_raise_response_failed(tools: MixpeekTools, body: bytes) -> None:
    with pytest.raises(ResponseFailedError):
        respond(Scripted.responses(body), tools, stream=True)


# -- background ------------------------------------------------------------------------------


def bg(status: str, **kw: Any) -> dict[str, Any]:
    output = [message_item("bg done")] if status == "completed" else []
    return response(output, status=status, rid="resp_bg", **kw)


def test_a_background_response_that_stays_queued_is_cancelled_at_the_deadline(
    tools: MixpeekTools,
) -> None:
    server = Scripted.responses(bg("queued"), retrieve=[bg("queued")], cancel=[bg("cancelled")])
    with pytest.raises(ResponseDeadlineExceededError) as raised:
        respond(server, tools, background=True, poll_interval_s=1.0, deadline_s=5.0)
    assert server.paths()[-1] == ("POST", "/responses/resp_bg/cancel")
    assert raised.value.response.status == "cancelled"
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    ("final", "error"),
    [
        (bg("failed", error={"code": "server_error", "message": "boom"}), ResponseFailedError),
        (bg("cancelled"), ResponseFailedError),
        (
            bg("incomplete", incomplete_details={"reason": "max_output_tokens"}),
            OutputTruncatedError,
        ),
    ],
    ids=["failed", "cancelled", "incomplete"],
)
def test_background_endings_raise_typed(
    tools: MixpeekTools, final: dict[str, Any], error: type[Exception]
) -> None:
    server = Scripted.responses(bg("queued"), retrieve=[bg("in_progress"), final])
    with pytest.raises(error):
        respond(server, tools, background=True, poll_interval_s=1.0)


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_retrieve_cancels_the_background_response(
    tools: MixpeekTools, status: int
) -> None:
    failing = httpx2.Response(status, json={"error": {"message": "nope", "type": "x"}})
    server = Scripted.responses(bg("queued"), retrieve=[failing], cancel=[bg("cancelled")])
    with pytest.raises(openai.APIStatusError) as raised:
        respond(server, tools, background=True, poll_interval_s=1.0)
    assert raised.value.status_code == status
    assert ("POST", "/responses/resp_bg/cancel") in server.paths()


def test_a_failed_cancel_is_not_reported_as_cancelled(tools: MixpeekTools) -> None:
    refused = httpx2.Response(500, json={"error": {"message": "cancel failed", "type": "x"}})
    server = Scripted.responses(bg("queued"), retrieve=[bg("queued")], cancel=[refused])
    with pytest.raises(ResponseDeadlineExceededError) as raised:
        respond(server, tools, background=True, poll_interval_s=1.0, deadline_s=2.0)
    assert raised.value.response.status == "queued"
    assert "was cancelled" not in str(raised.value)


# ==========================================================================================
# Assistants
# ==========================================================================================


def test_odd_required_action_calls_are_answered_in_one_submit(
    tools: MixpeekTools, spec: OpenAPIRequestChecker | None, fake: FakeMixpeek
) -> None:
    server = assistants(
        requires(
            tool_call("c1", CATALOG, '{"query": "a"} junk'),
            tool_call("c2", "nope", ""),
            tool_call("c3", CATALOG, '{"query": "sso"}'),
            tool_call("c1", CATALOG, "[]"),
        ),
        [run("completed")],
    )

    result = assistant(server, tools=tools)

    assert result.content == "final"
    [submit] = server.bodies("/submit_tool_outputs")
    assert [o["tool_call_id"] for o in submit["tool_outputs"]] == ["c1", "c2", "c3"]
    assert [c.error.kind if c.error else "ok" for c in result.calls] == [
        "invalid_arguments",
        "unknown_tool",
        "ok",
        "duplicate_call",
    ]
    assert len(fake.requests_for("execute")) == 1
    assert spec_problems(server, spec) == []


def test_a_run_that_expires_raises_run_expired(tools: MixpeekTools) -> None:
    server = assistants(run("queued"), [run("expired")])
    with pytest.raises(RunExpiredError):
        assistant(server, tools=tools)


def test_a_run_stuck_in_queued_is_cancelled_at_the_deadline(tools: MixpeekTools) -> None:
    server = assistants(run("queued"), [run("queued")])
    with pytest.raises(RunDeadlineExceededError) as raised:
        assistant(server, tools=tools, deadline_s=3.0)
    assert ("POST", "/threads/thread_1/runs/run_1/cancel") in server.paths()
    assert raised.value.cancel_confirmed


@pytest.mark.parametrize("header", ["abc", "-5", "1e3", "", "nan"])
def test_garbage_poll_hints_are_ignored(tools: MixpeekTools, header: str) -> None:
    queued = httpx2.Response(200, json=run("queued"), headers={"openai-poll-after-ms": header})
    server = assistants(queued, [run("completed")])
    result = assistant(server, tools=tools, poll_interval_s=None)
    assert result.content == "final"


def test_a_huge_poll_hint_is_capped(tools: MixpeekTools) -> None:
    hinted = {"openai-poll-after-ms": "999999999"}
    queued = httpx2.Response(200, json=run("queued"), headers=hinted)
    server = assistants(queued, [httpx2.Response(200, json=run("completed"), headers=hinted)])
    clock = ManualClock()
    result = run_assistant(
        server.client(),
        tools,
        assistant_id="asst_1",
        message="hi",
        poll_interval_s=None,
        deadline_s=600.0,
        sleep=clock.sleep,
        clock=clock.now,
    )
    assert result.content == "final"
    assert clock.sleeps and max(clock.sleeps) <= 10.0


@pytest.mark.parametrize(
    "garbled",
    [
        httpx2.Response(200, content=b"<html>502</html>", headers={"content-type": "text/html"}),
        {k: v for k, v in run("in_progress").items() if k != "id"},
    ],
    ids=["html", "no_id"],
)
def test_a_garbled_poll_is_typed_and_cancels_the_run(tools: MixpeekTools, garbled: Any) -> None:
    server = assistants(run("queued"), [garbled, run("in_progress")])
    with pytest.raises(TYPED):
        assistant(server, tools=tools, deadline_s=5.0)
    assert ("POST", "/threads/thread_1/runs/run_1/cancel") in server.paths()


@pytest.mark.parametrize(
    "created",
    [
        requires({"id": "c1", "type": "function", "function": None}),
        run("requires_action", {"type": "something_new"}),
    ],
    ids=["function_null", "other_action"],
)
def test_an_odd_required_action_is_typed(tools: MixpeekTools, created: dict[str, Any]) -> None:
    with pytest.raises(TYPED):
        assistant(assistants(created, [run("completed")]), tools=tools)


def test_a_required_action_call_without_id_is_not_a_configuration_error(
    tools: MixpeekTools,
) -> None:
    created = requires({"type": "function", "function": {"name": CATALOG, "arguments": "{}"}})
    try:
        assistant(assistants(created, [run("completed")]), tools=tools)
    except ConfigurationError as exc:
        pytest.fail(f"ConfigurationError for the server's reply: {exc}")
    except TYPED:
        pass


# ==========================================================================================
# StubOpenAI: the same garbage through the project's own stub (all three loops)
# ==========================================================================================


@pytest.mark.parametrize("loop", ["chat", "responses", "assistants"])
def test_stub_garbage_arguments_through_every_loop(
    loop: str, tools: MixpeekTools, fake: FakeMixpeek
) -> None:
    stub = StubOpenAI()
    stub.script(
        stub.tool_calls(
            [
                stub.call(CATALOG, "", call_id="c_empty"),
                stub.call(CATALOG, '{"query": "a"}{"query": "b"}', call_id="c_two"),
                stub.call(CATALOG, "5", call_id="c_num"),
                stub.call("nope", "{}", call_id="c_unknown"),
                stub.call(CATALOG, {"query": "sso"}, call_id="c_ok"),
            ]
        ),
        stub.text("done"),
    )
    if loop == "chat":
        result = run_chat(stub.client(), tools, model="gpt-4o", messages=USER)
    elif loop == "responses":
        result = run_responses(stub.client(), tools, model="gpt-4o", input="hi")
    else:
        assistant_id = create_assistant(stub.client(), tools, model="gpt-4o").id
        result = run_assistant(
            stub.client(), tools, assistant_id=assistant_id, message="hi", poll_interval_s=0
        )
    assert result.content == "done"
    assert [c.call_id for c in result.calls] == ["c_empty", "c_two", "c_num", "c_unknown", "c_ok"]
    assert [c.ok for c in result.calls] == [False, False, False, False, True]
    assert len(fake.requests_for("execute")) == 1
    assert stub.spec_violations == []
    assert_no_secret(result.calls, result.events, stub)


# ==========================================================================================
# Nothing left running
# ==========================================================================================


def test_a_garbage_batch_leaves_no_worker_or_connection_behind(fake: FakeMixpeek) -> None:
    before = {t.ident for t in threading.enumerate()}
    own = MixpeekTools.from_retrievers(fake.client(), ["ret_catalog"])
    calls = [tool_call(f"c{i}", CATALOG, args) for i, (_, args) in enumerate(GARBAGE_ARGUMENTS)]
    calls += [tool_call(f"ok{i}", CATALOG, '{"query": "sso"}') for i in range(4)]
    outputs = own.handle(calls)
    assert len(outputs) == len(calls)
    own.close()
    left = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith("mixpeek-openai")
    ]
    assert left == []
    assert fake.wait_until_idle(timeout=5)


# ==========================================================================================
# Connections cut mid-way, async twins
# ==========================================================================================


class _CutStream(httpx2.SyncByteStream):
    """A response body that breaks off with a connection reset after ``parts``."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        raise httpx2.ReadError("connection reset mid-stream")

    def close(self) -> None:
        self.closed = True


def test_a_chat_stream_reset_mid_body_raises_typed_and_closes_the_stream(
    tools: MixpeekTools, fake: FakeMixpeek
) -> None:
    body = _CutStream([sse(fragment(0, "c1", CATALOG, '{"query": "a'), done=False)])
    server = Scripted.chat(
        lambda request, _: httpx2.Response(
            200, stream=body, headers={"content-type": "text/event-stream"}
        )
    )
    with pytest.raises(openai.APIConnectionError) as raised:
        run_chat(server.client(), tools, model="gpt-4o", messages=USER, stream=True)
    assert body.closed
    assert fake.requests_for("execute") == []
    assert_no_secret(raised.value)


def _assistant_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def test_an_assistants_stream_without_a_terminal_event_falls_back_to_polling(
    tools: MixpeekTools,
) -> None:
    created = _assistant_event("thread.run.created", run("queued")) + _assistant_event(
        "thread.run.requires_action", requires(tool_call("c1", CATALOG, '{"query": "a"}'))
    )
    after_submit = _assistant_event("thread.run.in_progress", run("in_progress"))
    server = assistants(created, [run("completed")], submits=[after_submit])

    result = assistant(server, tools=tools, stream=True)

    assert [c.call_id for c in result.calls] == ["c1"] and result.calls[0].ok
    assert server.paths()[-1] == ("GET", "/threads/thread_1/runs/run_1")
    [submit] = server.bodies("/submit_tool_outputs")
    assert [o["tool_call_id"] for o in submit["tool_outputs"]] == ["c1"]


def test_async_failing_background_retrieve_cancels_the_response(tools: MixpeekTools) -> None:
    from mixpeek_openai import arun_responses

    failing = httpx2.Response(404, json={"error": {"message": "nope", "type": "x"}})
    server = Scripted.responses(bg("queued"), retrieve=[failing], cancel=[bg("cancelled")])
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    with pytest.raises(openai.NotFoundError):
        asyncio.run(
            arun_responses(
                server.async_client(),
                tools,
                model="gpt-4o",
                input="hi",
                background=True,
                poll_interval_s=1.0,
                sleep=sleep,
                clock=clock.now,
            )
        )
    assert server.paths()[-1] == ("POST", "/responses/resp_bg/cancel")


def test_async_garbled_poll_is_typed_and_cancels_the_run(tools: MixpeekTools) -> None:
    from mixpeek_openai import arun_assistant

    html = httpx2.Response(200, content=b"<html>502</html>", headers={"content-type": "text/html"})
    server = assistants(run("queued"), [html, run("in_progress")])
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    with pytest.raises(TYPED):
        asyncio.run(
            arun_assistant(
                server.async_client(),
                tools,
                assistant_id="asst_1",
                message="hi",
                sleep=sleep,
                clock=clock.now,
                poll_interval_s=1.0,
                deadline_s=5.0,
            )
        )
    assert ("POST", "/threads/thread_1/runs/run_1/cancel") in server.paths()
