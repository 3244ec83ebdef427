"""openai-agents: our tools under its Runner, over StubOpenAI, through both model classes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import (
    Agent,
    FunctionTool,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
)

from mixpeek_openai.dispatch import CallEvent, DispatchConfig
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

SEARCH = "search_product_demo"
MODELS = {"responses": OpenAIResponsesModel, "chat": OpenAIChatCompletionsModel}


@pytest.fixture(params=sorted(MODELS))
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def events() -> list[CallEvent]:
    return []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_tools(
    fake: FakeMixpeek, events: list[CallEvent], clock: ManualClock
) -> Callable[..., MixpeekTools]:
    fake.clear_requests()
    fake.clear_faults()

    def make(**config: Any) -> MixpeekTools:
        config.setdefault("retry", RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0))
        config.setdefault("on_call_event", events.append)
        return MixpeekTools.from_retrievers(
            fake.client(),
            ["ret_product_demos", "ret_catalog"],
            actions=["describe"],
            config=DispatchConfig(**config),
        )

    return make


def run_agent(stub: StubOpenAI, api: str, tools: list[FunctionTool], question: str) -> Any:
    model = MODELS[api](model="gpt-4o", openai_client=stub.async_client())
    agent = Agent(name="support", instructions="Answer from the search.", tools=tools, model=model)
    # The SDK's own tracing would export to OpenAI's servers: off in tests.
    config = RunConfig(tracing_disabled=True)
    return asyncio.run(Runner.run(agent, question, run_config=config))


def tool_outputs(stub: StubOpenAI, api: str) -> dict[str, str]:
    """Call id -> tool output, as the last model request sent them."""
    path = "/v1/responses" if api == "responses" else "/v1/chat/completions"
    body = stub.requests_to(path, "POST")[-1].body
    if api == "responses":
        return {
            item["call_id"]: item["output"]
            for item in body["input"]
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        }
    return {
        message["tool_call_id"]: message["content"]
        for message in body["messages"]
        if message.get("role") == "tool"
    }


# -- the export ------------------------------------------------------------------------


def test_the_schemas_are_ours_and_strict(make_tools: Callable[..., MixpeekTools]) -> None:
    tools = make_tools()

    exported = tools.as_agents_tools()

    assert [t.name for t in exported] == list(tools.names)
    for tool in exported:
        definition = tools[tool.name]
        assert isinstance(tool, FunctionTool)
        assert tool.strict_json_schema is True
        assert tool.params_json_schema == definition.parameters(strict=True)
        assert tool.description == definition.description

    loose = tools.as_agents_tools(names=["search_catalog", SEARCH], strict=False)
    assert [t.name for t in loose] == ["search_catalog", SEARCH]
    assert loose[1].strict_json_schema is False
    assert loose[1].params_json_schema == tools[SEARCH].parameters(strict=False)

    with pytest.raises(KeyError, match="search_catalog"):
        tools.as_agents_tools(names=["search_nothing"])


# -- under the Runner --------------------------------------------------------------------


def test_the_runner_calls_our_dispatcher_which_retries_a_fault(
    api: str,
    make_tools: Callable[..., MixpeekTools],
    fake: FakeMixpeek,
    stub: StubOpenAI,
    events: list[CallEvent],
    clock: ManualClock,
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(503, retry_after=0.25))  # once, then OK
    stub.script(
        stub.tool_calls(
            [
                stub.call(SEARCH, {"query": "sso setup", "limit": 2}, call_id="call_demo"),
                stub.call("search_catalog", {"query": "sso"}, call_id="call_catalog"),
            ]
        ),
        stub.text("Open Settings, then SSO."),
    )

    result = run_agent(stub, api, tools.as_agents_tools(), "How do I set up SSO?")

    assert result.final_output == "Open Settings, then SSO."
    outputs = tool_outputs(stub, api)
    assert set(outputs) == {"call_demo", "call_catalog"}
    demo = json.loads(outputs["call_demo"])
    assert "error" not in demo and demo["total"] >= 2
    # Shaped for the model, not the raw response.
    assert "stage_statistics" not in outputs["call_demo"]
    executes = fake.requests_for("execute")
    assert len(executes) == 3  # two searches, one of them retried after the 503
    assert {"query": "sso setup"} in [r.body["inputs"] for r in executes]
    assert clock.sleeps == [pytest.approx(0.25)]
    finished = sorted(e.call_id for e in events if e.kind == "finished")
    assert finished == ["call_catalog", "call_demo"]
    assert sum(e.kind == "retried" for e in events) == 1


def test_a_hanging_search_is_answered_within_the_deadline(
    api: str,
    make_tools: Callable[..., MixpeekTools],
    fake: FakeMixpeek,
    stub: StubOpenAI,
    events: list[CallEvent],
) -> None:
    # A real clock and a short deadline: the per-attempt timeout is the time left.
    tools = make_tools(deadline_s=0.5, retry=RetryPolicy())
    fake.inject("execute", Fault.hang(30))
    stub.script(
        stub.tool_call(SEARCH, {"query": "sso"}, call_id="call_hang"),
        stub.text("The search is down; try later."),
    )

    result = run_agent(stub, api, tools.as_agents_tools(), "How do I set up SSO?")

    assert result.final_output == "The search is down; try later."
    output = json.loads(tool_outputs(stub, api)["call_hang"])
    assert output["error"]["type"] == "temporarily_unavailable"
    [failed] = [e for e in events if e.kind == "failed"]
    assert failed.error is not None and failed.error.kind == "deadline_exceeded"
    assert failed.elapsed_s <= 0.5 + 1.0  # the dispatcher's grace, never more


def test_model_mistakes_come_back_as_fixable_outputs(
    api: str, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek, stub: StubOpenAI
) -> None:
    tools = make_tools()
    stub.script(
        stub.tool_calls(
            [
                stub.call(SEARCH, {"query": "sso", "max_duration": "long"}, call_id="call_bad"),
                stub.call(SEARCH, '{"query": "sso"', call_id="call_broken"),
            ]
        ),
        stub.tool_call(SEARCH, {"query": "sso", "max_duration": 600}, call_id="call_fixed"),
        stub.text("Fixed it."),
    )

    result = run_agent(stub, api, tools.as_agents_tools(), "Short SSO demos?")

    assert result.final_output == "Fixed it."
    outputs = tool_outputs(stub, api)
    bad = json.loads(outputs["call_bad"])["error"]
    assert bad["type"] == "invalid_arguments" and "max_duration" in bad["message"]
    assert "Fix these" in bad["hint"]
    broken = json.loads(outputs["call_broken"])["error"]
    assert broken["type"] == "invalid_arguments" and "not valid JSON" in broken["message"]
    assert "error" not in json.loads(outputs["call_fixed"])
    # Only the corrected call reached Mixpeek.
    [execute] = fake.requests_for("execute")
    assert execute.body["inputs"]["max_duration"] == 600


def test_describe_is_answered_without_a_request(
    api: str, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek, stub: StubOpenAI
) -> None:
    tools = make_tools()
    describe = next(t.name for t in tools.definitions if t.kind == "describe")
    stub.script(stub.tool_call(describe, {}, call_id="call_desc"), stub.text("It searches demos."))

    result = run_agent(stub, api, tools.as_agents_tools(names=[describe]), "What can you search?")

    assert result.final_output == "It searches demos."
    described = json.loads(tool_outputs(stub, api)["call_desc"])
    assert described["retriever_id"] == "ret_product_demos"
    assert described["search_tool"] == SEARCH
    assert fake.requests_for("execute") == []


def test_an_invocation_without_a_call_id_is_still_answered(
    make_tools: Callable[..., MixpeekTools],
) -> None:
    from agents.tool_context import ToolContext

    [tool] = [t for t in make_tools().as_agents_tools() if t.name == SEARCH]
    arguments = json.dumps({"query": "sso"})
    context = ToolContext(context=None, tool_name=SEARCH, tool_call_id="", tool_arguments=arguments)

    output = asyncio.run(tool.on_invoke_tool(context, arguments))

    assert json.loads(output)["rows"]
