"""The Assistants runner, polling the run (``run_assistant``).

Note: OpenAI has deprecated the Assistants API and announced its shutdown for 2026-08-26;
prefer ``run_responses`` for new code. ``run_assistant`` calls the API without triggering
the SDK's DeprecationWarnings, polls with an overall deadline, and submits all tool
outputs of a step in one request.

Run it: ``python examples/assistants_polling.py``
"""

from __future__ import annotations

import warnings

from _common import setup

from mixpeek_openai import MixpeekTools, run_assistant
from mixpeek_openai.assistants import create_assistant

with setup() as env:
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    assistant = create_assistant(
        env.openai,
        tools,
        model=env.model,
        name="Demo finder",
        instructions="Answer using the search tools.",
    )
    try:
        result = run_assistant(
            env.openai,
            tools,
            assistant_id=assistant.id,
            message="Which demos cover security settings?",
            deadline_s=120,
        )
        print("Answer:", result.content)
        print(f"thread {result.thread_id}: {len(result.calls)} tool calls, {result.turns} steps")
    finally:
        # Clean up. This SDK call warns that the API is deprecated; we know.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            env.openai.beta.assistants.delete(assistant.id)
