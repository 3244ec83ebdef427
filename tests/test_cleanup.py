"""Nothing a tool call starts outlives it.

When a call ends, however it ends (deadline, cancellation of the task running ``ahandle``
or ``arun_chat``, Ctrl-C in a sync ``handle``, an exception from an ``on_call_event``
callback), the request's socket is closed within a second: the hostile server sees every
connection that carried an execute closed by the client. ``MixpeekTools`` is a context
manager whose exit leaves no socket to the server open, and the async path starts no
thread per call.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _hostile import (
    Behaviour,
    HostileServer,
    after_requests,
    by_query,
    call_within,
    drip_body,
    drip_chunked,
    drip_headers,
    execute_body,
    is_server_thread,
    respond,
    silent,
)

from mixpeek_openai import arun_chat
from mixpeek_openai.dispatch import CallEvent, DispatchConfig
from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.tools import MixpeekTools

GONE_WITHIN_S = 1.0  # the bound on anything a finished call left behind
WATCHDOG_S = 8.0
DEADLINE_WATCHDOG_S = 3.0  # a 0.5 s deadline call still running this long has failed
LONG_DEADLINE_S = 30.0  # so that an ending caused by anything else is told apart

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
    retriever_id = f"ret_{uuid.uuid4().hex[:12]}"
    return MixpeekTools.from_retrievers(
        server.client(), [retriever_id], config=DispatchConfig(**config)
    )


def search_calls(tools: MixpeekTools, count: int) -> list[dict[str, Any]]:
    name = tools.definitions[0].name
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"query": f"shoes {i}"})},
        }
        for i in range(count)
    ]


def assert_nothing_left(server: HostileServer, count: int) -> None:
    """``count`` executes reached the server, and every connection that carried one was
    closed by the client within a second."""
    assert server.execute_count() >= count
    left = server.open_after(GONE_WITHIN_S)
    assert left == [], f"still open {GONE_WITHIN_S:g} s after the call ended: {left}"
    # Whatever was held was let go by the client (the server never hung up on it).
    assert all(c.closed_by != "server" for c in server.connections if c.carried_execute)


async def until_held(server: HostileServer, count: int, timeout: float = 5.0) -> None:
    """Wait (without blocking the loop) until ``count`` executes are held at the server."""
    end = time.monotonic() + timeout
    while server.execute_count() < count:
        assert time.monotonic() < end, f"only {server.execute_count()} of {count} arrived"
        await asyncio.sleep(0.01)


# -- after a deadline ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync-1", "sync-3", "async-1", "async-3"])
@pytest.mark.parametrize("stall", STALLING)
def test_nothing_outlives_a_deadline(server: HostileServer, stall: str, mode: str) -> None:
    server.execute = STALLING[stall]()
    tools = build_tools(server, deadline_s=0.5)
    kind, count = mode.split("-")
    calls = search_calls(tools, int(count))
    if kind == "sync":
        timed = call_within(DEADLINE_WATCHDOG_S, lambda: tools.handle(calls))
    else:
        timed = call_within(DEADLINE_WATCHDOG_S, lambda: asyncio.run(tools.ahandle(calls)))
    assert timed.error is None, repr(timed.error)
    assert len(timed.value) == len(calls)
    assert_nothing_left(server, len(calls))


# -- after cancellation -------------------------------------------------------------------


def test_cancelling_ahandle_closes_its_sockets(server: HostileServer) -> None:
    server.execute = silent()
    tools = build_tools(server, deadline_s=LONG_DEADLINE_S)
    calls = search_calls(tools, 3)

    async def scenario() -> None:
        task = asyncio.ensure_future(tools.ahandle(calls))
        await until_held(server, 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GONE_WITHIN_S)

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(scenario()))
    assert timed.error is None, repr(timed.error)
    assert_nothing_left(server, 3)


def test_cancelling_arun_chat_closes_its_sockets(server: HostileServer) -> None:
    server.execute = silent()
    tools = build_tools(server, deadline_s=LONG_DEADLINE_S)
    stub = StubOpenAI()
    name = tools.definitions[0].name
    stub.script(
        stub.tool_calls([stub.call(name, {"query": f"q{i}"}, call_id=f"c{i}") for i in range(3)]),
        stub.text("done"),
    )

    async def scenario() -> None:
        client = stub.async_client()
        task = asyncio.ensure_future(
            arun_chat(client, tools, model="gpt-4o", messages=[{"role": "user", "content": "find"}])
        )
        try:
            await until_held(server, 3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, GONE_WITHIN_S)
        finally:
            await client.close()

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(scenario()))
    assert timed.error is None, repr(timed.error)
    assert_nothing_left(server, 3)
    # The conversation stopped where it was cancelled: no tool outputs were sent on.
    assert len(stub.requests_to("/v1/chat/completions")) == 1


# -- after Ctrl-C -------------------------------------------------------------------------


def _interrupt_main_when_held(
    server: HostileServer, count: int, *, flag_only: bool = False
) -> threading.Thread:
    """A thread that sends SIGINT to the main thread (as Ctrl-C would) once ``count``
    executes are held at the server; with ``flag_only``, it only flags the interrupt for
    Python (``_thread.interrupt_main``, as IDEs and embedding hosts do), which wakes no
    blocked wait."""
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if server.wait_for_executes(count, timeout=5.0):
            if flag_only:
                _thread.interrupt_main()
            else:
                signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt, name="ctrl-c", daemon=True)
    thread.start()
    return thread


def test_ctrl_c_in_a_sync_handle_closes_its_sockets(server: HostileServer) -> None:
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    server.execute = silent()
    # Long enough to tell "ended by Ctrl-C" from "ended by the deadline", short enough
    # that a handle ignoring Ctrl-C fails the test quickly.
    tools = build_tools(server, deadline_s=5.0)
    calls = search_calls(tools, 3)
    interrupter = _interrupt_main_when_held(server, 3)
    started = time.monotonic()

    with pytest.raises(KeyboardInterrupt):
        tools.handle(calls)

    interrupted_after = time.monotonic() - started
    interrupter.join(timeout=5)
    assert interrupted_after < 4.0, "handle waited for its deadline instead of stopping"
    assert_nothing_left(server, 3)


def test_an_interrupt_flagged_without_a_signal_stops_a_sync_batch(server: HostileServer) -> None:
    server.execute = silent()
    tools = build_tools(server, deadline_s=5.0)
    calls = search_calls(tools, 3)
    interrupter = _interrupt_main_when_held(server, 3, flag_only=True)
    started = time.monotonic()

    with pytest.raises(KeyboardInterrupt):
        tools.handle(calls)

    assert time.monotonic() - started < 4.0, "handle waited for its deadline instead of stopping"
    interrupter.join(timeout=5)
    assert_nothing_left(server, 3)


def test_ctrl_c_in_a_single_inline_call_closes_its_socket(server: HostileServer) -> None:
    server.execute = drip_body()
    tools = build_tools(server, deadline_s=5.0)
    calls = search_calls(tools, 1)
    interrupter = _interrupt_main_when_held(server, 1)

    with pytest.raises(KeyboardInterrupt):
        tools.dispatch(calls)

    interrupter.join(timeout=5)
    assert_nothing_left(server, 1)


# -- after an exception from a callback ---------------------------------------------------


class CallbackBoom(Exception):
    """Raised by the test's event callback."""


