"""A hostile server against the dispatcher: the deadline holds and bad bodies stay errors.

* Whatever the server does (silence, headers dripped a byte at a time, a body dripped
  under a Content-Length, a chunked body dripped), every call of ``handle``, ``dispatch``,
  ``ahandle`` and ``adispatch`` returns by ``deadline_s`` + 0.5 s with a
  ``deadline_exceeded`` error, for one call and for a batch of three.
* A response that breaks the execute contract (a body that is not an object,
  ``documents`` that is not a list of objects, invalid UTF-8, nesting past any sane bound,
  numbers out of range, any 3xx) is reported as ``invalid_response`` / ``http_error``:
  never as a clean result the model would believe, never as ``internal_error``.

Everything goes through the real ``mixpeek.Mixpeek`` client and the public tool-set API.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _hostile import (
    REDIRECT_TARGET,
    Behaviour,
    Exchange,
    HostileServer,
    call_within,
    drip_body,
    drip_chunked,
    drip_headers,
    execute_body,
    raw,
    reset,
    respond,
    short_body,
    silent,
)

from mixpeek_openai.dispatch import CallEvent, DispatchConfig, ToolCallResult
from mixpeek_openai.layout import as_objects
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.tools import MixpeekTools

DEADLINE_S = 0.5
SLACK_S = 0.5  # the bound: every call returns by deadline_s + 0.5 s
WATCHDOG_S = 3.0  # a call still blocked this long has failed; stop waiting for it

STALLING: dict[str, Callable[[], Behaviour]] = {
    "silent": silent,
    "headers-dripped": drip_headers,
    "body-dripped": drip_body,
    "chunked-dripped": drip_chunked,
}


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as hostile:
        yield hostile


def build_tools(server: HostileServer, **config: Any) -> MixpeekTools:
    """Tools for one retriever of ``server`` (a fresh id, so no cached definition is used)."""
    retriever_id = f"ret_{uuid.uuid4().hex[:12]}"
    return MixpeekTools.from_retrievers(
        server.client(), [retriever_id], config=DispatchConfig(**config)
    )


def chat_call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def search_calls(tools: MixpeekTools, count: int) -> list[dict[str, Any]]:
    name = tools.definitions[0].name
    return [chat_call(name, {"query": f"shoes {i}"}, f"call_{i}") for i in range(count)]


# -- the instrument itself ----------------------------------------------------------------


def test_a_well_behaved_answer_is_a_clean_result(server: HostileServer) -> None:
    tools = build_tools(server, deadline_s=5)
    [result] = tools.dispatch(search_calls(tools, 1))
    assert result.ok, result.output
    ids = [d["document_id"] for d in as_objects(json.loads(result.output))]
    assert ids == ["doc_item_123", "doc_item_456"]
    [execute] = [r for r in server.requests if r.is_execute]
    assert execute.headers["x-namespace"] == server.namespace
    assert execute.json()["inputs"] == {"query": "shoes 0"}


def test_the_server_sees_a_client_hang_up_at_once(server: HostileServer) -> None:
    # The cleanup tests rely on this: a client closing its socket is recorded within a
    # poll interval, while the server is silent or dripping.
    for behaviour in (silent(), drip_body()):
        server.execute = behaviour
        before, executes = len(server.connections), server.execute_count()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /v1/retrievers/r/execute HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        assert server.wait_for_executes(executes + 1)
        [conn] = server.connections[before:]
        assert conn.is_open
        sock.close()
        assert server.open_after(1.0) == []
        assert conn.closed_by == "client"


# -- the deadline -------------------------------------------------------------------------


def _check_deadline_outputs(
    results: list[ToolCallResult], calls: list[dict[str, Any]], elapsed: float
) -> None:
    assert elapsed <= DEADLINE_S + SLACK_S, f"returned after {elapsed:.2f} s"
    assert [r.call_id for r in results] == [c["id"] for c in calls]
    for result in results:
        assert result.error is not None, result.output
        assert result.error.kind == "deadline_exceeded", result.error
        assert "error" in json.loads(result.output)


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("stall", STALLING)
def test_sync_dispatch_returns_by_the_deadline(
    server: HostileServer, stall: str, count: int
) -> None:
    server.execute = STALLING[stall]()
    tools = build_tools(server, deadline_s=DEADLINE_S)
    calls = search_calls(tools, count)

    timed = call_within(WATCHDOG_S, lambda: tools.dispatch(calls))

    assert timed.error is None, repr(timed.error)
    _check_deadline_outputs(timed.value, calls, timed.elapsed)
    assert server.execute_count() >= count


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("stall", STALLING)
def test_sync_handle_returns_by_the_deadline(server: HostileServer, stall: str, count: int) -> None:
    server.execute = STALLING[stall]()
    events: list[CallEvent] = []
    tools = build_tools(server, deadline_s=DEADLINE_S, on_call_event=events.append)
    calls = search_calls(tools, count)

    timed = call_within(WATCHDOG_S, lambda: tools.handle(calls))

    assert timed.error is None, repr(timed.error)
    assert timed.elapsed <= DEADLINE_S + SLACK_S, f"returned after {timed.elapsed:.2f} s"
    outputs = timed.value
    assert [o["tool_call_id"] for o in outputs] == [c["id"] for c in calls]
    assert all(o["role"] == "tool" and "error" in json.loads(o["content"]) for o in outputs)
    failed = {e.call_id: e.error.kind for e in events if e.kind == "failed" and e.error}
    assert failed == {c["id"]: "deadline_exceeded" for c in calls}


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("stall", STALLING)
def test_async_ahandle_returns_by_the_deadline(
    server: HostileServer, stall: str, count: int
) -> None:
    server.execute = STALLING[stall]()
    events: list[CallEvent] = []
    tools = build_tools(server, deadline_s=DEADLINE_S, on_call_event=events.append)
    calls = search_calls(tools, count)

    async def run() -> tuple[list[dict[str, Any]], float]:
        started = time.monotonic()
        outputs = await tools.ahandle(calls)
        return outputs, time.monotonic() - started

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(run()))

    assert timed.error is None, repr(timed.error)
    outputs, elapsed = timed.value
    assert elapsed <= DEADLINE_S + SLACK_S, f"returned after {elapsed:.2f} s"
    assert [o["tool_call_id"] for o in outputs] == [c["id"] for c in calls]
    failed = {e.call_id: e.error.kind for e in events if e.kind == "failed" and e.error}
    assert failed == {c["id"]: "deadline_exceeded" for c in calls}


@pytest.mark.parametrize("stall", STALLING)
def test_async_adispatch_returns_by_the_deadline(server: HostileServer, stall: str) -> None:
    server.execute = STALLING[stall]()
    tools = build_tools(server, deadline_s=DEADLINE_S)
    calls = search_calls(tools, 3)

    async def run() -> tuple[list[ToolCallResult], float]:
        started = time.monotonic()
        results = await tools.adispatch(calls)
        return results, time.monotonic() - started

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(run()))

    assert timed.error is None, repr(timed.error)
    results, elapsed = timed.value
    _check_deadline_outputs(results, calls, elapsed)


def test_the_deadline_holds_through_retries(server: HostileServer) -> None:
    # A 503 with Retry-After 0, then silence: the retry is inside the same deadline.
    answers = iter([respond({"detail": "warming up"}, 503, {"Retry-After": "0"})])

    def behave(ex: Any) -> None:
        next(answers, silent())(ex)

    server.execute = behave
    tools = build_tools(server, deadline_s=DEADLINE_S)
    calls = search_calls(tools, 1)

    timed = call_within(WATCHDOG_S, lambda: tools.dispatch(calls))

    assert timed.error is None, repr(timed.error)
    _check_deadline_outputs(timed.value, calls, timed.elapsed)
    assert server.execute_count() >= 1


# -- bodies that break the contract -------------------------------------------------------

DEEP = 100_000
HUGE_SCORE = int("9" * 400)
BAD_BODIES: dict[str, bytes] = {
    "list": b'[{"document_id": "doc_1", "score": 0.9}]',
    "number": b"42",
    "string": b'"ok"',
    "true": b"true",
    "null": b"null",
    "documents-object": b'{"status": "completed", "documents": {"document_id": "doc_1"}}',
    "documents-string": b'{"status": "completed", "documents": "doc_1"}',
    "documents-number": b'{"status": "completed", "documents": 3}',
    "documents-not-objects": b'{"status": "completed", "documents": [1, "doc_2", null, []]}',
    "documents-some-not-objects": b'{"documents": [{"document_id": "doc_1"}, 7]}',
    "invalid-utf8": b'{"documents": [{"document_id": "doc_\xff\xfe", "text": "caf\xc3"}]}',
    "deep-object": (
        b'{"documents": [{"document_id": "doc_1", "metadata": '
        + b'{"a":' * DEEP
        + b"1"
        + b"}" * DEEP
        + b"}]}"
    ),
    "deep-list": b"[" * DEEP + b"]" * DEEP,
    "deep-documents": b'{"documents": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "huge-score": (
        b'{"documents": [{"document_id": "doc_1", "score": ' + str(HUGE_SCORE).encode() + b"}]}"
    ),
    "overflowing-score": b'{"documents": [{"document_id": "doc_1", "score": 1e999}]}',
    "huge-total": (
        b'{"documents": [{"document_id": "doc_1", "score": 0.5}], "pagination": {"total": '
        + b"7" * 5000
        + b"}}"
    ),
}


def _assert_bad_body_is_an_error(result: ToolCallResult) -> None:
    assert result.error is not None, f"a broken body became a clean result: {result.output}"
    assert result.error.kind in ("invalid_response", "http_error"), result.error
    payload = json.loads(result.output)
    assert set(payload) == {"error"}, payload  # nothing from the body passed off as results


def _one_call(server: HostileServer, behaviour: Behaviour) -> ToolCallResult:
    server.execute = behaviour
    tools = build_tools(server, deadline_s=5, retry=RetryPolicy(max_attempts=1))
    timed = call_within(WATCHDOG_S, lambda: tools.dispatch(search_calls(tools, 1)))
    assert timed.error is None, repr(timed.error)
    [result] = timed.value
    return result


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_body_that_breaks_the_contract_is_an_invalid_response(
    server: HostileServer, body: str
) -> None:
    _assert_bad_body_is_an_error(_one_call(server, respond(BAD_BODIES[body])))


@pytest.mark.parametrize("body", ["number", "documents-object", "deep-object", "huge-total"])
async def test_async_bad_bodies_are_invalid_responses(server: HostileServer, body: str) -> None:
    server.execute = respond(BAD_BODIES[body])
    tools = build_tools(server, deadline_s=5, retry=RetryPolicy(max_attempts=1))
    [result] = await asyncio.wait_for(tools.adispatch(search_calls(tools, 1)), WATCHDOG_S)
    _assert_bad_body_is_an_error(result)


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
@pytest.mark.parametrize("location", [False, True])
def test_any_redirect_is_an_error_not_a_result(
    server: HostileServer, status: int, location: bool
) -> None:
    # The body looks like a clean result, and the Location (when sent) leads to one: a
    # tool call must neither take the 3xx body as the answer nor follow it elsewhere.
    target = f"http://127.0.0.1:{server.port}{REDIRECT_TARGET}"
    headers = {"Location": target} if location else {}
    result = _one_call(server, respond(execute_body(), status, headers))
    _assert_bad_body_is_an_error(result)
    assert result.error is not None and result.error.kind == "http_error"
    assert result.error.status == status


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(short_body, id="content-length-longer-than-body"),
        pytest.param(reset, id="connection-reset"),
        pytest.param(lambda: respond(b'{"documents": [{"document_id": "d'), id="truncated-json"),
        pytest.param(lambda: respond(b""), id="empty-body"),
        pytest.param(lambda: respond(b"<html>gateway</html>"), id="html"),
        # Headers are read as latin-1, where "\xb2" ("²") passes str.isdigit but not int().
        pytest.param(
            lambda: raw(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}"),
            id="content-length-superscript-digit",
        ),
        pytest.param(
            lambda: raw(b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 2\r\n\r\n{}"),
            id="status-superscript-digit",
        ),
    ],
)
def test_a_broken_answer_is_an_error_never_an_internal_error(
    server: HostileServer, behaviour: Callable[[], Behaviour]
) -> None:
    result = _one_call(server, behaviour())
    assert result.error is not None, f"a broken answer became a clean result: {result.output}"
    assert result.error.kind != "internal_error", result.error
    assert set(json.loads(result.output)) == {"error"}


def _close_every_second_request() -> Behaviour:
    """Answer a connection's first request; close it without a byte on the next one (the
    race of a server's idle timeout with a request on a kept-alive connection)."""
    answer = respond(execute_body())

    def behave(ex: Exchange) -> None:
        [connection] = [c for c in ex.server.connections if ex.request in c.requests]
        if len(connection.requests) >= 2:
            ex.hang_up()
        else:
            answer(ex)

    return behave


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_kept_alive_connection_closed_unanswered_is_one_counted_retry(
    server: HostileServer, mode: str
) -> None:
    # A connection closed while idle is noticed before reuse; one the server closes on the
    # request (a reset) is a failed attempt like any other: retried by the one retry layer,
    # and counted, so the attempts reported are the requests the server saw.
    server.execute = _close_every_second_request()
    clock = ManualClock()
    policy = RetryPolicy(max_attempts=2, sleep=clock.sleep, clock=clock.now, jitter=0)
    tools = build_tools(server, deadline_s=5, retry=policy)

    async def twice() -> list[ToolCallResult]:
        first = await tools.adispatch(search_calls(tools, 1))
        return [*first, *await tools.adispatch(search_calls(tools, 1))]

    def run() -> list[ToolCallResult]:
        if mode == "async":
            return asyncio.run(twice())
        return [*tools.dispatch(search_calls(tools, 1)), *tools.dispatch(search_calls(tools, 1))]

    first, second = call_within(WATCHDOG_S, run).value

    assert first.ok and second.ok, second.output
    assert (first.attempts, second.attempts) == (1, 2)
    assert server.execute_count() == 3
    assert len([c for c in server.connections if c.carried_execute]) == 2
