"""Peer (b): openai-agents' ``function_tool`` wrapping ``retrievers.execute``.

The tool is invoked the way the Agents runner does it: ``await tool.on_invoke_tool(ctx,
arguments_json)`` with a :class:`agents.tool_context.ToolContext`. The wrapped function is
synchronous (the ``mixpeek`` client is), so the SDK runs it with ``asyncio.to_thread``.
Its body is the hand-written one (:func:`benchmarks.peers.handwritten.search`):
``json.dumps`` of the raw response (returning the dict would make the runner send its
Python ``str()``).

``limit`` has no default: with ``limit: int = 10`` the SDK's strict schema keeps
``"default": 10``, which the API refuses ("'default' is not permitted", a 400 on the first
model request - ``StubOpenAI`` enforces the same rule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agents import FunctionTool, function_tool
from agents.tool_context import ToolContext

from benchmarks.peers import handwritten

__all__ = ["invoke", "invoke_all", "make_tool"]


def make_tool(mixpeek: Any, retriever_id: str) -> FunctionTool:
    """A strict ``FunctionTool`` named ``search_videos`` over ``retriever_id``."""

    def search_videos(query: str, limit: int) -> str:
        """Search product demo videos in Mixpeek.

        Args:
            query: What to search for.
            limit: Maximum number of results.
        """
        return handwritten.search(mixpeek, retriever_id, query, limit)

    return function_tool(search_videos)


async def invoke(tool: FunctionTool, call_id: str, arguments: str) -> Any:
    """Invoke ``tool`` once, as the runner does for one function call."""
    ctx = ToolContext(
        context=None, tool_name=tool.name, tool_call_id=call_id, tool_arguments=arguments
    )
    return await tool.on_invoke_tool(ctx, arguments)


async def invoke_all(tool: FunctionTool, calls: Sequence[tuple[str, str]]) -> list[Any]:
    """Invoke every ``(call_id, arguments)`` concurrently, as the runner does for one turn."""
    return list(await asyncio.gather(*(invoke(tool, cid, args) for cid, args in calls)))
