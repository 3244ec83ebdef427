"""Mixpeek retrievers as typed, safe tools for OpenAI models.

Quick tour::

    from mixpeek import Mixpeek
    from openai import OpenAI
    from mixpeek_openai import MixpeekTools, run_chat

    tools = MixpeekTools.from_retrievers(Mixpeek(), ["ret_product_demos"])
    messages = [{"role": "user", "content": "Which demos show the CRM integration?"}]
    result = run_chat(OpenAI(), tools, model="gpt-4o", messages=messages)
    print(result.content)

``MixpeekTools`` turns retrievers into strict OpenAI function tools and answers the
model's tool calls (``handle`` / ``ahandle``). ``run_chat``, ``run_responses`` and
``run_assistant`` (and their ``a``-prefixed async twins, which share one core) drive a
whole conversation. ``mixpeek_openai.testing`` holds an offline Mixpeek server and a stub
OpenAI API for tests.
"""

from mixpeek_openai._loop import ToolSet
from mixpeek_openai.assistants import (
    AssistantResult,
    acreate_assistant,
    aiter_assistant,
    arun_assistant,
    create_assistant,
    iter_assistant,
    run_assistant,
)
from mixpeek_openai.chat import (
    ChatResult,
    aiter_chat,
    arun_chat,
    iter_chat,
    run_chat,
    supports_parallel_tool_calls,
)
from mixpeek_openai.dispatch import CallError, CallEvent, DispatchConfig, ToolCallResult
from mixpeek_openai.errors import (
    ActiveRunError,
    ConfigurationError,
    ContentFilteredError,
    LoopError,
    MaxTurnsExceededError,
    MixpeekOpenAIError,
    MixpeekSchemaWarning,
    OutputTruncatedError,
    ResponseFailedError,
    RetrieverNotFoundError,
    RunCancelledError,
    RunDeadlineExceededError,
    RunExpiredError,
    RunFailedError,
    RunIncompleteError,
    SchemaMismatchError,
    UnknownActionError,
)
from mixpeek_openai.events import (
    DoneEvent,
    Event,
    MessageEvent,
    ThinkingEvent,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from mixpeek_openai.responses import (
    ResponsesResult,
    aiter_responses,
    arun_responses,
    iter_responses,
    run_responses,
)
from mixpeek_openai.retries import RetryPolicy
from mixpeek_openai.schema import DocumentReference, build_arguments_model, strict_json_schema
from mixpeek_openai.tools import MixpeekTools, RetrieverCache, ToolDefinition

__version__ = "0.1.0"

__all__ = [
    "ActiveRunError",
    "AssistantResult",
    "CallError",
    "CallEvent",
    "ChatResult",
    "ConfigurationError",
    "ContentFilteredError",
    "DispatchConfig",
    "DocumentReference",
    "DoneEvent",
    "Event",
    "LoopError",
    "MaxTurnsExceededError",
    "MessageEvent",
    "MixpeekOpenAIError",
    "MixpeekSchemaWarning",
    "MixpeekTools",
    "OutputTruncatedError",
    "ResponseFailedError",
    "ResponsesResult",
    "RetrieverCache",
    "RetrieverNotFoundError",
    "RetryPolicy",
    "RunCancelledError",
    "RunDeadlineExceededError",
    "RunExpiredError",
    "RunFailedError",
    "RunIncompleteError",
    "SchemaMismatchError",
    "ThinkingEvent",
    "ToolCallEvent",
    "ToolCallResult",
    "ToolDefinition",
    "ToolResultEvent",
    "ToolSet",
    "UnknownActionError",
    "Usage",
    "__version__",
    "acreate_assistant",
    "aiter_assistant",
    "aiter_chat",
    "aiter_responses",
    "arun_assistant",
    "arun_chat",
    "arun_responses",
    "build_arguments_model",
    "create_assistant",
    "iter_assistant",
    "iter_chat",
    "iter_responses",
    "run_assistant",
    "run_chat",
    "run_responses",
    "strict_json_schema",
    "supports_parallel_tool_calls",
]
