"""The top-level surface is small, and names that moved off it keep working for a release.

``mixpeek_openai.__all__`` holds at most 25 names: the public contract (the tool set and the
loops), the dispatch configuration and results, and the base error. Every other name the
0.1 top level offered still imports from ``mixpeek_openai``, with a ``DeprecationWarning``
that says which module to import it from, and is the very object that module defines.
"""

from __future__ import annotations

import importlib
import re
import warnings

import pytest

import mixpeek_openai

CONTRACT = [
    "MixpeekTools",
    "run_chat",
    "arun_chat",
    "run_responses",
    "arun_responses",
    "run_assistant",
    "arun_assistant",
    "DispatchConfig",
    "RetryPolicy",
    "ToolCallResult",
    "MixpeekOpenAIError",
]

# Every name the top level exported before the surface was cut down.
PREVIOUS_TOP_LEVEL = [
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

_MODULE = re.compile(r"mixpeek_openai(?:\.[a-z_]+)+")


def test_the_top_level_offers_at_most_25_names() -> None:
    names = mixpeek_openai.__all__
    assert len(names) <= 25, f"{len(names)} names: {sorted(names)}"
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", CONTRACT)
def test_the_contract_stays_on_the_top_level_without_a_warning(name: str) -> None:
    assert name in mixpeek_openai.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(mixpeek_openai, name) is not None


def test_every_exported_name_imports_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in mixpeek_openai.__all__:
            assert getattr(mixpeek_openai, name) is not None, name


@pytest.mark.parametrize(
    "name", [n for n in PREVIOUS_TOP_LEVEL if n not in CONTRACT and not n.startswith("__")]
)
def test_a_name_that_moved_still_imports_with_a_deprecation_warning(name: str) -> None:
    if name in mixpeek_openai.__all__:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            getattr(mixpeek_openai, name)
        return
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(mixpeek_openai, name)
    message = str(caught[0].message)
    assert name in message, message
    found = _MODULE.search(message)
    assert found, f"the warning does not say where {name} lives now: {message}"
    module = importlib.import_module(found.group(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(module, name) is value


def test_run_failed_error_moved_to_the_errors_module() -> None:
    from mixpeek_openai.errors import RunFailedError

    with pytest.warns(DeprecationWarning, match=r"mixpeek_openai\.errors"):
        from mixpeek_openai import RunFailedError as old  # type: ignore[attr-defined]

    assert old is RunFailedError
    assert issubclass(RunFailedError, mixpeek_openai.MixpeekOpenAIError)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        mixpeek_openai.no_such_name  # type: ignore[attr-defined]  # noqa: B018
