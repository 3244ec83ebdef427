"""Exploration tools: let the model look around the namespace (``actions=[...]``).

``describe`` answers from the cached retriever definition (no request); ``explain``
returns a retriever's execution plan; namespace actions (``list_collections``,
``search_retrievers``, ``get_collection``, ...) add one tool each.

Run it: ``python examples/exploration.py``
"""

from __future__ import annotations

import json

from _common import setup

from mixpeek_openai import MixpeekTools, run_responses

with setup() as env:
    tools = MixpeekTools.from_retrievers(
        env.mixpeek,
        env.retrievers,
        actions=["describe", "list_collections", "search_retrievers"],
    )
    print("Tools:", ", ".join(tools.names))

    # The calls a model could make, in the Responses API's item shape.
    describe = next(n for n in tools.names if n.startswith("describe_"))
    calls = [
        {"type": "function_call", "call_id": "c1", "name": "list_collections", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": describe, "arguments": "{}"},
    ]
    for item in tools.handle(calls):
        print(item["type"], item["call_id"], json.loads(item["output"]).keys())

    result = run_responses(
        env.openai, tools, model=env.model, input="What collections can you search?"
    )
    print("Answer:", result.content)
