"""Shared helpers for the reliability and security tests: run any loop the same way, read
back what the model was sent, and check that nothing was left running."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixpeek_openai import (
    arun_assistant,
    arun_chat,
    arun_responses,
    run_assistant,
    run_chat,
    run_responses,
)
from mixpeek_openai.assistants import create_assistant
from mixpeek_openai.dispatch import ToolCallResult
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

DEMO = "search_product_demo"
CATALOG = "search_catalog"
LOOPS = [
    "chat-sync",
    "chat-async",
    "responses-sync",
    "responses-async",
    "assistants-sync",
    "assistants-async",
]


class VirtualClock:
    """A monotonic clock that moves only when a loop sleeps (sync and async sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outcome:
    """What one loop run produced: the result (or the exception) and the tool outputs the
    model was sent next, as ``(call_id, output)`` pairs in request order."""

    result: Any = None
    error: BaseException | None = None
    calls: list[ToolCallResult] = field(default_factory=list)
    sent_outputs: list[list[tuple[str, str]]] = field(default_factory=list)
    leftover_tasks: int = 0


def _chat_outputs(body: Any) -> list[tuple[str, str]]:
    # Tool messages that follow the last assistant message carrying tool_calls.
    messages = body.get("messages") or []
    last = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("tool_calls")),
        default=None,
    )
    if last is None:
        return []
    return [
        (m["tool_call_id"], m["content"]) for m in messages[last + 1 :] if m.get("role") == "tool"
    ]


def _responses_outputs(body: Any) -> list[tuple[str, str]]:
    items = body.get("input")
    if not isinstance(items, list):
        return []
    return [
        (i["call_id"], i["output"])
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]


def sent_outputs(stub: StubOpenAI, loop: str, since: int) -> list[list[tuple[str, str]]]:
    """The tool outputs each model request after index ``since`` carried, per request."""
    found: list[list[tuple[str, str]]] = []
    for record in stub.requests[since:]:
        if record.method != "POST" or not isinstance(record.body, dict):
            continue
        if loop.startswith("chat") and record.path == "/v1/chat/completions":
            outputs = _chat_outputs(record.body)
        elif loop.startswith("responses") and record.path == "/v1/responses":
            outputs = _responses_outputs(record.body)
        elif loop.startswith("assistants") and record.path.endswith("/submit_tool_outputs"):
            outputs = [(o["tool_call_id"], o["output"]) for o in record.body["tool_outputs"]]
        else:
            continue
        if outputs:
            found.append(outputs)
    return found


