"""OpenTelemetry tool spans, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mixpeek_openai import tracing
from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault
from mixpeek_openai.tools import MixpeekTools

SECRET = "mxp-TRACE-SECRET-4b1d9e"
SEARCH = "search_product_demo"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek(api_key=SECRET) as server:
        yield server


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tool spans go to an in-memory exporter (content capture as the default leaves it)."""
    monkeypatch.delenv(tracing.CAPTURE_CONTENT_ENV, raising=False)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.configure(tracer_provider=provider)
    yield memory
    tracing.configure()
    provider.shutdown()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_tools(fake: FakeMixpeek, clock: ManualClock) -> Callable[..., MixpeekTools]:
    fake.clear_requests()
    fake.clear_faults()

    def make(**config: Any) -> MixpeekTools:
        config.setdefault("retry", RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0))
        return MixpeekTools.from_retrievers(
            fake.client(),
            ["ret_product_demos"],
            actions=["describe"],
            config=DispatchConfig(**config),
        )

    return make


def call(call_id: str, arguments: Any, name: str = SEARCH) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": text}


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_search_is_one_execute_tool_span(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], path: str
) -> None:
    tools = make_tools()
    calls = [call("call_1", {"query": "sso setup", "limit": 3})]
    if path == "sync":
        [result] = tools.dispatch(calls)
    else:
        [result] = asyncio.run(tools.adispatch(calls))

    assert result.ok
    span = only_span(exporter)
    assert span.name == f"execute_tool {SEARCH}"
    assert span.kind == SpanKind.INTERNAL
    assert span.status.status_code == StatusCode.UNSET
    a = attrs(span)
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == SEARCH
    assert a["gen_ai.tool.call.id"] == "call_1"
    assert a["gen_ai.tool.type"] == "function"
    assert a["gen_ai.data_source.id"] == "ret_product_demos"
    assert a["mixpeek.tool.kind"] == "search"
    assert a["mixpeek.request.limit"] == 3
    assert a["mixpeek.response.documents"] == len(result.raw["documents"]) == 3
    assert a["mixpeek.attempts"] == 1
    assert a["mixpeek.response.degraded"] is False
    assert a["mixpeek.deadline_exceeded"] is False
    assert "error.type" not in a
    # Content is opt-in.
    assert "gen_ai.tool.call.arguments" not in a and "gen_ai.tool.call.result" not in a
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time >= span.start_time


def test_retries_are_span_events(
    exporter: InMemorySpanExporter,
    make_tools: Callable[..., MixpeekTools],
    fake: FakeMixpeek,
    clock: ManualClock,
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(503, retry_after=0.5), times=2)

    [result] = tools.dispatch([call("call_r", {"query": "sso"})])

    assert result.ok and result.attempts == 3
    span = only_span(exporter)
    retries = [e for e in span.events if e.name == "retry"]
    assert [dict(e.attributes or {})["mixpeek.attempt"] for e in retries] == [1, 2]
    first = dict(retries[0].attributes or {})
    assert first["error.type"] == "http_error"
    assert first["http.response.status_code"] == 503
    assert first["mixpeek.retry.wait_s"] == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(0.5)]
    assert attrs(span)["mixpeek.attempts"] == 3
    assert span.status.status_code == StatusCode.UNSET


