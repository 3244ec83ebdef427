"""Figure 6: 100 and 500 concurrent ``arun_chat`` conversations - threads and throughput.

N conversations run at once (``asyncio.gather``) on one ``AsyncOpenAI`` client (the
``StubOpenAI`` transport, in this process) and one tool set whose ``mixpeek.Mixpeek``
client points at the zero-latency loopback server (another process,
:mod:`benchmarks._loopback`; the realistic 10-document body). Each conversation: three
model turns asking for 2 tool calls each, then the answer (4 model requests, 6 tool
calls). The stub's scripted turns are one queue for all conversations, so
:class:`_Conversations` picks each reply from the conversation it is given (the number of
tool-call turns so far), scripting it just before the stub answers.

Measured per N: conversations per second (wall), and the peak thread count of this
process, sampled every 2 ms by a thread of its own (the kernel's count from
``/proc/self/status``, the sampler left out; Python's ``threading.active_count`` beside
it), with peak RSS growth. The server reports the most connections open at once and the
executes it served, so connection pooling and the tool calls are checked from outside.

The peer is (b): openai-agents' ``Runner.run`` with the same body
(:mod:`benchmarks.peers.agents_tool`) on an ``OpenAIChatCompletionsModel`` over the same
stub, tracing off. Everything on the client side (the event loop, our code, the openai
client, the stub) shares this one process and its GIL, on a machine whose cores the
server shares too.

Goals: at most 32 threads in the process at peak; conversations/s at 500 >= 0.9x that
at 100.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2

from benchmarks._backend import (
    VIDEO_RETRIEVER,
    Samples,
    build_tools,
    close_tools,
    realistic_loopback,
    strict_arguments,
)
from benchmarks._loopback import LoopbackMixpeek
from benchmarks._report import (
    Figure,
    HotSpots,
    PeakThreads,
    Settings,
    Stat,
    fmt_ratio,
    frozen_heap,
    os_thread_count,
    profile_hot_spots,
)
from benchmarks.peers import agents_tool, handwritten
from mixpeek_openai.chat import arun_chat
from mixpeek_openai.testing import StubOpenAI

__all__ = ["run"]

TITLE = "Concurrent async conversations (arun_chat): threads and throughput, 100 vs 500"
GOAL = "<= 32 threads at peak; conv/s at 500 >= 0.9x conv/s at 100 (every call ok)"
MAX_THREADS = 32
RATE_GOAL = 0.9
TOOL_TURNS = 3
CALLS_PER_TURN = 2
OURS = "ours (arun_chat)"
PEER = "(b) openai-agents Runner.run"
_QUERIES = (
    "how to configure the CRM integration webhook",
    "billing dashboard invoices",
    "mobile release notes",
    "data export to the warehouse",
)


@dataclass
class _Conversations:
    """A transport handler: replies that depend on the conversation, via the stub."""

    stub: StubOpenAI
    tool_name: str
    arguments: list[dict[str, Any]]
    requests: int = 0
    seconds: float = 0.0
    """Time spent inside the stub (it runs on the event loop's thread)."""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        self.requests += 1
        if request.method == "POST" and request.url.path.endswith("/chat/completions"):
            body = json.loads(request.content)
            turns = sum(
                1
                for m in body.get("messages", [])
                if m.get("role") == "assistant" and m.get("tool_calls")
            )
            # Sync handler on the event loop thread: scripting and answering cannot be
            # interleaved with another conversation's request.
            if turns < TOOL_TURNS:
                calls = [
                    self.stub.call(
                        self.tool_name, self.arguments[(turns + i) % len(self.arguments)]
                    )
                    for i in range(CALLS_PER_TURN)
                ]
                self.stub.script(self.stub.tool_calls(calls))
            else:
                self.stub.script(self.stub.text("Here is what I found."))
        response = cast(httpx2.Response, self.stub.transport.handler(request))
        self.seconds += time.perf_counter() - started
        return response

    def client(self) -> Any:
        """An ``AsyncOpenAI`` client whose requests this handler answers."""
        return self.stub.async_client(
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        )


Runner = Callable[[int], Awaitable[list[Any]]]
"""Runs ``n`` conversations concurrently; returns one result per conversation."""


def _ours(client: Any, tools: Any) -> Runner:
    async def run_all(n: int) -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    arun_chat(
                        client,
                        tools,
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"{_QUERIES[i % 4]} ({i})"}],
                    )
                    for i in range(n)
                )
            )
        )

    return run_all


