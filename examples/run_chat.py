"""``run_chat``: the whole Chat Completions tool loop in one call, with live events.

Run it: ``python examples/run_chat.py``
"""

from __future__ import annotations

from _common import setup

from mixpeek_openai import Event, MixpeekTools, run_chat


def show(event: Event) -> None:
    if event.type == "tool_call":
        print(f"-> {event.name} {event.arguments}")
    elif event.type == "tool_result":
        print(f"<- {event.name}: ok={event.ok} in {event.duration_s * 1000:.0f} ms")
    elif event.type == "message" and event.delta:
        print(event.text, end="", flush=True)


with setup(["ret_product_demos", "ret_catalog"]) as env:
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    result = run_chat(
        env.openai,
        tools,
        model=env.model,
        messages=[{"role": "user", "content": "How do I set up SSO?"}],
        stream=True,
        on_event=show,
    )
    print()
    print(f"{result.turns} model calls, {result.usage.total_tokens} tokens")
    for call in result.calls:
        print(f"{call.name}: {len(call.output)} chars sent to the model, attempts={call.attempts}")

    # result.messages is the whole conversation: append a question and continue.
    follow_up = [*result.messages, {"role": "user", "content": "And the mobile app?"}]
    print(run_chat(env.openai, tools, model=env.model, messages=follow_up).content)
