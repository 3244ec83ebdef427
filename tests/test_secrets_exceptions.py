"""The API key, whole or any 12-character piece of it, never leaves the package.

* ``MixpeekTools.from_retrievers`` (and ``refresh``) against a server that answers
  401/403/404/422/500 with the key in its body: the raised exception's ``str``, ``repr``,
  ``args``, attributes, printed traceback and whole ``__cause__`` / ``__context__`` chain
  are clean, and so are the log records (DEBUG).
* Outputs when a document contains the key right where text is cut (redacting after
  cutting would leave a 12+ character piece), when the key is a document id or a metadata
  key, and when an error message echoes it near its own cut.
* Call events, log records, the loop events, and everything the loops send to OpenAI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from _hostile import (
    API_KEY,
    DEFINITION,
    Exchange,
    HostileServer,
    call_within,
    execute_body,
    respond,
)

from mixpeek_openai import arun_chat, run_chat, run_responses
from mixpeek_openai.dispatch import CallEvent, DispatchConfig, ToolCallResult
from mixpeek_openai.errors import MixpeekOpenAIError, RetrieverNotFoundError
from mixpeek_openai.layout import as_objects
from mixpeek_openai.retries import RetryPolicy
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.toolbox import Toolbox
from mixpeek_openai.tools import MixpeekTools

FRAGMENT = 12
FRAGMENTS = frozenset(API_KEY[i : i + FRAGMENT] for i in range(len(API_KEY) - FRAGMENT + 1))
WATCHDOG_S = 20.0


def leaks(texts: Iterable[str]) -> list[str]:
    """Each text holding the key or a 12-character piece of it, around the first hit."""
    found = []
    for text in texts:
        for fragment in FRAGMENTS:
            at = text.find(fragment)
            if at >= 0:
                found.append(text[max(0, at - 40) : at + 60])
                break
    return found


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


def fresh_id() -> str:
    return f"ret_{uuid.uuid4().hex[:12]}"


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an error reporter could print about ``exc`` and its chain."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [repr(getattr(current, "__dict__", {})), repr(getattr(current, "__notes__", []))]
        pending += [current.__cause__, current.__context__]
    return texts


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
    return texts


# -- exceptions from building the tool set -------------------------------------------------

ECHOES: dict[str, Any] = {
    "detail": {"detail": f"Invalid API key {API_KEY}"},
    "error-shape": {
        "success": False,
        "error": {
            "message": f"Authorization: Bearer {API_KEY} was rejected",
            "type": "AuthenticationError",
            "details": {"authorization": f"Bearer {API_KEY}", "key": API_KEY},
        },
    },
    "validation": {"detail": [{"loc": ["header", "authorization"], "msg": API_KEY}]},
    "html": f"<html><body>upstream saw Authorization: Bearer {API_KEY}</body></html>",
}


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("status", [401, 403, 404, 422, 500])
def test_from_retrievers_errors_never_carry_the_key(
    server: HostileServer, status: int, echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.get_retriever = respond(ECHOES[echo], status, close=True)
    retriever_id = fresh_id()

    with pytest.raises(Exception) as caught:
        MixpeekTools.from_retrievers(server.client(), [retriever_id])

    exc = caught.value
    assert leaks(exception_texts(exc)) == []
    assert leaks(log_texts(caplog)) == []
    # Still a useful, typed error: what failed, for which retriever.
    assert isinstance(exc, MixpeekOpenAIError), type(exc).__mro__
    if status == 404:
        assert isinstance(exc, RetrieverNotFoundError)
        assert retriever_id in str(exc)
    else:
        assert str(status) in str(exc), str(exc)


@pytest.mark.parametrize("status", [401, 500])
def test_several_retrievers_failing_at_once_never_carry_the_key(
    server: HostileServer, status: int
) -> None:
    # Several ids are fetched concurrently: the error surfacing from the pool is clean too.
    server.get_retriever = respond(ECHOES["error-shape"], status, close=True)
    with pytest.raises(Exception) as caught:
        MixpeekTools.from_retrievers(server.client(), [fresh_id() for _ in range(4)])
    assert leaks(exception_texts(caught.value)) == []
    assert isinstance(caught.value, MixpeekOpenAIError)


@pytest.mark.parametrize("status", [401, 404, 500])
def test_refresh_errors_never_carry_the_key(server: HostileServer, status: int) -> None:
    tools = MixpeekTools.from_retrievers(server.client(), [fresh_id()])
    server.get_retriever = respond(ECHOES["detail"], status, close=True)
    with pytest.raises(Exception) as caught:
        tools.refresh()
    assert leaks(exception_texts(caught.value)) == []
    assert isinstance(caught.value, MixpeekOpenAIError)


# -- the key inside what the server returns ------------------------------------------------

TEXT_CUTS = [
    pytest.param({}, id="defaults"),
    pytest.param({"max_text_chars": 120}, id="short-texts"),
    pytest.param({"output_budget_tokens": 300}, id="tight-budget"),
]
OFFSETS = range(0, 660, 7)  # the key starts every 7 characters: one straddles any cut


def keyed_documents(ex: Exchange) -> None:
    """Ten documents whose text holds the key at the offset the query names ("off=N")."""
    query = ex.request.query or ""
    if query == "keys":
        docs = [
            {"document_id": API_KEY, "score": 0.9, "text": "id is the key"},
            {"document_id": "doc_2", "score": 0.8, "metadata": {API_KEY: "v", "k": API_KEY}},
            {"document_id": "doc_3", "score": 0.7, "url": f"https://x.test/?key={API_KEY}"},
        ]
    else:
        offset = int(query.removeprefix("off="))
        text = "w" * offset + API_KEY + " and then some more words" * 2
        docs = [
            {"document_id": f"doc_{i}", "score": 0.9 - i / 100, "text": text, "title": text}
            for i in range(10)
        ]
    respond(execute_body(docs))(ex)


def _search(tools: MixpeekTools, queries: list[str]) -> list[dict[str, Any]]:
    name = tools.definitions[0].name
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"query": q})},
        }
        for i, q in enumerate(queries)
    ]


def result_texts(results: list[ToolCallResult]) -> list[str]:
    texts = []
    for result in results:
        texts += [result.output, repr(result), repr(result.error), json.dumps(result.as_output())]
    return texts


@pytest.mark.parametrize("config", TEXT_CUTS)
def test_a_key_across_the_text_cut_never_survives_in_outputs(
    server: HostileServer, config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.execute = keyed_documents
    events: list[CallEvent] = []
    tools = MixpeekTools.from_retrievers(
        server.client(),
        [fresh_id()],
        config=DispatchConfig(deadline_s=10, on_call_event=events.append, **config),
    )
    calls = _search(tools, [f"off={n}" for n in OFFSETS] + ["keys"])

    results = call_within(WATCHDOG_S, lambda: tools.dispatch(calls)).value

    assert all(r.ok for r in results), [r.output for r in results if not r.ok][:2]
    assert all(as_objects(json.loads(r.output)) for r in results)  # results, not dropped
    assert leaks(result_texts(results)) == []
    assert leaks(repr(e) for e in events) == []
    assert leaks(log_texts(caplog)) == []


@pytest.mark.parametrize("status", [400, 404, 422, 429, 500, 503])
def test_an_error_message_echoing_the_key_is_clean_at_any_length(
    server: HostileServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(ex: Exchange) -> None:
        offset = int((ex.request.query or "off=0").removeprefix("off="))
        message = "v" * offset + API_KEY + " rejected"
        body = {"success": False, "error": {"message": message, "type": "Bad"}}
        respond(body, status, {"Retry-After": "0"})(ex)

    server.execute = echo
    events: list[CallEvent] = []
    tools = MixpeekTools.from_retrievers(
        server.client(),
        [fresh_id()],
        config=DispatchConfig(
            deadline_s=10,
            on_call_event=events.append,
            retry=RetryPolicy(max_attempts=2, initial_backoff_s=0, jitter=0),
        ),
    )
    calls = _search(tools, [f"off={n}" for n in range(0, 900, 11)])

    results = call_within(WATCHDOG_S, lambda: tools.dispatch(calls)).value

    assert all(r.error is not None for r in results)
    assert leaks(result_texts(results)) == []
    assert leaks(repr(e) for e in events) == []
    assert leaks(log_texts(caplog)) == []


# -- what the loops send to OpenAI ---------------------------------------------------------

LOOP_QUERIES = [f"off={n}" for n in OFFSETS] + ["keys"]


def _scripted(stub: StubOpenAI, tools: MixpeekTools) -> None:
    name = tools.definitions[0].name
    calls = [stub.call(name, {"query": q}, call_id=f"c{i}") for i, q in enumerate(LOOP_QUERIES)]
    stub.script(stub.tool_calls(calls), stub.text("done"))


def _sent_to_openai(stub: StubOpenAI) -> list[str]:
    return [json.dumps(r.body) for r in stub.requests] + [repr(r) for r in stub.requests]


@pytest.mark.parametrize("loop", ["run_chat", "run_responses", "arun_chat"])
def test_loops_never_send_a_piece_of_the_key_to_openai(
    server: HostileServer, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.execute = keyed_documents
    tools = MixpeekTools.from_retrievers(
        server.client(), [fresh_id()], config=DispatchConfig(deadline_s=10)
    )
    stub = StubOpenAI()
    _scripted(stub, tools)
    seen: list[Any] = []
    messages = [{"role": "user", "content": "find shoes"}]

    def run() -> Any:
        if loop == "run_chat":
            return run_chat(
                stub.client(), tools, model="gpt-4o", messages=messages, on_event=seen.append
            )
        if loop == "run_responses":
            return run_responses(
                stub.client(), tools, model="gpt-4o", input="find shoes", on_event=seen.append
            )

        async def arun() -> Any:
            client = stub.async_client()
            try:
                return await arun_chat(
                    client, tools, model="gpt-4o", messages=messages, on_event=seen.append
                )
            finally:
                await client.close()

        return asyncio.run(arun())

    timed = call_within(WATCHDOG_S, run)

    assert timed.error is None, repr(timed.error)
    result = timed.value
    assert result.content == "done"
    assert len(result.calls) == len(LOOP_QUERIES) and all(c.ok for c in result.calls)
    assert leaks(_sent_to_openai(stub)) == []
    assert leaks(repr(e) for e in seen) == []
    assert leaks([repr(result), *(c.output for c in result.calls)]) == []
    assert leaks(log_texts(caplog)) == []


# -- Bearer tokens inside JSON ------------------------------------------------------------

QUOTED_HEADERS = [
    'Send the header "Authorization: Bearer abc123" with each call',
    "Bearer abc\\def and Bearer a/b/c",
    "Authorization: Bearer\ttok_tab\nBearer tok_newline",
]


@pytest.mark.parametrize("text", QUOTED_HEADERS)
def test_a_quoted_bearer_token_is_redacted_and_the_output_stays_json(
    server: HostileServer, text: str
) -> None:
    # Bodies and outputs are scrubbed as JSON text, where the token sits next to escapes.
    server.execute = respond(execute_body([{"document_id": "doc_1", "score": 0.9, "title": text}]))
    tools = MixpeekTools.from_retrievers(
        server.client(), [fresh_id()], config=DispatchConfig(deadline_s=5)
    )

    def note(topic: str) -> dict[str, str]:
        """A note about a topic."""
        return {"note": text, "topic": topic}

    box = Toolbox([tools, note])
    calls = [*_search(tools, ["auth"]), _call("note", {"topic": "auth"}, "call_n")]

    results = call_within(WATCHDOG_S, lambda: box.dispatch(calls)).value

    assert [r.ok for r in results] == [True, True], [r.output for r in results]
    title = as_objects(json.loads(results[0].output))[0]["title"]
    noted = json.loads(results[1].output)["note"]
    for shown in (title, noted):
        assert "[redacted]" in shown
        assert not any(tok in shown for tok in ("abc123", "abc\\def", "a/b/c", "tok_"))
    assert title.split()[0] == text.split()[0]  # the document is shown, not dropped


def _call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def test_a_definition_writing_the_key_escaped_never_reaches_the_tool_schemas(
    server: HostileServer,
) -> None:
    # The key written as \u escapes is not the key's bytes; only decoding makes it the key.
    escaped = "".join(f"\\u{ord(c):04x}" for c in API_KEY)
    definition = {**DEFINITION, "description": "Echo: KEY"}
    server.get_retriever = respond(json.dumps(definition).replace("KEY", escaped).encode())

    tools = MixpeekTools.from_retrievers(server.client(), [fresh_id()])

    schemas = [json.dumps(tools.chat_tools()), json.dumps(tools.responses_tools())]
    assert leaks(schemas) == []
    assert "Echo: [redacted]" in tools.chat_tools()[0]["function"]["description"]
