"""Figure 6: throughput and memory of many concurrent async conversations through ``arun_chat``.

N conversations run at once (``asyncio.gather``) on one ``AsyncOpenAI`` client (the
``StubOpenAI`` transport) and one tool set (``FakeMixpeek`` on loopback, no added
latency). The peer is (b): openai-agents' ``Runner.run`` with the same kind of tool
(:mod:`benchmarks.peers.agents_tool`) on an ``OpenAIChatCompletionsModel`` over the same
stub, tracing off. Each conversation: three model turns asking for 2 tool calls each, then the
answer (4 model requests, 6 tool calls). The stub's scripted turns are one queue for all
conversations, so :class:`_Conversations` picks each reply from the conversation it is
given (the number of tool-call turns so far), scripting it just before the stub answers.

Measured per N (100 and 500): conversations per second (wall) and the peak RSS above the
baseline (psutil, sampled every 5 ms from a thread). Everything - the event loop, our
worker threads, the fake server's threads and the stub - shares this one process and its
GIL, so the throughput is the whole system's on 2 cores, not ours alone.

Memory per conversation is also measured as the Python heap's peak (tracemalloc, in a
separate pass, as it slows the run down), which unlike RSS does not depend on what the
allocator kept from earlier runs in the same process.

Goal: flat across 100 / 500 - throughput within 20% and memory per conversation (heap
peak) not growing by more than 25%.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2

from benchmarks._backend import DEMO_RETRIEVER, Samples, strict_arguments, widen_backlog
from benchmarks._report import Figure, HotSpots, Settings, Stat, fmt_ratio, profile_hot_spots
from benchmarks.peers import agents_tool, handwritten
from mixpeek_openai.chat import arun_chat
from mixpeek_openai.dispatch import DispatchConfig
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools, RetrieverCache

__all__ = ["run"]

TITLE = "Throughput and memory: concurrent async conversations (arun_chat)"
GOAL = "flat across 100 / 500: conv/s within 20%, memory per conversation within 25%"
TOOL_TURNS = 3
CALLS_PER_TURN = 2
_QUERIES = ("how to set up sso", "pipeline dashboards", "mobile push", "crm import")


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


class _PeakRss:
    """Samples this process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil  # type: ignore[import-untyped]

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _threads() -> int:
    return threading.active_count()


Runner = Callable[[int], Awaitable[list[Any]]]
"""Runs ``n`` conversations concurrently; returns one result per conversation."""


async def _watch_threads(runner: Runner, n: int) -> tuple[list[Any], int]:
    peak_threads = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak_threads
        while not done.is_set():
            peak_threads = max(peak_threads, _threads())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        results = await runner(n)
    finally:
        done.set()
        await watcher
    return results, peak_threads


def _heap_peak_per_conversation(loop: asyncio.AbstractEventLoop, runner: Runner, n: int) -> float:
    """Peak Python-heap growth per conversation (tracemalloc), KiB.

    Unlike RSS it does not depend on what the allocator kept from earlier runs in this
    process; it leaves out thread stacks (see the thread counts).
    """
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        results = loop.run_until_complete(runner(n))
        _, peak = tracemalloc.get_traced_memory()
        del results
    finally:
        tracemalloc.stop()
    return (peak - base) / 1024 / n


@dataclass
class _Series:
    """Measurements of one approach."""

    handler: _Conversations
    runner: Runner
    check: Callable[[Any], bool]
    rate: dict[int, list[float]] = field(default_factory=dict)
    rss_mib: dict[int, list[float]] = field(default_factory=dict)
    threads: dict[int, int] = field(default_factory=dict)
    executes: dict[int, int] = field(default_factory=dict)
    overlap: dict[int, int] = field(default_factory=dict)
    stub_share: dict[int, float] = field(default_factory=dict)
    server_share: dict[int, float] = field(default_factory=dict)
    heap_kib: dict[int, float] = field(default_factory=dict)

    def peak_rss(self, n: int) -> float:
        """Largest RSS growth over the repetitions (MiB).

        The allocator keeps what it freed, so later repetitions in this process start
        from a warmed heap and grow less: the peak is the largest growth.
        """
        return max(0.0, *self.rss_mib[n])


def _ours(client: Any, tools: MixpeekTools) -> Runner:
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
        name="demos",
        instructions="Find product demo videos.",
        tools=[agents_tool.make_tool(mixpeek, DEMO_RETRIEVER)],
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


def _ours_ok(result: Any) -> bool:
    return len(result.calls) == TOOL_TURNS * CALLS_PER_TURN and all(c.ok for c in result.calls)


def _agents_ok(result: Any) -> bool:
    outputs = [i for i in result.new_items if type(i).__name__ == "ToolCallOutputItem"]
    return len(outputs) == TOOL_TURNS * CALLS_PER_TURN and bool(result.final_output)


def _stub_client(handler: _Conversations) -> Any:
    return handler.stub.async_client(
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    )