def _agents(client: Any, mixpeek: Any) -> Runner:
    from agents import Agent, OpenAIChatCompletionsModel, RunConfig
    from agents import Runner as AgentsRunner

    agent: Any = Agent(
        name="videos",
        instructions="Find video segments.",
        tools=[agents_tool.make_tool(mixpeek, VIDEO_RETRIEVER)],
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
    )
    config = RunConfig(tracing_disabled=True)

    async def run_all(n: int) -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    AgentsRunner.run(agent, input=f"{_QUERIES[i % 4]} ({i})", run_config=config)
                    for i in range(n)
                )
            )
        )

    return run_all


def _ours_failed(result: Any) -> int | None:
    """Tool calls of one conversation that failed, or None if it did not run its turns."""
    calls = getattr(result, "calls", None)
    if calls is None or not getattr(result, "content", None):
        return None
    if len(calls) != TOOL_TURNS * CALLS_PER_TURN:
        return None
    return sum(1 for c in calls if not getattr(c, "ok", True))


def _agents_failed(result: Any) -> int | None:
    outputs = [i for i in result.new_items if type(i).__name__ == "ToolCallOutputItem"]
    if len(outputs) != TOOL_TURNS * CALLS_PER_TURN or not result.final_output:
        return None
    # The SDK's default failure_error_function answers the model with this text.
    return sum(1 for o in outputs if str(o.output).startswith("An error occurred"))


