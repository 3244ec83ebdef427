"""Chat Completions by hand: offer the tools, answer the model's tool calls with ``handle``.

``tools.handle(tool_calls)`` validates each call's arguments, runs the searches (in
parallel, with retries and a deadline) and returns one ``tool`` message per call id, in
order, ready to append to ``messages``.

Run it: ``python examples/chat_by_hand.py``
"""

from __future__ import annotations

from _common import setup

from mixpeek_openai import MixpeekTools

with setup() as env:
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    messages: list[dict] = [{"role": "user", "content": "Which demos show the CRM integration?"}]

    for _ in range(5):  # a bound on model calls
        completion = env.openai.chat.completions.create(
            model=env.model, messages=messages, tools=tools.chat_tools()
        )
        message = completion.choices[0].message
        if not message.tool_calls:
            print("Answer:", message.content)
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            print(f"-> {call.function.name}({call.function.arguments})")
        tool_messages = tools.handle(message.tool_calls)
        for reply in tool_messages:
            print(f"<- {reply['tool_call_id']}: {reply['content'][:120]}...")
        messages.extend(tool_messages)