def test_a_deadline_hit_is_an_error_span(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    # A real clock and a short deadline: the per-attempt timeout is the time left.
    tools = make_tools(deadline_s=0.4, retry=RetryPolicy())
    fake.inject("execute", Fault.hang(30))

    [result] = tools.dispatch([call("call_d", {"query": "sso"})])

    assert result.error is not None and result.error.kind == "deadline_exceeded"
    span = only_span(exporter)
    a = attrs(span)
    assert a["mixpeek.deadline_exceeded"] is True
    assert a["error.type"] == "deadline_exceeded"
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "deadline_exceeded"  # the kind: messages hold content


def test_a_degraded_execution_is_marked(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.degraded_execution())

    [result] = tools.dispatch([call("call_g", {"query": "sso"})])

    a = attrs(only_span(exporter))
    assert a["mixpeek.response.degraded"] is True
    assert a["mixpeek.response.status"] == result.raw["status"] == "degraded"


def test_model_mistakes_and_local_answers(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools()
    describe = next(t.name for t in tools.definitions if t.kind == "describe")

    results = tools.dispatch(
        [
            call("call_bad", {"query": "sso", "max_duration": "long"}),
            call("call_unknown", {}, name="search_nothing"),
            call("call_desc", {}, name=describe),
        ]
    )

    assert [r.ok for r in results] == [False, False, True]
    spans = {attrs(s)["gen_ai.tool.call.id"]: s for s in exporter.get_finished_spans()}
    bad = attrs(spans["call_bad"])
    assert bad["error.type"] == "invalid_arguments" and bad["mixpeek.attempts"] == 0
    assert "mixpeek.request.limit" not in bad
    assert spans["call_bad"].status.status_code == StatusCode.ERROR
    unknown = attrs(spans["call_unknown"])
    assert unknown["error.type"] == "unknown_tool"
    assert unknown["mixpeek.tool.kind"] == "unknown" and "gen_ai.data_source.id" not in unknown
    desc = attrs(spans["call_desc"])
    assert desc["mixpeek.tool.kind"] == "describe"
    assert desc["gen_ai.data_source.id"] == "ret_product_demos"
    assert desc["mixpeek.attempts"] == 0 and "error.type" not in desc
    assert fake.requests_for("execute") == []


def test_arguments_and_results_only_when_opted_in(
    exporter: InMemorySpanExporter,
    make_tools: Callable[..., MixpeekTools],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tools = make_tools()
    arguments = {"query": "sso setup", "limit": 2}

    tracing.configure(tracer_provider=_provider_of(exporter), capture_content=True)
    [explicit] = tools.dispatch([call("call_a", arguments)])
    tracing.configure(tracer_provider=_provider_of(exporter))
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    [from_env] = tools.dispatch([call("call_b", arguments)])
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "false")
    tools.dispatch([call("call_c", arguments)])

    spans = {attrs(s)["gen_ai.tool.call.id"]: attrs(s) for s in exporter.get_finished_spans()}
    for call_id, result in (("call_a", explicit), ("call_b", from_env)):
        assert json.loads(spans[call_id]["gen_ai.tool.call.arguments"]) == arguments
        assert spans[call_id]["gen_ai.tool.call.result"] == result.output
    assert "gen_ai.tool.call.arguments" not in spans["call_c"]
    assert "gen_ai.tool.call.result" not in spans["call_c"]


def test_error_messages_only_when_opted_in(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    # Error messages quote the model's arguments and the server's error text.
    tools = make_tools()
    private = "my card number is 4111 1111 1111 1111"
    fake.inject("execute", Fault.status(503, message=private, retry_after=0), times=1)

    tools.dispatch([call("call_m", {"query": "sso", "max_duration": private})])
    tools.dispatch([call("call_r", {"query": "sso"})])
    tracing.configure(tracer_provider=_provider_of(exporter), capture_content=True)
    tools.dispatch([call("call_c", {"query": "sso", "max_duration": private})])

    spans = {attrs(s)["gen_ai.tool.call.id"]: s for s in exporter.get_finished_spans()}
    texts = [
        repr(attrs(spans[i])) + repr(spans[i].status.description) for i in ("call_m", "call_r")
    ]
    texts += [repr(dict(e.attributes or {})) for e in spans["call_r"].events]
    assert not any("4111" in t for t in texts), texts
    assert spans["call_m"].status.description == "invalid_arguments"
    assert [e.name for e in spans["call_r"].events] == ["retry"]
    assert "4111" in (spans["call_c"].status.description or "")


def test_a_cancelled_call_still_ends_its_span(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools(deadline_s=30)
    fake.inject("execute", Fault.hang(30), times=None)
    calls = [call(f"call_{i}", {"query": f"sso {i}"}) for i in range(2)]

    async def cancelled() -> None:
        task = asyncio.ensure_future(tools.adispatch(calls))
        held = await asyncio.to_thread(fake.wait_for_requests, 2, "execute", in_flight=True)
        assert held
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(cancelled(), 10))

    spans = exporter.get_finished_spans()
    assert sorted(attrs(s)["gen_ai.tool.call.id"] for s in spans) == ["call_0", "call_1"]
    assert {attrs(s)["error.type"] for s in spans} == {"cancelled"}
    assert {s.status.status_code for s in spans} == {StatusCode.ERROR}


def _provider_of(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_no_secret_in_any_span(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools(retry=RetryPolicy.none())
    tracing.configure(tracer_provider=_provider_of(exporter), capture_content=True)
    # The server echoes the key in its error message, the worst case.
    fake.inject("execute", Fault.status(500, message=f"invalid key {SECRET}"))
    results = tools.dispatch([call("call_s1", {"query": "sso"})])
    fake.inject("execute", Fault.status(503, message=f"key {SECRET} throttled"))
    results += tools.dispatch([call("call_s2", {"query": "sso"})])
    results += tools.dispatch([call("call_s3", {"query": "sso"})])

    assert [r.ok for r in results] == [False, False, True]
    text = _dump(exporter.get_finished_spans())
    assert SECRET not in text
    assert "bearer" not in text.lower() and "authorization" not in text.lower()
    assert fake.base_url not in text


def _dump(spans: Any) -> str:
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.append(repr(dict(span.attributes or {})))
        parts.append(str(span.status.description))
        parts.extend(repr((e.name, dict(e.attributes or {}))) for e in span.events)
    return "\n".join(parts)


def test_the_span_nests_under_the_callers_span(
    exporter: InMemorySpanExporter, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools()
    provider = _provider_of(exporter)
    tracing.configure(tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("invoke_agent") as parent:
        [result] = tools.dispatch([call("call_p", {"query": "sso"})])

    assert result.ok
    spans = {s.name: s for s in exporter.get_finished_spans()}
    child = spans[f"execute_tool {SEARCH}"]
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.context.trace_id == parent.get_span_context().trace_id


def test_results_without_a_request_still_end_the_span(exporter: InMemorySpanExporter) -> None:
    trace = tracing.start_call(call_id="c", name="search_x", retriever_id=None, kind="search")
    trace.end(ToolCallResult(call_id="c", name="search_x", arguments=None, output="{}"))

    a = attrs(only_span(exporter))
    assert a["mixpeek.attempts"] == 0 and "mixpeek.request.limit" not in a


def test_without_opentelemetry_nothing_is_imported_or_recorded(fake: FakeMixpeek) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from importlib.abc import MetaPathFinder

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError(f"No module named {{name!r}} (blocked)")
                return None

        sys.meta_path.insert(0, Block())
        from mixpeek import Mixpeek
        from mixpeek_openai import tracing
        from mixpeek_openai.tools import MixpeekTools

        client = Mixpeek(
            api_key={SECRET!r}, namespace={fake.namespace!r}, base_url={fake.base_url!r}
        )
        tools = MixpeekTools.from_retrievers(client, ["ret_product_demos"])
        call = {{"type": "function_call", "call_id": "c1", "name": {SEARCH!r},
                "arguments": json.dumps({{"query": "sso"}})}}
        [result] = tools.dispatch([call])
        trace = tracing.start_call(call_id="c2", name="x", retriever_id=None, kind="search")
        trace.end(result)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print(json.dumps({{"ok": result.ok, "loaded": loaded,
                          "noop": type(trace) is tracing.CallTrace}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "loaded": [], "noop": True}