class LoopRunner:
    """Runs one user turn through any of the six loops against the same stub and tools."""

    def __init__(self, stub: StubOpenAI, tools: MixpeekTools, **client_kwargs: Any) -> None:
        self.stub = stub
        self.tools = tools
        self.client_kwargs = client_kwargs
        self._assistant_id: str | None = None

    def assistant_id(self) -> str:
        if self._assistant_id is None:
            self._assistant_id = create_assistant(
                self.stub.client(), self.tools, model="gpt-4o", name="reliability"
            ).id
        return self._assistant_id

    def run(
        self,
        loop: str,
        text: str = "find sso demos",
        *,
        on_event: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Outcome:
        """Run ``loop``; never raises (the exception is on the outcome)."""
        since = len(self.stub.requests)
        outcome = Outcome()
        kind, mode = loop.split("-")
        try:
            if mode == "sync":
                outcome.result = self._sync(kind, text, on_event, kwargs)
            else:
                outcome.result, outcome.leftover_tasks = asyncio.run(
                    self._async(kind, text, on_event, kwargs)
                )
        except Exception as exc:
            outcome.error = exc
        holder = outcome.result if outcome.result is not None else outcome.error
        outcome.calls = list(getattr(holder, "calls", None) or [])
        outcome.sent_outputs = sent_outputs(self.stub, loop, since)
        return outcome

    def _sync(
        self, kind: str, text: str, on_event: Callable[[Any], None] | None, kw: dict[str, Any]
    ) -> Any:
        client = self.stub.client(**self.client_kwargs)
        if kind == "chat":
            messages = [{"role": "user", "content": text}]
            return run_chat(
                client, self.tools, model="gpt-4o", messages=messages, on_event=on_event, **kw
            )
        if kind == "responses":
            return run_responses(
                client, self.tools, model="gpt-4o", input=text, on_event=on_event, **kw
            )
        clock = VirtualClock()
        return run_assistant(
            client,
            self.tools,
            assistant_id=self.assistant_id(),
            message=text,
            on_event=on_event,
            sleep=clock.sleep,
            clock=clock,
            **kw,
        )

    async def _async(
        self, kind: str, text: str, on_event: Callable[[Any], None] | None, kw: dict[str, Any]
    ) -> tuple[Any, int]:
        client = self.stub.async_client(**self.client_kwargs)
        try:
            if kind == "chat":
                messages = [{"role": "user", "content": text}]
                result: Any = await arun_chat(
                    client, self.tools, model="gpt-4o", messages=messages, on_event=on_event, **kw
                )
            elif kind == "responses":
                result = await arun_responses(
                    client, self.tools, model="gpt-4o", input=text, on_event=on_event, **kw
                )
            else:
                clock = VirtualClock()
                result = await arun_assistant(
                    client,
                    self.tools,
                    assistant_id=self.assistant_id(),
                    message=text,
                    on_event=on_event,
                    sleep=clock.asleep,
                    clock=clock,
                    **kw,
                )
        finally:
            await client.close()
        # Whatever the loop started must be finished by the time it returns.
        leftover = len(asyncio.all_tasks() - {asyncio.current_task()})
        return result, leftover


def is_fake_server_thread(thread: threading.Thread) -> bool:
    """The fake's own threads: its serve loop and its per-connection handlers."""
    return thread.name.startswith("FakeMixpeek:") or "process_request_thread" in thread.name


POOL_PREFIX = "mixpeek-openai-call"


def working_on_a_call(thread: threading.Thread) -> bool:
    """Whether ``thread`` is running a tool call now (an idle pool worker is not)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(("_pipeline.py", "_transport.py")):
            return True
        frame = frame.f_back
    return False


def leftover_threads(baseline: set[int], *, grace_s: float = 5.0) -> list[threading.Thread]:
    """Threads started since ``baseline`` (idents) still alive, or still working on a call,
    after a grace period, other than the fake server's own. A tool set's long-lived
    worker pool may stay, as long as its workers are idle."""
    gc.collect()  # tool sets nobody holds any more stop their pools
    fresh = [
        t for t in threading.enumerate() if t.ident not in baseline and not is_fake_server_thread(t)
    ]
    deadline = time.monotonic() + grace_s
    left = []
    for thread in fresh:
        if thread.name.startswith(POOL_PREFIX):
            # The loop returned, so its batches did: a worker inside a call now is left over.
            if working_on_a_call(thread):
                left.append(thread)
            continue
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    return left


def thread_baseline() -> set[int]:
    """Idents of the threads alive now."""
    return {t.ident for t in threading.enumerate() if t.ident is not None}


def assert_answered_in_order(outcome: Outcome, call_ids: Sequence[str]) -> None:
    """Every call id got exactly one output, in call order, in the next model request,
    and the dispatcher's records agree."""
    assert [r.call_id for r in outcome.calls] == list(call_ids), outcome.calls
    assert outcome.sent_outputs, "no tool outputs reached the model"
    first = outcome.sent_outputs[0]
    assert [cid for cid, _ in first] == list(call_ids)
    for _, output in first:
        json.loads(output)  # always JSON


def settle(fake: FakeMixpeek) -> None:
    """Wait until the fake has nothing in flight (a client that gave up may leave the
    server finishing its answer) and assert it."""
    assert fake.wait_until_idle(timeout=10), "a request is still in flight"
    assert fake.in_flight() == 0
