"""Mixpeek tools for openai-agents (the ``agents`` extra).

openai-agents' own ``function_tool`` wraps a Python function: no transport retries, no
deadline on the Mixpeek side, and the raw response goes to the model. The tools made here
keep our schema (strict by default) and hand every invocation to the tool set's
dispatcher, so an agent gets what the other loops get: arguments validated (a mistake comes
back as an output saying what to fix, and the run goes on), one retry layer with
``Retry-After`` honoured inside the per-call deadline, outputs shaped and bounded, and the
``DispatchConfig.on_call_event`` events and tool spans.

::

    from agents import Agent, Runner

    agent = Agent(name="support", instructions="...", tools=tools.as_agents_tools())
    result = await Runner.run(agent, "How do I set up SSO?")

They work with the Runner over both ``OpenAIResponsesModel`` and
``OpenAIChatCompletionsModel``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents import FunctionTool
    from agents.tool_context import ToolContext

    from mixpeek_openai.dispatch import ToolCallResult
    from mixpeek_openai.tools import MixpeekTools, ToolDefinition

__all__ = ["as_agents_tools"]


def as_agents_tools(
    tools: MixpeekTools, *, names: Iterable[str] | None = None, strict: bool = True
) -> list[FunctionTool]:
    """openai-agents ``FunctionTool`` objects that run ``tools``' dispatcher.

    Args:
        tools: the tool set whose definitions, configuration and dispatcher are used.
        names: only these tools, in this order (default: every tool, in
            ``tools.definitions`` order).
        strict: strict JSON schemas (the default; what the API enforces best).

    Raises:
        ImportError: openai-agents is not installed (``pip install 'mixpeek-openai[agents]'``).
        KeyError: a name in ``names`` is not one of the tools (the message lists them).
    """
    try:
        from agents import FunctionTool
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ImportError(
            "as_agents_tools() needs openai-agents: pip install 'mixpeek-openai[agents]'"
        ) from exc
    chosen = list(tools.definitions) if names is None else [tools[name] for name in names]
    return [
        FunctionTool(
            name=definition.name,
            description=definition.description,
            params_json_schema=definition.parameters(strict=strict),
            on_invoke_tool=_invoker(tools, definition),
            strict_json_schema=strict,
        )
        for definition in chosen
    ]


def _invoker(tools: MixpeekTools, definition: ToolDefinition) -> Any:
    name = definition.name

    async def invoke(context: ToolContext[Any], arguments: str) -> Any:
        # The runner hands over the raw arguments text: the dispatcher parses and validates
        # it, so a malformed call becomes a fixable output instead of a failed run.
        call = {
            "type": "function_call",
            # The id only names the call in events and traces; one the runner did not get
            # from the model must not stop the call from being answered.
            "call_id": context.tool_call_id or f"agents_{uuid.uuid4().hex[:24]}",
            "name": name,
            "arguments": arguments,
        }
        [result] = await tools.adispatch([call])
        return _agents_output(result)

    return invoke


def _agents_output(result: ToolCallResult) -> Any:
    """The output as openai-agents wants it: text, plus images when the tool sends some."""
    if not result.images:
        return result.output
    from agents import ToolOutputImage, ToolOutputText

    parts: list[Any] = [ToolOutputText(text=result.output)]
    parts.extend(ToolOutputImage(image_url=url) for url in result.images)
    return parts
