"""Peer (d): pydantic-ai's tool path, through its public ``ToolManager``.

The tool is a ``pydantic_ai.Tool`` wrapping the hand-written body
(:func:`benchmarks.peers.handwritten.search`), in a ``FunctionToolset``. Each call goes
through what an agent run does for one tool call from the model, and nothing else:
``ToolManager.validate_tool_call`` (the arguments JSON validated against the schema
pydantic-ai built from the function's signature) then ``execute_tool_call`` (the function
run; being synchronous, in a worker thread, as pydantic-ai runs every plain ``def``).

Why not ``Agent.run`` with ``TestModel`` or ``FunctionModel``: that adds a model request,
message history and a run graph per call, which is the agent's cost, not the tool's. The
``ToolManager`` is prepared once for a run step (``for_run_step``) with a ``RunContext``
on ``TestModel`` (never asked for anything), as a run does before its tool calls.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from typing import Any

from benchmarks.peers import handwritten

__all__ = ["available", "invoke", "invoke_all", "make_manager"]

TOOL_NAME = handwritten.HAND_TOOL_NAME


def available() -> bool:
    """Whether pydantic-ai is installed (it is in the ``bench`` extra only)."""
    return importlib.util.find_spec("pydantic_ai") is not None


async def make_manager(mixpeek: Any, retriever_id: str) -> Any:
    """A ``ToolManager`` holding one ``search_videos`` tool, prepared for a run step."""
    from pydantic_ai import RunContext, Tool
    from pydantic_ai.models.test import TestModel
    from pydantic_ai.tool_manager import ToolManager
    from pydantic_ai.toolsets import FunctionToolset
    from pydantic_ai.usage import RunUsage

    def search_videos(query: str, limit: int) -> str:
        """Search product demo videos in Mixpeek.

        Args:
            query: What to search for.
            limit: Maximum number of results.
        """
        return handwritten.search(mixpeek, retriever_id, query, limit)

    toolset = FunctionToolset([Tool(search_videos, name=TOOL_NAME)])
    context = RunContext(deps=None, model=TestModel(), usage=RunUsage())
    return await ToolManager(toolset=toolset).for_run_step(context)


async def invoke(manager: Any, call_id: str, arguments: str) -> Any:
    """Validate and run one tool call (the model's arguments JSON), as a run does."""
    from pydantic_ai.messages import ToolCallPart

    call = ToolCallPart(TOOL_NAME, arguments, tool_call_id=call_id)
    validated = await manager.validate_tool_call(call)
    return await manager.execute_tool_call(validated)


async def invoke_all(manager: Any, calls: Sequence[tuple[str, str]]) -> list[Any]:
    """Run every ``(call_id, arguments)`` concurrently, as a run does for one model response."""
    return list(await asyncio.gather(*(invoke(manager, cid, args) for cid, args in calls)))
