"""Your own function and a hosted tool beside the Mixpeek tools, in one ``run_responses``.

``tools`` can be a list: ``MixpeekTools``, plain Python functions (their typed parameters
become a strict schema, their docstring the description; sync or ``async``) and hosted
tools such as ``{"type": "web_search"}``, which OpenAI runs itself. Your functions go
through the same dispatcher as the searches: arguments validated (mistakes go back to the
model), a deadline, concurrent calls, and a record of each call on ``result.calls``.

Streaming shows each tool call while the model writes its arguments (``tool_call_delta``).

Run it: ``python examples/user_tools.py``
"""

from __future__ import annotations

from typing import Literal

from _common import setup

from mixpeek_openai import MixpeekTools, run_responses
from mixpeek_openai.events import Event, ToolCallDeltaEvent, ToolResultEvent


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, object]:
    """Current weather for a city (a stand-in for your own API).

    Args:
        city: The city, e.g. "Paris".
        unit: Temperature unit.
    """
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


with setup() as env:
    mixpeek_tools = MixpeekTools.from_retrievers(env.mixpeek, env.retrievers)
    search = mixpeek_tools.names[0]
    if env.stub is not None:
        # The offline stand-in model calls both tools in one turn, then summarises.
        env.stub.script(
            env.stub.tool_calls(
                [
                    env.stub.call("get_weather", {"city": "Paris", "unit": None}),
                    env.stub.call(search, {"query": "pipeline dashboards"}),
                ]
            )
        )

    started: set[str] = set()

    def show(event: Event) -> None:
        if isinstance(event, ToolCallDeltaEvent) and event.call_id not in started:
            started.add(event.call_id)
            print(f"  writing a call to {event.name}...")
        elif isinstance(event, ToolResultEvent):
            print(f"  {event.name} answered: {event.output[:70]}")

    result = run_responses(
        env.openai,
        [mixpeek_tools, get_weather, {"type": "web_search"}],
        model=env.model,
        instructions="Use the tools. Mention the weather and the best demo.",
        input="We are filming in Paris tomorrow: what is the weather, and which demos fit?",
        stream=True,
        on_event=show,
    )
    print("Answer:", result.content)
    for call in result.calls:
        print(f"  {call.name}: ok={call.ok} in {call.duration_s * 1000:.0f} ms")
    print("Tokens:", result.usage.total_tokens, "cached:", result.usage.cached_tokens)
