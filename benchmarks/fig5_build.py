"""Figure 5: building tools for 20 retrievers with 100 ms latency per definition fetch.

``FakeMixpeek`` serves 20 retrievers (the 5 samples plus 15 copies under new ids) and adds
100 ms to every ``GET /v1/retrievers/{id}`` (and to the namespace listing). Measured:

* one request: ``client.retrievers.get(id)`` - the unit of the ratios;
* cold: ``MixpeekTools.from_retrievers(client, ids, cache=...)`` with an
  empty cache (definitions fetched concurrently);
* cached: the same again with the now-filled cache - requests made (goal: zero);
* ``from_namespace`` cold: one paginated listing instead of 20 gets;
* a sequential loop of 20 ``retrievers.get`` - what reading every ``input_schema`` one by
  one costs.

The peers make no request at all because they never read the retriever's
``input_schema``: their schema is written by hand (``query``/``limit``), so the other
inputs (enums, dates, numbers, media) cannot be reached by the model.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from benchmarks._backend import Samples, close_tools, new_cache
from benchmarks._report import Figure, Settings, Stat, fmt_ratio
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import MixpeekTools

__all__ = ["run"]

TITLE = "Building tools for 20 retrievers, 100 ms per request"
GOAL = "cached: 0 requests (cold: ratio to one request, reported)"
COUNT = 20


def _add_copies(fake: FakeMixpeek, count: int) -> list[str]:
    ids = list(fake.retriever_ids)
    base = [fake.retriever(rid) for rid in ids]
    i = 0
    while len(ids) < count:
        source = copy.deepcopy(dict(base[i % len(base)]))
        source["retriever_id"] = f"ret_bench_{i:02d}"
        source["retriever_name"] = f"bench_{i:02d}_{source['retriever_name']}"
        ids.append(fake.add_retriever(source))
        i += 1
    return ids[:count]


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 5."""
    latency = settings.pickf(0.100, 0.01)
    reps = settings.reps(7, 1)
    one: list[float] = []
    cold: list[float] = []
    cached: list[float] = []
    namespace: list[float] = []
    loop_ms: list[float] = []
    cold_requests: list[int] = []
    cached_requests: list[int] = []
    ns_requests: list[int] = []
    overlap = 0
    with FakeMixpeek() as fake:
        ids = _add_copies(fake, COUNT)
        fake.set_latency(latency, "get_retriever")
        fake.set_latency(latency, "list_retrievers")
        client = fake.client()
        client.retrievers.get(ids[0])  # warm the connection
        tool_count = 0
        for _ in range(reps):
            t0 = time.perf_counter()
            client.retrievers.get(ids[0])
            one.append((time.perf_counter() - t0) * 1000)

            cache = new_cache()
            fake.clear_requests()
            t0 = time.perf_counter()
            tools: Any = MixpeekTools.from_retrievers(client, ids, cache=cache)
            cold.append((time.perf_counter() - t0) * 1000)
            cold_requests.append(len(fake.requests))
            overlap = max(overlap, fake.max_overlap("get_retriever"))
            tool_count = len(tools.definitions)
            close_tools(tools)

            fake.clear_requests()
            t0 = time.perf_counter()
            close_tools(MixpeekTools.from_retrievers(client, ids, cache=cache))
            cached.append((time.perf_counter() - t0) * 1000)
            cached_requests.append(len(fake.requests))

            fake.clear_requests()
            t0 = time.perf_counter()
            close_tools(MixpeekTools.from_namespace(client, cache=new_cache()))
            namespace.append((time.perf_counter() - t0) * 1000)
            ns_requests.append(len(fake.requests))

            t0 = time.perf_counter()
            for rid in ids:
                client.retrievers.get(rid)
            loop_ms.append((time.perf_counter() - t0) * 1000)

    s_one = Stat.of(one, "ms")
    s_cold = Stat.of(cold, "ms")
    s_cached = Stat.of(cached, "ms")
    s_ns = Stat.of(namespace, "ms")
    s_loop = Stat.of(loop_ms, "ms")
    r_cold = s_cold.median / s_one.median
    r_ns = s_ns.median / s_one.median
    r_loop = s_loop.median / s_one.median
    met = max(cached_requests) == 0 and tool_count >= COUNT
    notes = []
    if max(cached_requests):
        notes.append(f"Missed: the cached build made {max(cached_requests)} requests.")
    notes.append(
        f"Cold fetches run {overlap} at a time (max_fetch_workers=16), so 20 definitions "
        f"take {-(-COUNT // max(1, overlap))} round trips; from_namespace pages through the "
        f"listing ({max(ns_requests)} requests, one after another)."
    )
    notes.append("Peers make no request: they never read input_schema (hand-written schema).")
    details = [
        f"one request: {s_one.text(1)}",
        f"cold from_retrievers ({COUNT} ids): {s_cold.text(1)}, requests {max(cold_requests)}, "
        f"ratio {fmt_ratio(r_cold)}; at most {overlap} fetches in flight at the server",
        f"cached from_retrievers: {s_cached.text(2)}, requests {max(cached_requests)}",
        f"cold from_namespace: {s_ns.text(1)}, requests {max(ns_requests)}, "
        f"ratio {fmt_ratio(r_ns)}",
        f"sequential loop of {COUNT} retrievers.get: {s_loop.text(1)}, ratio {fmt_ratio(r_loop)}",
        f"{tool_count} tools built; latency {latency * 1000:.0f} ms per request; {reps} reps.",
        "The fake listens with a backlog of 128 (socketserver's default of 5 drops SYNs "
        "when 16 connections open at once: 1 s stalls that measure the fake, not the code).",
    ]
    return Figure(
        key="5",
        title=TITLE,
        ours=(
            f"cold {s_cold.short()} ({max(cold_requests)} req); cached {s_cached.short(2)} "
            f"({max(cached_requests)} req); from_namespace {s_ns.short()} ({max(ns_requests)} req)"
        ),
        peers=f"sequential get loop {s_loop.short()}; (a)/(b)/(c): no request (hand schema)",
        ratios=(
            f"cold/one request {fmt_ratio(r_cold)}; from_namespace {fmt_ratio(r_ns)}; "
            f"loop {fmt_ratio(r_loop)}"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "latency_s": latency,
            "repetitions": reps,
            "one_ms": s_one.__dict__,
            "cold_ms": s_cold.__dict__,
            "cached_ms": s_cached.__dict__,
            "namespace_ms": s_ns.__dict__,
            "loop_ms": s_loop.__dict__,
            "requests": {
                "cold": max(cold_requests),
                "cached": max(cached_requests),
                "namespace": max(ns_requests),
            },
            "overlap": overlap,
        },
    )
