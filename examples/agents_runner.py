"""openai-agents: Mixpeek tools under the Agents SDK's ``Runner``.

``tools.as_agents_tools()`` gives ``FunctionTool`` objects with our strict schemas whose
invocation runs this package's dispatcher: arguments validated (mistakes go back to the
model as fixable outputs), one retry layer within a per-call deadline, shaped outputs, and
``on_call_event`` events. The same tools work over the Responses and the Chat Completions
model classes.

Run it: ``python examples/agents_runner.py`` (needs the ``agents`` extra)
"""

from __future__ import annotations

import asyncio

from _common import Setup, setup
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, RunConfig, Runner

from mixpeek_openai import DispatchConfig, MixpeekTools


async def main(env: Setup) -> None:
    config = DispatchConfig(
        deadline_s=15.0,
        on_call_event=lambda e: print(f"  [{e.kind}] {e.name} attempt={e.attempt}"),
    )
    tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers, config=config)
    # Offline, the Agents SDK's own tracing (which exports to OpenAI) is switched off.
    run_config = RunConfig(tracing_disabled=env.offline)

    for label, model in (
        ("Responses", OpenAIResponsesModel(model=env.model, openai_client=env.async_openai)),
        ("Chat Completions", OpenAIChatCompletionsModel(env.model, env.async_openai)),
    ):
        agent = Agent(
            name="demo-finder",
            instructions="Answer from the search results; cite video titles.",
            tools=tools.as_agents_tools(),
            model=model,
        )
        print(f"{label}:")
        result = await Runner.run(agent, "Show me demos about SSO setup", run_config=run_config)
        print("  Answer:", result.final_output)
    # One event loop for both runs: the async OpenAI client belongs to it.
    await env.async_openai.close()


with setup() as env:
    asyncio.run(main(env))