def _raise_on_first_finish(events: list[CallEvent]) -> Callable[[CallEvent], None]:
    def on_call_event(event: CallEvent) -> None:
        events.append(event)
        if event.kind == "finished":
            raise CallbackBoom("the callback failed")

    return on_call_event


def _one_fast_two_held() -> Behaviour:
    # "shoes 0" is answered once all three requests are at the server; the others never are.
    return by_query({"shoes 0": after_requests(3, respond(execute_body()))}, silent())


def test_a_raising_callback_stops_the_batch_and_leaves_nothing_running_sync(
    server: HostileServer,
) -> None:
    server.execute = _one_fast_two_held()
    events: list[CallEvent] = []
    tools = build_tools(
        server, deadline_s=LONG_DEADLINE_S, on_call_event=_raise_on_first_finish(events)
    )
    calls = search_calls(tools, 3)

    timed = call_within(WATCHDOG_S, lambda: tools.handle(calls))

    assert any(e.kind == "finished" for e in events), events
    # The exception reaches the caller at once, not when the held calls' deadline passes.
    assert isinstance(timed.error, CallbackBoom), timed
    assert timed.elapsed <= WATCHDOG_S / 2, f"raised after {timed.elapsed:.2f} s"
    assert_nothing_left(server, 3)


def test_a_raising_callback_stops_the_batch_and_leaves_nothing_running_async(
    server: HostileServer,
) -> None:
    server.execute = _one_fast_two_held()
    events: list[CallEvent] = []
    tools = build_tools(
        server, deadline_s=LONG_DEADLINE_S, on_call_event=_raise_on_first_finish(events)
    )
    calls = search_calls(tools, 3)

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(tools.ahandle(calls)))

    assert any(e.kind == "finished" for e in events), events
    # The exception reaches the caller at once, not when the held calls' deadline passes.
    assert isinstance(timed.error, CallbackBoom), timed
    assert timed.elapsed <= WATCHDOG_S / 2, f"raised after {timed.elapsed:.2f} s"
    assert_nothing_left(server, 3)


