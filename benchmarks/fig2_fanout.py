"""Figure 2: fan-out - 8 tool calls in one turn with 150 ms server latency on loopback.

``FakeMixpeek`` adds 150 ms to every execute. For each approach, one repetition times a
turn with one call and a turn with eight; the figure is the median of the per-repetition
ratio (8 calls / 1 call). The fake's request records give the server-side overlap (the
most executes in flight at once), which shows the concurrency without timing assumptions.

* ours: ``tools.handle(calls)`` and ``await tools.ahandle(calls)``;
* (a) hand-written: the docs' sequential loop;
* (b) openai-agents: the runner's way, ``asyncio.gather`` of ``on_invoke_tool`` (its sync
  function goes through ``asyncio.to_thread``, i.e. the loop's default executor);
* (c) langchain-mixpeek: ``MixpeekTool.batch`` (LangChain's thread-pool batch), pointed at
  the fake; it answers ``[]`` there (see :mod:`benchmarks.peers.langchain_tool`).

Goal: ours <= 1.2x one call.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

from benchmarks._backend import (
    DEMO_RETRIEVER,
    Samples,
    chat_call,
    strict_arguments,
    widen_backlog,
)
from benchmarks._report import Figure, Settings, Stat, fmt_ratio, timed
from benchmarks.peers import agents_tool, handwritten, langchain_tool
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import MixpeekTools, RetrieverCache

__all__ = ["run"]

TITLE = "Fan-out: 8 tool calls in one turn, 150 ms server latency"
GOAL = "ours <= 1.2x one call"
FAN = 8
LC = "(c) langchain-mixpeek batch"
QUERIES = (
    "how to set up sso",
    "pipeline dashboards walkthrough",
    "mobile push notifications",
    "crm import contacts",
    "analytics funnels",
    "integrations webhooks",
    "audit log export",
    "ai features summary",
)


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 2."""
    latency = settings.pickf(0.150, 0.02)
    reps = settings.pick(7, 1)
    loop = asyncio.new_event_loop()
    try:
        with FakeMixpeek() as fake:
            widen_backlog(fake)
            fake.set_latency(latency, "execute")
            client = fake.client()
            tools = MixpeekTools.from_retrievers(client, [DEMO_RETRIEVER], cache=RetrieverCache())
            name = tools.definitions[0].name
            ours_calls = [
                chat_call(f"call_{i}", name, strict_arguments(tools, name, query=q, limit=10))
                for i, q in enumerate(QUERIES[:FAN])
            ]
            hand_calls = [
                chat_call(f"call_{i}", handwritten.HAND_TOOL_NAME, {"query": q, "limit": 10})
                for i, q in enumerate(QUERIES[:FAN])
            ]
            agents = agents_tool.make_tool(client, DEMO_RETRIEVER)
            agents_calls = [(c.id, c.function.arguments) for c in hand_calls]
            lc_tool = (
                langchain_tool.make_tool(
                    api_key=fake.api_key,
                    namespace=fake.namespace,
                    retriever_id=DEMO_RETRIEVER,
                    top_k=10,
                    content_field="description",
                )
                if langchain_tool.available()
                else None
            )

            def ours_sync(n: int) -> Any:
                return tools.handle(ours_calls[:n])

            def ours_async(n: int) -> Any:
                return loop.run_until_complete(tools.ahandle(ours_calls[:n]))

            def hand(n: int) -> Any:
                return handwritten.handle_tool_calls(client, DEMO_RETRIEVER, hand_calls[:n])

            def agents_run(n: int) -> Any:
                return loop.run_until_complete(agents_tool.invoke_all(agents, agents_calls[:n]))

            def langchain(n: int) -> Any:
                assert lc_tool is not None
                with langchain_tool.pointed_at(fake.base_url):
                    if n == 1:
                        return [lc_tool.invoke(QUERIES[0])]
                    return lc_tool.batch(list(QUERIES[:n]))

            approaches: dict[str, Callable[[int], Any]] = {
                "ours (sync handle)": ours_sync,
                "ours (async ahandle)": ours_async,
                "(a) hand-written": hand,
                "(b) openai-agents": agents_run,
            }
            if lc_tool is not None:
                approaches[LC] = langchain
            # Warm-up (connections), and a correctness check of every 8-call answer.
            outputs = {label: fn(FAN) for label, fn in approaches.items()}
            for label in ("ours (sync handle)", "ours (async ahandle)"):
                if any(not json.loads(o["content"]).get("documents") for o in outputs[label]):
                    raise RuntimeError(f"{label} returned an error output")
            lc_output = str(outputs[LC][0]) if LC in outputs else "not installed"
            one: dict[str, list[float]] = {label: [] for label in approaches}
            eight: dict[str, list[float]] = {label: [] for label in approaches}
            ratios: dict[str, list[float]] = {label: [] for label in approaches}
            overlap: dict[str, int] = {}
            for _ in range(reps):
                for label, fn in approaches.items():
                    t1 = timed(lambda fn=fn: fn(1))  # type: ignore[misc]
                    fake.clear_requests()
                    t8 = timed(lambda fn=fn: fn(FAN))  # type: ignore[misc]
                    overlap[label] = max(overlap.get(label, 0), fake.max_overlap("execute"))
                    one[label].append(t1 * 1000)
                    eight[label].append(t8 * 1000)
                    ratios[label].append(t8 / t1)
    finally:
        loop.close()

    stat_ratio = {label: Stat.of(v, "x") for label, v in ratios.items()}
    stat_one = {label: Stat.of(v, "ms") for label, v in one.items()}
    stat_eight = {label: Stat.of(v, "ms") for label, v in eight.items()}
    ours = stat_ratio["ours (sync handle)"]
    ours_a = stat_ratio["ours (async ahandle)"]
    met = ours.median <= 1.2 and ours_a.median <= 1.2
    notes = []
    if not met:
        worst = max(ours.median, ours_a.median)
        notes.append(
            f"Missed by {worst - 1.2:.2f}x (sync {fmt_ratio(ours.median)}, async "
            f"{fmt_ratio(ours_a.median)}); server-side overlap was "
            f"{overlap['ours (sync handle)']}/{FAN}."
        )
    workers = min(32, (os.cpu_count() or 1) + 4)
    notes.append(
        f"(b) runs its sync function via asyncio.to_thread: the default executor has "
        f"{workers} workers on this machine, so 8 calls run in "
        f"{-(-FAN // workers)} waves. (c) answers `[]` against the current API."
    )
    details = []
    for label in approaches:
        details.append(
            f"{label}: 1 call {stat_one[label].short(1)}, {FAN} calls "
            f"{stat_eight[label].short(1)}, ratio {stat_ratio[label].text(2)}; "
            f"max executes in flight at the server: {overlap[label]}"
        )
    details += [
        f"Server latency {latency * 1000:.0f} ms per execute (FakeMixpeek on 127.0.0.1), "
        f"{reps} repetitions.",
        f"(c) output for a query that matches 10 documents: {lc_output[:60]!r} (it reads "
        "the deprecated `results` alias, which the API sends only on request).",
    ]
    speedup = stat_eight["(a) hand-written"].median / stat_eight["ours (sync handle)"].median
    return Figure(
        key="2",
        title=TITLE,
        ours=f"{fmt_ratio(ours.median)} sync; {fmt_ratio(ours_a.median)} async",
        peers=(
            f"(a) {fmt_ratio(stat_ratio['(a) hand-written'].median)}; "
            f"(b) {fmt_ratio(stat_ratio['(b) openai-agents'].median)}"
            + (f"; (c) {fmt_ratio(stat_ratio[LC].median)}" if LC in stat_ratio else "; (c) n/a")
        ),
        ratios=(
            f"8-call turn: ours {stat_eight['ours (sync handle)'].short()} vs "
            f"(a) {stat_eight['(a) hand-written'].short()} "
            f"({speedup:.1f}x faster)"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "latency_s": latency,
            "repetitions": reps,
            "ratio": {k: v.__dict__ for k, v in stat_ratio.items()},
            "one_call_ms": {k: v.__dict__ for k, v in stat_one.items()},
            "eight_calls_ms": {k: v.__dict__ for k, v in stat_eight.items()},
            "server_overlap": overlap,
        },
    )