class _CountedWarnings(logging.Handler):
    """Counts the package's warnings (one per failed tool call) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = record.getMessage()

    def __enter__(self) -> _CountedWarnings:
        logger = logging.getLogger("mixpeek_openai")
        self._propagate = logger.propagate
        logger.addHandler(self)
        logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("mixpeek_openai")
        logger.removeHandler(self)
        logger.propagate = self._propagate


@dataclass
class _Series:
    """Measurements of one approach."""

    handler: _Conversations
    runner: Runner
    check: Callable[[Any], int | None]
    reps: int
    rate: dict[int, list[float]] = field(default_factory=dict)
    threads: dict[int, int] = field(default_factory=dict)
    threads_python: dict[int, int] = field(default_factory=dict)
    baseline: dict[int, int] = field(default_factory=dict)
    rss_mib: dict[int, float] = field(default_factory=dict)
    executes: dict[int, int] = field(default_factory=dict)
    connections: dict[int, int] = field(default_factory=dict)
    stub_share: dict[int, float] = field(default_factory=dict)
    failed_calls: dict[int, int] = field(default_factory=dict)
    failed_conversations: dict[int, int] = field(default_factory=dict)


def _measure(loop: asyncio.AbstractEventLoop, server: LoopbackMixpeek, s: _Series, n: int) -> None:
    gc.collect()
    server.reset()
    stub_before = s.handler.seconds
    with PeakThreads() as peaks:
        start = time.perf_counter()
        results = loop.run_until_complete(s.runner(n))
        wall = time.perf_counter() - start
    failed = [s.check(r) for r in results]
    broken = [r for r, f in zip(results, failed, strict=True) if f is None]
    if broken:
        raise RuntimeError(f"{len(broken)} of {n} conversations went wrong: {broken[0]!r:.300}")
    s.failed_calls[n] = max(s.failed_calls.get(n, 0), sum(f or 0 for f in failed))
    s.failed_conversations[n] = max(s.failed_conversations.get(n, 0), sum(1 for f in failed if f))
    stats = server.stats()
    s.rate.setdefault(n, []).append(n / wall)
    s.threads[n] = max(s.threads.get(n, 0), peaks.peak)
    s.threads_python[n] = max(s.threads_python.get(n, 0), peaks.peak_python)
    s.baseline[n] = max(s.baseline.get(n, 0), peaks.baseline)
    s.rss_mib[n] = max(s.rss_mib.get(n, 0.0), (peaks.peak_rss - peaks.baseline_rss) / 2**20)
    s.executes[n] = stats.executes
    s.connections[n] = max(s.connections.get(n, 0), stats.max_connections)
    s.stub_share[n] = (s.handler.seconds - stub_before) / wall


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 6."""
    sizes = (settings.pick(100, 2), settings.pick(500, 4))
    reps = settings.reps(3, 1)
    hot: HotSpots | None = None
    series: dict[str, _Series] = {}
    tools: Any = None
    before = os_thread_count()
    warned = _CountedWarnings()
    loop = asyncio.new_event_loop()
    try:
        with realistic_loopback(samples) as server:
            mixpeek = server.client()
            tools = build_tools(mixpeek, [VIDEO_RETRIEVER])
            name = tools.definitions[0].name
            ours_handler = _Conversations(
                StubOpenAI(),
                name,
                [strict_arguments(tools, name, query=q, limit=10) for q in _QUERIES],
            )
            agents_handler = _Conversations(
                StubOpenAI(),
                handwritten.HAND_TOOL_NAME,
                [{"query": q, "limit": 10} for q in _QUERIES],
            )
            series[OURS] = _Series(
                ours_handler, _ours(ours_handler.client(), tools), _ours_failed, reps
            )
            series[PEER] = _Series(
                agents_handler,
                _agents(agents_handler.client(), mixpeek),
                _agents_failed,
                1,  # the reference, not what is tested: once per size
            )
            for s in series.values():
                loop.run_until_complete(s.runner(2))  # warm-up
            with frozen_heap(), warned:
                for rep in range(reps):
                    for n in sizes:
                        for s in series.values():
                            if rep < s.reps:
                                _measure(loop, server, s, n)
                if settings.profile:
                    ours_runner = series[OURS].runner
                    hot = profile_hot_spots(lambda: loop.run_until_complete(ours_runner(sizes[0])))
    finally:
        if tools is not None:
            close_tools(tools)
        # Finalise async generators (the tool set's connection pools close with them).
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return _figure(settings, sizes, series, hot, before, warned)


