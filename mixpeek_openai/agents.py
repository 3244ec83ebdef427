"""Mixpeek tools for openai-agents (the ``agents`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixpeek_openai.tools import MixpeekTools


def as_agents_tools(tools: MixpeekTools, **options: Any) -> list[Any]:
    """openai-agents ``FunctionTool`` objects that run ``tools``' dispatcher."""
    raise NotImplementedError("openai-agents support is not available in this build")
