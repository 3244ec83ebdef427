"""The Assistants runner with streamed runs: events as an iterator (``iter_assistant``).

With ``stream=True`` the run is followed through its event stream (no polling), and the
answer arrives as ``message`` events with ``delta=True``. The Assistants API is
deprecated (shutdown announced for 2026-08-26): prefer the Responses API for new code.

Run it: ``python examples/assistants_streaming.py``
"""

from __future__ import annotations

import warnings

from _common import setup

from mixpeek_openai import MixpeekTools, iter_assistant
from mixpeek_openai.assistants import create_assistant

with setup() as env:
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    assistant = create_assistant(env.openai, tools, model=env.model, name="Demo finder")
    try:
        events = iter_assistant(
            env.openai,
            tools,
            assistant_id=assistant.id,
            message="Find a walkthrough of the mobile app",
            stream=True,
        )
        for event in events:
            if event.type == "tool_call":
                print(f"-> {event.name} {event.arguments}")
            elif event.type == "tool_result":
                print(f"<- {event.name}: {event.output[:100]}...")
            elif event.type == "message" and event.delta:
                print(event.text, end="", flush=True)
        print()
        assert events.result is not None
        print(f"usage: {events.result.usage}")
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env.openai.beta.assistants.delete(assistant.id)
