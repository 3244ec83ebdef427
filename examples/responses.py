"""``run_responses``: the Responses API tool loop (the recommended API for new code).

Tool calls arrive as ``function_call`` items and go back as ``function_call_output``
items; turns are chained with ``previous_response_id``. The follow-up question refers to
the first answer, so the model searches again with a standalone query (offline, the
stand-in model adds the new words to the earlier search).

Run it: ``python examples/responses.py``
"""

from __future__ import annotations

from _common import setup

from mixpeek_openai import MixpeekTools, run_responses

with setup() as env:
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    result = run_responses(
        env.openai,
        tools,
        model=env.model,
        instructions="Answer from the search results; cite video titles.",
        input="Show me demos about pipeline dashboards",
    )
    print("Answer:", result.content)
    for item in result.items:
        if item.get("type") in ("function_call", "function_call_output"):
            print(" ", item["type"], item.get("name", ""), str(item.get("output", ""))[:80])

    # Continue the stored chain with a follow-up question.
    more = run_responses(
        env.openai,
        tools,
        model=env.model,
        input="Any shorter ones?",
        previous_response_id=result.response_ids[-1],
    )
    for item in more.items:
        if item.get("type") == "function_call":
            print("  follow-up search:", item["name"], item["arguments"])
    print("Follow-up:", more.content)
