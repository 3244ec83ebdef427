"""Soak: many tool calls with randomly injected faults through the async chat loop.

Run on demand: ``pytest -m soak -s tests/test_soak.py`` (``SOAK_CALLS`` scales it; 10,000
by default). Every issued call id must be answered exactly once, in order, in the next
model request; errors are counted by kind; resident memory must stay flat.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections import Counter

import psutil
import pytest

from mixpeek_openai import DispatchConfig, MixpeekTools, RetryPolicy, arun_chat
from mixpeek_openai.retries import ManualClock
from mixpeek_openai.testing import FakeMixpeek, Fault, StubOpenAI

pytestmark = pytest.mark.soak

CALLS_PER_TURN = 25
FAULT_RATE = 0.05
RSS_GROWTH_LIMIT = 50 * 1024 * 1024
FAULTS = {
    "500": lambda: Fault.status(500),
    "503": lambda: Fault.status(503, retry_after=1),
    "429": lambda: Fault.status(429),
    "reset": Fault.reset,
    "malformed": Fault.malformed_json,
    "empty": Fault.empty_body,
    "422": lambda: Fault.status(422, message="inputs.query: rejected"),
    "failed": Fault.failed_execution,
}


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def _conversation(
    tools: MixpeekTools, ids: list[str], names: list[str], errors: Counter[str]
) -> tuple[list[str], list[str]]:
    """One user turn with ``len(ids)`` parallel calls; returns the ids the loop answered
    and the ids the model's next request carried, counting outcomes in ``errors``."""
    stub = StubOpenAI()
    stub.script(
        stub.tool_calls(
            [
                stub.call(name, {"query": f"q {cid}"}, call_id=cid)
                for cid, name in zip(ids, names, strict=True)
            ]
        ),
        stub.text("done"),
    )
    client = stub.async_client()
    try:
        result = await arun_chat(
            client,
            tools,
            model="gpt-4o",
            messages=[{"role": "user", "content": "go"}],
        )
    finally:
        await client.close()
    assert result.content == "done"
    answered = [c.call_id for c in result.calls]
    errors.update(c.error.kind if c.error is not None else "ok" for c in result.calls)
    last = stub.requests_to("/v1/chat/completions", "POST")[-1].body
    sent = [m["tool_call_id"] for m in last["messages"] if m.get("role") == "tool"]
    return answered, sent


def test_soak() -> None:
    total = int(os.environ.get("SOAK_CALLS", "10000"))
    rng = random.Random(20240917)
    clock = ManualClock()
    errors: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    issued = answered = 0
    with FakeMixpeek() as fake:
        tools = MixpeekTools.from_retrievers(
            fake.client(),
            ["ret_product_demos", "ret_catalog"],
            config=DispatchConfig(
                retry=RetryPolicy(sleep=clock.sleep, clock=clock.now, max_attempts=4),
                deadline_s=20,
            ),
        )
        names = [d.name for d in tools.definitions]

        async def soak() -> None:
            nonlocal issued, answered
            # Warm up (connections, caches, imports) before the memory baseline.
            await _conversation(tools, ["warm_0", "warm_1"], names[:2], Counter())
            fake.clear_requests()
            rss_before = _rss()
            started = time.monotonic()
            conversation = 0
            while issued < total:
                n = min(CALLS_PER_TURN, total - issued)
                ids = [f"c{conversation}_{i}" for i in range(n)]
                for _ in range(n):
                    if rng.random() < FAULT_RATE:
                        kind = rng.choice(sorted(FAULTS))
                        injected[kind] += 1
                        fake.inject("execute", FAULTS[kind]())
                got, sent = await _conversation(
                    tools, ids, [names[i % len(names)] for i in range(n)], errors
                )
                assert got == ids and sent == ids
                issued += n
                answered += len(sent)
                conversation += 1
                assert fake.wait_until_idle(10)
                fake.clear_faults()
                fake.clear_requests()
                assert asyncio.all_tasks() == {asyncio.current_task()}
            elapsed = time.monotonic() - started
            rss_after = _rss()
            print(
                f"\nsoak: calls={issued} conversations={conversation} "
                f"faults_injected={sum(injected.values())} {dict(sorted(injected.items()))} "
                f"answered_ids={answered} errors_by_kind={dict(sorted(errors.items()))} "
                f"rss_before={rss_before / 2**20:.1f}MiB rss_after={rss_after / 2**20:.1f}MiB "
                f"growth={(rss_after - rss_before) / 2**20:+.1f}MiB wall={elapsed:.1f}s"
            )
            assert rss_after - rss_before < RSS_GROWTH_LIMIT

        asyncio.run(soak())
    assert answered == issued == total
