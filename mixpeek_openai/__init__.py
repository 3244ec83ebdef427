"""Mixpeek retrievers as typed, safe tools for OpenAI models.

Quick tour::

    from mixpeek import Mixpeek
    from openai import OpenAI
    from mixpeek_openai import MixpeekTools, run_chat

    with MixpeekTools.from_retrievers(Mixpeek(), ["ret_product_demos"]) as tools:
        messages = [{"role": "user", "content": "Which demos show the CRM integration?"}]
        result = run_chat(OpenAI(), tools, model="gpt-4o", messages=messages)
        print(result.content)

``MixpeekTools`` turns retrievers into strict OpenAI function tools and answers the
model's tool calls (``handle`` / ``ahandle``). ``run_chat``, ``run_responses`` and
``run_assistant`` (and their ``a``-prefixed async forms, which share one core) drive a
whole conversation. ``mixpeek_openai.testing`` holds an offline Mixpeek server and a stub
OpenAI API for tests.

Importing this package is cheap: names are loaded on first use, so neither ``openai`` nor
``mixpeek`` is imported until something needs them. Names that used to live here and now
live in their modules (``mixpeek_openai.errors``, ``mixpeek_openai.events``, ...) still
resolve, with a ``DeprecationWarning`` naming the new place.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixpeek_openai.assistants import aiter_assistant, arun_assistant, iter_assistant
    from mixpeek_openai.assistants import run_assistant as run_assistant
    from mixpeek_openai.chat import aiter_chat, arun_chat, iter_chat, run_chat
    from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
    from mixpeek_openai.errors import MixpeekOpenAIError
    from mixpeek_openai.events import (
        DoneEvent,
        Event,
        MessageEvent,
        ThinkingEvent,
        ToolCallDeltaEvent,
        ToolCallEvent,
        ToolResultEvent,
    )
    from mixpeek_openai.migration import thread_to_conversation
    from mixpeek_openai.responses import aiter_responses, arun_responses, iter_responses
    from mixpeek_openai.responses import run_responses as run_responses
    from mixpeek_openai.retries import RetryPolicy
    from mixpeek_openai.tools import MixpeekTools

__version__ = "0.2.0"

# The package logs through "mixpeek_openai.*" loggers; without a handler of the
# application's, Python's last-resort handler would print warnings to stderr.
logging.getLogger("mixpeek_openai").addHandler(logging.NullHandler())

_EXPORTS: dict[str, str] = {
    "MixpeekTools": "mixpeek_openai.tools",
    "run_chat": "mixpeek_openai.chat",
    "arun_chat": "mixpeek_openai.chat",
    "iter_chat": "mixpeek_openai.chat",
    "aiter_chat": "mixpeek_openai.chat",
    "run_responses": "mixpeek_openai.responses",
    "arun_responses": "mixpeek_openai.responses",
    "iter_responses": "mixpeek_openai.responses",
    "aiter_responses": "mixpeek_openai.responses",
    "run_assistant": "mixpeek_openai.assistants",
    "arun_assistant": "mixpeek_openai.assistants",
    "iter_assistant": "mixpeek_openai.assistants",
    "aiter_assistant": "mixpeek_openai.assistants",
    "DispatchConfig": "mixpeek_openai.dispatch",
    "ToolCallResult": "mixpeek_openai.dispatch",
    "RetryPolicy": "mixpeek_openai.retries",
    "MixpeekOpenAIError": "mixpeek_openai.errors",
    "Event": "mixpeek_openai.events",
    "MessageEvent": "mixpeek_openai.events",
    "ThinkingEvent": "mixpeek_openai.events",
    "ToolCallEvent": "mixpeek_openai.events",
    "ToolResultEvent": "mixpeek_openai.events",
    "DoneEvent": "mixpeek_openai.events",
    "ToolCallDeltaEvent": "mixpeek_openai.events",
    "thread_to_conversation": "mixpeek_openai.migration",
}

# Importable from the top level for one more release, with a DeprecationWarning.
_MOVED: dict[str, str] = {
    "ActiveRunError": "mixpeek_openai.errors",
    "ConfigurationError": "mixpeek_openai.errors",
    "ContentFilteredError": "mixpeek_openai.errors",
    "LoopError": "mixpeek_openai.errors",
    "MaxTurnsExceededError": "mixpeek_openai.errors",
    "MixpeekSchemaWarning": "mixpeek_openai.errors",
    "OutputTruncatedError": "mixpeek_openai.errors",
    "ResponseFailedError": "mixpeek_openai.errors",
    "RetrieverNotFoundError": "mixpeek_openai.errors",
    "RunCancelledError": "mixpeek_openai.errors",
    "RunDeadlineExceededError": "mixpeek_openai.errors",
    "RunExpiredError": "mixpeek_openai.errors",
    "RunFailedError": "mixpeek_openai.errors",
    "RunIncompleteError": "mixpeek_openai.errors",
    "SchemaMismatchError": "mixpeek_openai.errors",
    "UnknownActionError": "mixpeek_openai.errors",
    "AssistantResult": "mixpeek_openai.assistants",
    "acreate_assistant": "mixpeek_openai.assistants",
    "create_assistant": "mixpeek_openai.assistants",
    "ChatResult": "mixpeek_openai.chat",
    "supports_parallel_tool_calls": "mixpeek_openai.chat",
    "ResponsesResult": "mixpeek_openai.responses",
    "CallError": "mixpeek_openai.dispatch",
    "CallEvent": "mixpeek_openai.dispatch",
    "Usage": "mixpeek_openai.events",
    "DocumentReference": "mixpeek_openai.schema",
    "build_arguments_model": "mixpeek_openai.schema",
    "strict_json_schema": "mixpeek_openai.schema",
    "RetrieverCache": "mixpeek_openai.tools",
    "ToolDefinition": "mixpeek_openai.tools",
    "ToolSet": "mixpeek_openai._loop",
}

__all__ = [  # noqa: RUF022 - grouped as in the docs: tools, loops, configuration, events
    "MixpeekTools",
    "run_chat",
    "arun_chat",
    "iter_chat",
    "aiter_chat",
    "run_responses",
    "arun_responses",
    "iter_responses",
    "aiter_responses",
    "run_assistant",
    "arun_assistant",
    "iter_assistant",
    "aiter_assistant",
    "DispatchConfig",
    "RetryPolicy",
    "ToolCallResult",
    "MixpeekOpenAIError",
    "Event",
    "MessageEvent",
    "ThinkingEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "ToolCallDeltaEvent",
    "DoneEvent",
    "thread_to_conversation",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        module = _MOVED.get(name)
        if module is None:
            raise AttributeError(f"module 'mixpeek_openai' has no attribute {name!r}")
        warnings.warn(
            f"{name} moved to {module}: import it from there (the top-level name "
            "will be removed in a future release).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
