"""Async fan-out: several retrievers searched at the same time.

``await tools.adispatch(calls)`` runs every call of a turn concurrently (bounded by
``DispatchConfig.max_concurrency``) without blocking the event loop, each with its own
deadline. Here the calls are written by hand, as a model would send them in one turn;
``arun_chat`` does the same for the calls the model makes.

Run it: ``python examples/async_fanout.py``
"""

from __future__ import annotations

import asyncio
import json
import time

from _common import setup

from mixpeek_openai import DispatchConfig, MixpeekTools, arun_chat

QUESTION = "getting started"


def first_text_argument(tool: dict) -> dict:
    """Arguments that put QUESTION in the tool's first text input (others: defaults)."""
    properties = tool["function"]["parameters"]["properties"]
    text = next(name for name, spec in properties.items() if '"string"' in json.dumps(spec))
    return {name: (QUESTION if name == text else None) for name in properties}


async def main() -> None:
    retrievers = ["ret_product_demos", "ret_document_qa", "ret_audio_clips", "ret_catalog"]
    with setup(retrievers) as env:
        if env.fake is not None:
            env.fake.set_latency(0.3, "execute")  # make the overlap visible offline
        tools = MixpeekTools.from_retrievers(
            env.mixpeek, env.retrievers, config=DispatchConfig(max_concurrency=8, deadline_s=15)
        )
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": t["function"]["name"], "arguments": json.dumps(args)},
            }
            for i, t in enumerate(tools.chat_tools())
            if t["function"]["name"].startswith("search_")
            for args in [first_text_argument(t)]
        ]
        started = time.perf_counter()
        results = await tools.adispatch(calls)
        elapsed = time.perf_counter() - started
        for r in results:
            print(f"{r.name:<24} ok={r.ok} {r.duration_s:.2f}s {r.output[:60]}...")
        print(f"{len(results)} searches in {elapsed:.2f}s (run concurrently)")
        if env.fake is not None:
            print(f"most requests in flight at once: {env.fake.max_overlap('execute')}")
            env.fake.set_latency(0.0, "execute")

        answer = await arun_chat(
            env.async_openai,
            tools,
            model=env.model,
            messages=[{"role": "user", "content": "Getting started videos"}],
        )
        print("Answer:", answer.content)
        await env.async_openai.close()


asyncio.run(main())