# -- closing the tool set -----------------------------------------------------------------


def test_leaving_the_with_block_closes_every_socket(server: HostileServer) -> None:
    built = build_tools(server, deadline_s=5)
    with built as tools:
        assert tools is built
        for count in (1, 3, 2):
            results = tools.dispatch(search_calls(tools, count))
            assert all(r.ok for r in results), [r.output for r in results]
    assert server.execute_count() == 6
    left = server.open_after(GONE_WITHIN_S, idle_too=True, executes_only=False)
    assert left == [], f"open after close(): {left}"


def test_close_releases_sockets_the_async_path_opened(server: HostileServer) -> None:
    tools = build_tools(server, deadline_s=5)

    async def use() -> None:
        for count in (1, 3):
            results = await tools.adispatch(search_calls(tools, count))
            assert all(r.ok for r in results), [r.output for r in results]

    with tools:
        asyncio.run(use())
    assert server.execute_count() == 4
    left = server.open_after(GONE_WITHIN_S, idle_too=True, executes_only=False)
    assert left == [], f"open after close(): {left}"


def test_a_closed_tool_set_can_be_closed_again(server: HostileServer) -> None:
    tools = build_tools(server, deadline_s=5)
    assert tools.dispatch(search_calls(tools, 1))[0].ok
    tools.close()
    tools.close()
    assert server.open_after(GONE_WITHIN_S, idle_too=True, executes_only=False) == []


# -- no thread per async call -------------------------------------------------------------


def test_async_calls_start_no_thread_per_call(server: HostileServer) -> None:
    server.execute = silent()
    tools = build_tools(server, deadline_s=1.5)
    concurrent = 20

    async def scenario() -> list[str]:
        baseline = {t.ident for t in threading.enumerate()}
        tasks = [
            asyncio.ensure_future(tools.ahandle(search_calls(tools, 1))) for _ in range(concurrent)
        ]
        try:
            await until_held(server, concurrent)
            fresh = [
                t.name
                for t in threading.enumerate()
                if t.ident not in baseline and not is_server_thread(t)
            ]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return fresh

    timed = call_within(WATCHDOG_S, lambda: asyncio.run(scenario()))
    assert timed.error is None, repr(timed.error)
    fresh = timed.value
    # A constant (a resolver or a shared helper thread) is tolerable; one per call is not.
    assert len(fresh) <= 2, f"{len(fresh)} threads started for {concurrent} calls: {fresh}"