def _execute_round_trip_ms(mixpeek: Any, count: int) -> float:
    rtt: list[float] = []
    for i in range(count):
        t0 = time.perf_counter()
        mixpeek.retrievers.execute(DEMO_RETRIEVER, inputs={"query": _QUERIES[i % 4]}, limit=3)
        rtt.append((time.perf_counter() - t0) * 1000)
    return Stat.of(rtt, "ms").median


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 6."""
    sizes = (settings.pick(100, 4), settings.pick(500, 12))
    reps = settings.pick(3, 1)
    hot: HotSpots | None = None
    series: dict[str, _Series] = {}
    with FakeMixpeek() as fake:
        widened = widen_backlog(fake, 1024)
        mixpeek = fake.client()
        tools = MixpeekTools.from_retrievers(mixpeek, [DEMO_RETRIEVER], cache=RetrieverCache())
        name = tools.definitions[0].name
        ours_handler = _Conversations(
            StubOpenAI(), name, [strict_arguments(tools, name, query=q, limit=3) for q in _QUERIES]
        )
        agents_handler = _Conversations(
            StubOpenAI(),
            handwritten.HAND_TOOL_NAME,
            [{"query": q, "limit": 3} for q in _QUERIES],
        )
        series[OURS] = _Series(ours_handler, _ours(_stub_client(ours_handler), tools), _ours_ok)
        series[PEER] = _Series(
            agents_handler, _agents(_stub_client(agents_handler), mixpeek), _agents_ok
        )
        execute_ms = _execute_round_trip_ms(mixpeek, settings.pick(40, 3))
        loop = asyncio.new_event_loop()
        try:
            for s in series.values():
                loop.run_until_complete(s.runner(2))  # warm-up
            for _ in range(reps):
                for n in sizes:
                    for s in series.values():
                        _measure(loop, fake, s, n, execute_ms)
            # tracemalloc slows everything several times over; a long deadline keeps the
            # calls of this pass from timing out (the default is 20 s per call).
            patient = MixpeekTools.from_retrievers(
                mixpeek,
                [DEMO_RETRIEVER],
                cache=RetrieverCache(),
                config=DispatchConfig(deadline_s=600),
            )
            heap_runner = _ours(_stub_client(ours_handler), patient)
            for n in sizes:
                series[OURS].heap_kib[n] = _heap_peak_per_conversation(loop, heap_runner, n)
            if settings.profile:
                ours_runner = series[OURS].runner
                hot = profile_hot_spots(
                    lambda: loop.run_until_complete(ours_runner(sizes[0])),
                    inclusive=(
                        "arun_chat",
                        "run_in_executor",
                        "AsyncCompletions.create",
                        "_Conversations.__call__",
                    ),
                )
        finally:
            loop.close()
    return _figure(settings, sizes, reps, series, hot, widened, execute_ms)


OURS = "ours (arun_chat)"
PEER = "(b) openai-agents Runner.run"


def _measure(
    loop: asyncio.AbstractEventLoop, fake: FakeMixpeek, s: _Series, n: int, execute_ms: float
) -> None:
    fake.clear_requests()
    gc.collect()
    stub_before = s.handler.seconds
    with _PeakRss() as rss:
        start = time.perf_counter()
        results, peak_threads = loop.run_until_complete(_watch_threads(s.runner, n))
        wall = time.perf_counter() - start
    bad = [r for r in results if not s.check(r)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} conversations went wrong")
    executes = len(fake.requests_for("execute"))
    s.rate.setdefault(n, []).append(n / wall)
    s.rss_mib.setdefault(n, []).append((rss.peak - rss.baseline) / 2**20)
    s.threads[n] = max(s.threads.get(n, 0), peak_threads)
    s.executes[n] = executes
    s.overlap[n] = max(s.overlap.get(n, 0), fake.max_overlap("execute"))
    s.stub_share[n] = (s.handler.seconds - stub_before) / wall
    s.server_share[n] = executes * execute_ms / 1000 / wall


def _figure(
    settings: Settings,
    sizes: tuple[int, int],
    reps: int,
    series: dict[str, _Series],
    hot: HotSpots | None,
    widened: bool,
    execute_ms: float,
) -> Figure:
    small, large = sizes
    ours, peer = series[OURS], series[PEER]
    rate = {k: {n: Stat.of(s.rate[n], "conv/s") for n in sizes} for k, s in series.items()}
    rss = {k: {n: Stat.of(s.rss_mib[n], "MiB") for n in sizes} for k, s in series.items()}
    rate_ratio = rate[OURS][large].median / rate[OURS][small].median
    heap_ratio = ours.heap_kib[large] / ours.heap_kib[small] if ours.heap_kib[small] else 1.0
    rss_ratio = (ours.peak_rss(large) / large) / max(1e-9, ours.peak_rss(small) / small)
    vs_peer = {n: rate[OURS][n].median / rate[PEER][n].median for n in sizes}
    peer_ratio = rate[PEER][large].median / rate[PEER][small].median
    met = rate_ratio >= 0.8 and heap_ratio <= 1.25
    notes = []
    if rate_ratio < 0.8:
        notes.append(
            f"Missed: throughput at {large} is {rate_ratio:.2f}x that at {small} "
            f"({1 - rate_ratio:.0%} lower; the peer's drops to {peer_ratio:.2f}x on the same "
            f"stubs). At {large}, {ours.threads[large]} threads contend for the GIL."
        )
    if heap_ratio > 1.25:
        notes.append(
            f"Missed: heap per conversation grows {heap_ratio:.2f}x from {small} to {large}."
        )
    notes.append(
        f"Memory per conversation: Python heap peak (tracemalloc) {ours.heap_kib[small]:.0f} / "
        f"{ours.heap_kib[large]:.0f} KiB; peak RSS growth (psutil) "
        f"{ours.peak_rss(small) * 1024 / small:.0f} / {ours.peak_rss(large) * 1024 / large:.0f}"
        f" KiB ({rss_ratio:.2f}x) - RSS is noisy here (the allocator and glibc's thread-stack "
        f"cache keep memory between runs of one process), so the verdict uses the heap peak."
    )
    notes.append(
        f"Peak threads {ours.threads[large]} at {large} conversations (peer: "
        f"{peer.threads[large]}): each turn's 2 calls run on new worker threads (a pool per "
        f"turn); the fake server also starts a thread per connection."
    )
    notes.append(
        f"What limits the rate: one process and its GIL on 2 cores; at {large} conversations "
        f"the stub takes ~{ours.stub_share[large]:.0%} of the wall time and the fake's "
        f"executes ~{ours.server_share[large]:.0%} (at {execute_ms:.1f} ms per sequential "
        f"round trip); the rest is the openai client, our loop and dispatcher."
    )
    if hot is not None:
        share = hot.inclusive
        notes.append(
            f"On the event loop's thread (pyinstrument, {small} conversations): "
            f"{share.get('run_in_executor', 0):.0f}% goes to handing tool calls to new worker "
            f"threads (Thread.start waits for each new thread), "
            f"{share.get('AsyncCompletions.create', 0):.0f}% to the openai client's requests "
            f"(its param transforms; the stub's share "
            f"{share.get('_Conversations.__call__', 0):.0f}%)."
        )
    details = []
    for label, s in series.items():
        for n in sizes:
            details.append(
                f"{label}, {n} conversations: {rate[label][n].text(1)}; RSS growth "
                f"{rss[label][n].text(1)}, peak {s.peak_rss(n):.1f} MiB; heap peak "
                + (f"{s.heap_kib[n]:.0f} KiB per conversation" if s.heap_kib else "not measured")
                + f"; peak threads {s.threads[n]}; "
                f"{s.executes[n]} executes, at most {s.overlap[n]} in flight at the server"
            )
    details.append(
        f"Each conversation: {TOOL_TURNS} turns of {CALLS_PER_TURN} tool calls, then the "
        f"answer; {reps} repetitions per size and approach. The heap pass (tracemalloc, ours "
        f"only) runs once per size with a 600 s call deadline, as tracing slows it down."
    )
    if not widened:
        details.append("The fake's accept backlog could not be widened (socketserver's 5).")
    if hot is not None:
        details.append(f"pyinstrument ({small} conversations, event-loop thread): {hot.text}")

    def cell(label: str) -> str:
        s = series[label]
        if s.heap_kib:
            return (
                f"{small}: {rate[label][small].short(1)}, heap {s.heap_kib[small]:.0f} KiB/conv; "
                f"{large}: {rate[label][large].short(1)}, heap {s.heap_kib[large]:.0f} KiB/conv"
            )
        return (
            f"{small}: {rate[label][small].short(1)}, RSS +{s.peak_rss(small):.0f} MiB; "
            f"{large}: {rate[label][large].short(1)}, RSS +{s.peak_rss(large):.0f} MiB"
        )

    return Figure(
        key="6",
        title=TITLE,
        ours=cell(OURS),
        peers=f"(b) {cell(PEER)}; (a), (c): no loop of their own",
        ratios=(
            f"ours {large}/{small}: conv/s {rate_ratio:.2f}x, heap/conv {heap_ratio:.2f}x, "
            f"RSS/conv {rss_ratio:.2f}x; (b) {large}/{small}: conv/s {peer_ratio:.2f}x; "
            f"ours/(b) conv/s: {fmt_ratio(vs_peer[small])} "
            f"({small}), {fmt_ratio(vs_peer[large])} ({large})"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "sizes": sizes,
            "repetitions": reps,
            "execute_round_trip_ms": execute_ms,
            "series": {
                label: {
                    "conversations_per_s": {n: rate[label][n].__dict__ for n in sizes},
                    "rss_growth_mib": {n: rss[label][n].__dict__ for n in sizes},
                    "peak_rss_growth_mib": {n: s.peak_rss(n) for n in sizes},
                    "heap_peak_kib_per_conversation": s.heap_kib,
                    "peak_threads": s.threads,
                    "executes": s.executes,
                    "server_overlap": s.overlap,
                    "stub_share": s.stub_share,
                    "server_share_estimate": s.server_share,
                }
                for label, s in series.items()
            },
            "profile": hot.text if hot else None,
        },
    )