def _figure(
    settings: Settings,
    sizes: tuple[int, int],
    series: dict[str, _Series],
    hot: HotSpots | None,
    before: int,
    warned: _CountedWarnings,
) -> Figure:
    small, large = sizes
    ours, peer = series[OURS], series[PEER]
    rate = {k: {n: Stat.of(s.rate[n], "conv/s") for n in sizes} for k, s in series.items()}
    rate_ratio = rate[OURS][large].median / rate[OURS][small].median
    peer_ratio = rate[PEER][large].median / rate[PEER][small].median
    vs_peer = {n: rate[OURS][n].median / rate[PEER][n].median for n in sizes}
    peak = max(ours.threads.values())
    failed = {n: ours.failed_calls.get(n, 0) for n in sizes}
    goals = {
        f"<= {MAX_THREADS} threads": peak <= MAX_THREADS,
        f"rate {large}/{small} >= {RATE_GOAL}": rate_ratio >= RATE_GOAL,
        "every tool call succeeded": not any(failed.values()),
    }
    met = all(goals.values())
    notes = []
    calls = TOOL_TURNS * CALLS_PER_TURN
    for n in sizes:
        if failed[n]:
            notes.append(
                f"Missed: at {n} conversations {failed[n]} of {n * calls} tool calls failed (in "
                f"{ours.failed_conversations[n]} conversations; the package logged "
                f"{warned.count} warnings in all, the first: {warned.first!r:.160}), so the "
                f"rate at {n} counts calls that gave up early."
            )
    if peak > MAX_THREADS:
        notes.append(
            f"Missed: {peak} threads at peak ({peak - MAX_THREADS} over {MAX_THREADS}, "
            f"{peak / MAX_THREADS:.1f}x; {ours.threads[small]} at {small} conversations): the "
            f"count grows with the conversations in flight, so the tool calls run on threads "
            f"(the peer peaks at {max(peer.threads.values())})."
        )
    if rate_ratio < RATE_GOAL:
        notes.append(
            f"Missed: conv/s at {large} is {rate_ratio:.2f}x that at {small} "
            f"({RATE_GOAL - rate_ratio:.2f} under {RATE_GOAL}x; the peer's is "
            f"{peer_ratio:.2f}x on the same stubs and server)."
        )
    notes.append(
        f"Peak threads {ours.threads[small]} / {ours.threads[large]} at {small} / {large} "
        f"conversations (Python's count {ours.threads_python[small]} / "
        f"{ours.threads_python[large]}; {before} before the figure started); the server saw at "
        f"most {ours.connections[small]} / {ours.connections[large]} connections open at once "
        f"and {ours.executes[large]} executes for {large} conversations."
    )
    notes.append(
        f"What limits the rate: one process and its GIL on a shared 2-core machine; the "
        f"stub takes ~{ours.stub_share[large]:.0%} of the wall time at {large}."
    )
    if hot is not None:
        notes.append(
            f"Profile of ours, {small} conversations (pyinstrument, event-loop thread, "
            f"weighed by {hot.weighed_by}; the thread was on CPU {hot.cpu_share:.0f}% of the "
            f"wall time), self time by module: {hot.modules_text}. Top functions: "
            + "; ".join(f"{label} {pct:.0f}%" for label, pct in hot.self_time[:5])
            + "."
        )
    details = []
    for label, s in series.items():
        for n in sizes:
            details.append(
                f"{label}, {n} conversations: {rate[label][n].text(1)}; peak threads "
                f"{s.threads[n]} (Python {s.threads_python[n]}, {s.baseline[n]} at the start); "
                f"peak RSS growth {s.rss_mib[n]:.0f} MiB; {s.executes[n]} executes, at most "
                f"{s.connections[n]} connections open at the server; "
                f"{s.failed_calls.get(n, 0)} tool calls failed"
            )
    details.append(
        f"Each conversation: {TOOL_TURNS} turns of {CALLS_PER_TURN} tool calls, then the "
        f"answer; {ours.reps} repetitions per size for ours, {peer.reps} for the peer."
    )

    def cell(label: str) -> str:
        s = series[label]
        return (
            f"{small}: {rate[label][small].short(1)}, {s.threads[small]} threads; "
            f"{large}: {rate[label][large].short(1)}, {s.threads[large]} threads"
        )

    return Figure(
        key="6",
        title=TITLE,
        ours=cell(OURS),
        peers=f"(b) {cell(PEER)}; (a), (c), (d): no loop of their own here",
        ratios=(
            f"ours conv/s {large}/{small} {rate_ratio:.2f}x; (b) {peer_ratio:.2f}x; "
            f"ours/(b) conv/s {fmt_ratio(vs_peer[small])} ({small}), "
            f"{fmt_ratio(vs_peer[large])} ({large}); ours peak threads {peak}"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "sizes": sizes,
            "goals": goals,
            "threads_before": before,
            "series": {
                label: {
                    "repetitions": s.reps,
                    "conversations_per_s": {n: rate[label][n].__dict__ for n in sizes},
                    "peak_threads": s.threads,
                    "peak_threads_python": s.threads_python,
                    "threads_at_start": s.baseline,
                    "peak_rss_growth_mib": s.rss_mib,
                    "executes": s.executes,
                    "server_max_connections": s.connections,
                    "stub_share": s.stub_share,
                    "failed_calls": s.failed_calls,
                }
                for label, s in series.items()
            },
            "profile": (
                {"modules": hot.by_module, "functions": hot.self_time} if hot is not None else None
            ),
        },
    )
