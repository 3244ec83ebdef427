"""Dispatching tool calls against FakeMixpeek with injected faults, through the real
``mixpeek`` client. Every case runs on the sync and the async path (``run`` fixture)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _reliability import POOL_PREFIX, working_on_a_call

from mixpeek_openai.dispatch import CallEvent, DispatchConfig, Dispatcher, ToolCallResult
from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.layout import as_objects
from mixpeek_openai.results import default_token_counter
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault
from mixpeek_openai.tools import MixpeekTools, ToolDefinition

SECRET = "mxp-SECRET-7f3a9c1e5b"
SEARCH = "search_product_demo"

Run = Callable[[Any, Any], list[ToolCallResult]]


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Run:
    """Dispatch through ``tools.dispatch`` or ``tools.adispatch`` (same cases for both)."""
    if request.param == "sync":
        return lambda tools, calls: tools.dispatch(calls)
    return lambda tools, calls: asyncio.run(tools.adispatch(calls))


@pytest.fixture
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek(api_key=SECRET) as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def events() -> list[CallEvent]:
    return []


@pytest.fixture
def make_tools(
    fake: FakeMixpeek, clock: ManualClock, events: list[CallEvent]
) -> Iterator[Callable[..., MixpeekTools]]:
    """Tools over the fake's first retriever, on a manual clock, recording call events."""
    made: list[MixpeekTools] = []

    def make(**config: Any) -> MixpeekTools:
        config.setdefault("retry", RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0))
        config.setdefault("on_call_event", events.append)
        tools = MixpeekTools.from_retrievers(
            fake.client(),
            ["ret_product_demos"],
            actions=["explain"],
            config=DispatchConfig(**config),
        )
        made.append(tools)
        return tools

    yield make
    for tools in made:
        tools._get_dispatcher().close()


def call(call_id: str, arguments: Any = None, name: str = SEARCH) -> dict[str, Any]:
    """A Chat Completions tool call as a dict."""
    if arguments is None:
        arguments = {"query": "sso setup"}
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def error_of(result: ToolCallResult) -> dict[str, Any]:
    payload = json.loads(result.output)
    assert set(payload) == {"error"}, result.output
    error: dict[str, Any] = payload["error"]
    return error


def our_threads() -> list[threading.Thread]:
    """Dispatcher worker threads still working on a call."""
    # A batch returns only once its calls are answered (or cancelled and waited for),
    # so any worker still inside a call now is one the batch left running.
    threads = [t for t in threading.enumerate() if t.name.startswith(POOL_PREFIX)]
    return [t for t in threads if working_on_a_call(t)]


# -- retries ------------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_once_then_succeeds(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], clock: ManualClock
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(429, retry_after=1))

    [result] = run(tools, [call("c1")])

    assert result.ok, result.error
    assert result.attempts == 2
    assert clock.sleeps == [1.0]
    assert result.duration_s == pytest.approx(1.0)
    assert [r.status for r in fake.requests_for("execute")] == [429, 200]
    assert as_objects(json.loads(result.output))


@pytest.mark.parametrize(
    ("fault", "expected_wait"),
    [
        (Fault.status(503, retry_after_seconds=2.0), 2.0),
        (
            Fault.status(
                503, body={"detail": {"error": {"details": {"retry_after_seconds": 0.5}}}}
            ),
            0.5,
        ),
        (Fault.status(429, retry_after=600), 10.0),  # capped by max_wait_s
    ],
    ids=["body-retry-after", "legacy-detail-body", "capped"],
)
def test_advised_waits_are_honoured(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    clock: ManualClock,
    fault: Fault,
    expected_wait: float,
) -> None:
    tools = make_tools(deadline_s=60)
    fake.inject("execute", fault)

    [result] = run(tools, [call("c1")])

    assert result.ok
    assert clock.sleeps == [expected_wait]


def test_retryable_false_is_not_retried(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], clock: ManualClock
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(503, retryable=False, retry_after=1))

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.status == 503
    assert result.attempts == 1 and clock.sleeps == []
    assert error_of(result)["type"] == "temporarily_unavailable"


def test_503_storm_ends_at_the_deadline_with_nothing_left_running(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], clock: ManualClock
) -> None:
    tools = make_tools(retry=RetryPolicy(sleep=clock.sleep, clock=clock.now, max_attempts=100))
    fake.inject("execute", Fault.status(503), times=None)

    results = run(tools, [call("c1"), call("c2", {"query": "dashboards"})])

    assert [r.call_id for r in results] == ["c1", "c2"]
    for result in results:
        assert result.error is not None
        assert result.error.kind == "deadline_exceeded"
        assert result.error.status == 503 and result.error.retryable
        # Both calls advance one shared manual clock, so how the retries split between
        # them varies; each retried at least once before the deadline.
        assert result.attempts >= 2
        assert result.duration_s <= 20.0
        error = error_of(result)
        assert error["type"] == "temporarily_unavailable"
        assert "temporarily unavailable" in error["message"]
    # The mixpeek client's own 429/503 loop never ran: the server saw exactly our attempts.
    assert len(fake.requests_for("execute")) == sum(r.attempts for r in results)
    assert sum(clock.sleeps) <= 2 * 20.0
    seen = len(fake.requests)
    tools.close()
    assert our_threads() == []
    assert fake.in_flight() == 0
    assert len(fake.requests) == seen


def test_a_hanging_server_is_cut_off_by_the_deadline(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    # A real clock and a short deadline: the per-attempt timeout is the time left.
    tools = make_tools(deadline_s=0.4, retry=RetryPolicy())
    fake.inject("execute", Fault.hang(30))

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.kind == "deadline_exceeded"
    assert error_of(result)["type"] == "temporarily_unavailable"
    tools.close()
    assert our_threads() == []


def test_a_retry_after_beyond_the_deadline_gives_up_without_waiting(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], clock: ManualClock
) -> None:
    tools = make_tools(deadline_s=5)
    fake.inject("execute", Fault.status(429, retry_after=8))

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.kind == "deadline_exceeded"
    assert result.error.status == 429
    assert result.attempts == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(500),
        Fault.status(502),
        Fault.status(503),
        Fault.status(504),
        Fault.reset(),
        Fault.malformed_json(status=502),
    ],
    ids=["500", "502", "503", "504", "reset", "502-html"],
)
def test_transient_failures_are_retried(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    clock: ManualClock,
    fault: Fault,
) -> None:
    tools = make_tools()
    fake.inject("execute", fault)

    [result] = run(tools, [call("c1")])

    assert result.ok, result.error
    assert result.attempts == 2
    assert len(fake.requests_for("execute")) == 2
    assert clock.sleeps == [0.5]  # initial backoff, no jitter in these tests


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request"),
        (401, "not_authorized"),
        (403, "not_authorized"),
        (404, "not_found"),
        (422, "invalid_request"),
    ],
)
def test_client_errors_are_not_retried_and_explained(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    clock: ManualClock,
    status: int,
    error_type: str,
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(status, message="inputs.query: too short"))

    [result] = run(tools, [call("c1")])

    assert result.error is not None
    assert (result.error.kind, result.error.status) == ("http_error", status)
    assert not result.error.retryable
    assert result.attempts == 1 and clock.sleeps == []
    assert len(fake.requests_for("execute")) == 1
    error = error_of(result)
    assert error["type"] == error_type
    if status in (400, 422):
        assert "inputs.query: too short" in error["message"]


def test_a_retriever_that_disappeared_is_a_real_404(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools()
    fake.remove_retriever("ret_product_demos")

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.status == 404
    assert error_of(result)["type"] == "not_found"
    assert "ret_product_demos" in error_of(result)["message"]


# -- bad bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.malformed_json(), Fault.empty_body()], ids=str)
def test_unreadable_bodies_are_reported_not_retried(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], fault: Fault
) -> None:
    tools = make_tools()
    fake.inject("execute", fault)

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.kind == "invalid_response"
    assert result.attempts == 1
    assert error_of(result)["type"] == "temporarily_unavailable"


def test_a_10mb_body_is_shaped_into_the_budget(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools(output_budget_tokens=500)
    fake.inject("execute", Fault.huge_body(10_000_000))

    [result] = run(tools, [call("c1")])

    assert result.ok
    assert len(json.dumps(result.raw)) >= 10_000_000
    # Counted the way the dispatcher counts by default (exact cl100k when available).
    assert default_token_counter()(result.output) <= 500
    payload = json.loads(result.output)
    assert as_objects(payload) and "debug_padding" not in result.output


def test_a_body_over_the_size_limit_is_refused(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools(max_response_bytes=1_000_000)
    fake.inject("execute", Fault.huge_body(10_000_000))

    [result] = run(tools, [call("c1")])

    assert result.error is not None and result.error.kind == "response_too_large"
    assert result.attempts == 1 and result.raw is None
    assert error_of(result)["type"] == "response_too_large"


def test_failed_and_degraded_executions(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools(max_concurrency=1)
    fake.inject("execute", Fault.failed_execution("index unavailable"))
    fake.inject("execute", Fault.degraded_execution("replica lagging"))

    failed, degraded = run(tools, [call("c1"), call("c2")])

    assert failed.error is not None and failed.error.kind == "execution_failed"
    assert json.loads(failed.output)["status"] == "failed"
    assert "index unavailable" in json.loads(failed.output)["error"]
    assert degraded.ok
    assert json.loads(degraded.output)["status"] == "degraded"


# -- concurrency ---------------------------------------------------------------------------


def test_parallel_calls_overlap_on_the_server(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools()
    calls = [call(f"c{i}", {"query": f"topic {i}"}) for i in range(8)]
    outcome: list[list[ToolCallResult]] = []
    fake.pause("execute")
    worker = threading.Thread(target=lambda: outcome.append(run(tools, calls)))
    worker.start()
    try:
        # The server holds all eight executes at once: they were sent concurrently.
        held = fake.wait_for_requests(8, "execute", in_flight=True, timeout=30)
    finally:
        fake.resume()
        worker.join(timeout=60)
    assert held
    [results] = outcome

    assert [r.call_id for r in results] == [f"c{i}" for i in range(8)]
    assert all(r.ok for r in results)
    assert fake.max_overlap("execute") == 8
    tools.close()
    assert our_threads() == []


def test_concurrency_is_bounded(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools(max_concurrency=2)
    fake.set_latency(0.05, "execute")

    results = run(tools, [call(f"c{i}") for i in range(5)])

    assert all(r.ok for r in results)
    assert fake.max_overlap("execute") <= 2


def test_one_failing_call_keeps_its_siblings(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools()
    explain = next(d.name for d in tools.definitions if d.kind == "explain")
    fake.inject("explain", Fault.status(400, message="explain is broken"))
    fake.set_latency(0.1, "execute")

    results = run(
        tools,
        [call("a"), call("b", name=explain), call("c", "{oops"), call("d", {"query": "x"})],
    )

    assert [r.call_id for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].error is not None and results[1].error.status == 400
    assert results[2].error is not None and results[2].error.kind == "invalid_arguments"


# -- model mistakes --------------------------------------------------------------------------


def test_model_mistakes_become_outputs(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools(max_argument_bytes=1000)
    calls = [
        call("json", '{"query": "sso'),
        call("array", "[1, 2]"),
        call("types", {"query": 5, "limit": "ten"}),
        call("missing", {"category": "crm"}),
        call("extra", {"query": "sso", "retriever_id": "ret_other"}),
        call("unknown", {"query": "sso"}, name="delete_everything"),
        call("huge", {"query": "x" * 5000}),
        call("nulls", {"query": "sso", "category": None, "limit": None, "tags": None}),
    ]

    results = run(tools, calls)

    assert [r.call_id for r in results] == [c["id"] for c in calls]
    by_id = {r.call_id: r for r in results}
    assert "not valid JSON" in error_of(by_id["json"])["message"]
    assert "JSON object, not an array" in error_of(by_id["array"])["message"]
    types = error_of(by_id["types"])["message"]
    assert "query:" in types and "limit:" in types and "integer" in types
    assert "query: required" in error_of(by_id["missing"])["message"]
    assert "retriever_id: not a parameter" in error_of(by_id["extra"])["message"]
    unknown = error_of(by_id["unknown"])
    assert unknown["type"] == "unknown_tool" and SEARCH in unknown["hint"]
    huge = error_of(by_id["huge"])
    assert huge["type"] == "arguments_too_large" and "1000" in huge["message"]
    assert by_id["nulls"].ok, by_id["nulls"].output
    for result in results[:-1]:
        assert result.error is not None and result.attempts == 0
    # Only the valid call reached the server, with the retriever's defaults for the nulls.
    [sent] = fake.requests_for("execute")
    assert sent.body["inputs"] == {"query": "sso"}


def test_duplicate_ids_are_answered_once_each_in_order(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    tools = make_tools()

    results = run(tools, [call("c1"), call("c2"), call("c1"), call("c3", "nope")])

    assert [r.call_id for r in results] == ["c1", "c2", "c1", "c3"]
    assert results[0].ok and results[1].ok
    assert results[2].error is not None and results[2].error.kind == "duplicate_call"
    assert len(fake.requests_for("execute")) == 2
    assert len(tools.handle([call("c1"), call("c1")])) == 2


# -- internal errors, events -------------------------------------------------------------------


class _Tools:
    """A minimal tool set: one real search tool plus one whose request builder breaks."""

    def __init__(self, real: MixpeekTools) -> None:
        self.client = real.client
        self.config = real.config
        search = real.get(SEARCH)
        assert search is not None

        def broken(arguments: Any) -> Any:
            raise RuntimeError(f"builder exploded with key {SECRET}")

        self.definitions = (
            search,
            ToolDefinition(
                name="broken",
                description="breaks",
                arguments_model=search.arguments_model,
                retriever_id=None,
                kind="search",
                request_builder=broken,
            ),
        )


def test_internal_errors_are_answered_logged_and_recorded(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mixpeek_openai")
    tools = Dispatcher(_Tools(make_tools()))

    results = run(tools, [call("a"), call("b", name="broken"), call("c")])

    assert [r.call_id for r in results] == ["a", "b", "c"]
    assert results[0].ok and results[2].ok
    broken = results[1]
    assert broken.error is not None and broken.error.kind == "internal_error"
    assert "RuntimeError" in broken.error.message
    assert error_of(broken)["type"] == "internal_error"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "Traceback" in record.getMessage() and "builder exploded" in record.getMessage()
    assert SECRET not in caplog.text and SECRET not in broken.error.message


def test_call_events(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    events: list[CallEvent],
) -> None:
    tools = make_tools()
    fake.inject("execute", Fault.status(429, retry_after=1))

    run(tools, [call("c1")])

    assert [e.kind for e in events] == ["started", "retried", "finished"]
    retried = events[1]
    assert retried.wait_s == 1.0 and retried.attempt == 1
    assert retried.error is not None and retried.error.status == 429
    assert events[2].attempt == 2 and events[2].elapsed_s == pytest.approx(1.0)


@pytest.mark.parametrize("calls", [1, 3])
def test_a_raising_event_callback_stops_the_batch_and_propagates(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools], calls: int
) -> None:
    def callback(event: CallEvent) -> None:
        if event.kind == "finished":
            raise ValueError("observer bug")

    tools = make_tools(on_call_event=callback)
    batch = [call(f"c{i}", {"query": f"topic {i}"}) for i in range(calls)]

    with pytest.raises(ValueError, match="observer bug"):
        run(tools, batch)

    # Nothing the batch started is still working, and no request is left in flight.
    assert our_threads() == []
    assert fake.wait_until_idle(timeout=5)


# -- secrets -----------------------------------------------------------------------------------


def test_the_api_key_never_leaks(
    run: Run,
    fake: FakeMixpeek,
    make_tools: Callable[..., MixpeekTools],
    events: list[CallEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tools = make_tools(max_concurrency=1, deadline_s=5)
    # The server echoes the key back in an error body: it must be scrubbed from what we emit.
    fake.inject("execute", Fault.status(400, message=f"bad key Bearer {SECRET} for {SECRET}"))
    fake.inject("execute", Fault.status(429, retry_after=1))
    fake.inject("execute", Fault.status(401, message=f"key {SECRET} revoked"))
    fake.inject("execute", Fault.reset(), times=4)
    fake.inject("execute", Fault.malformed_json())
    fake.inject("execute", Fault.status(503, body={"error": {"message": SECRET}}), times=None)
    calls = [call(f"c{i}") for i in range(6)] + [call("bad", f'{{"query": "{SECRET}"')]
    results = run(tools, calls)
    results += run(Dispatcher(_Tools(tools)), [call("x", name="broken")])

    texts = [r.output for r in results]
    texts += [repr(r) for r in results]
    texts += [repr(r.error) for r in results]
    texts += [repr(e) for e in events]
    texts += [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    texts.append(caplog.text)
    assert texts and all(SECRET not in text for text in texts)
    assert any("[redacted]" in r.output for r in results)


# -- the fallback transport ------------------------------------------------------------------


def test_a_client_with_its_own_request_is_still_bounded_by_the_deadline(
    run: Run, fake: FakeMixpeek
) -> None:
    from mixpeek import Mixpeek

    class LoggingMixpeek(Mixpeek):  # type: ignore[misc]
        """A user subclass that customises requests: sent through as is."""

        def _request(self, *args: Any, **kwargs: Any) -> Any:
            return super()._request(*args, **kwargs)

    client = LoggingMixpeek(api_key=SECRET, namespace=fake.namespace, base_url=fake.base_url)
    tools = MixpeekTools.from_retrievers(
        client, ["ret_product_demos"], config=DispatchConfig(deadline_s=0.4)
    )
    [ok] = run(tools, [call("c1")])
    assert ok.ok
    fake.inject("execute", Fault.hang(30))

    [result] = run(tools, [call("c2")])

    assert result.error is not None and result.error.kind == "deadline_exceeded"
    assert error_of(result)["type"] == "temporarily_unavailable"


def test_requests_use_only_the_clients_public_attributes(
    run: Run, fake: FakeMixpeek, monkeypatch: pytest.MonkeyPatch
) -> None:

    client = fake.client()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the mixpeek client's own request path was used")

    # The client's own request methods are never called: only api_key, namespace,
    # base_url and timeout are read.
    for name in ("get", "list", "execute"):
        monkeypatch.setattr(client.retrievers, name, refuse)
    tools = MixpeekTools.from_retrievers(client, ["ret_product_demos"], refresh=True)

    [result] = run(tools, [call("c1")])

    assert result.ok
    [execute] = fake.requests_for("execute")
    assert execute.body["inputs"] == {"query": "sso setup"}


def test_a_client_without_connection_attributes_is_a_configuration_error() -> None:
    class NotAClient:
        pass

    tools = MixpeekTools(NotAClient(), [{"retriever_id": "r1", "input_schema": {}}])
    with pytest.raises(ConfigurationError, match="api_key"):
        tools.dispatch([call("c1", {}, name=tools.names[0])])


def test_a_stuck_worker_is_answered_at_the_deadline(
    run: Run, fake: FakeMixpeek, make_tools: Callable[..., MixpeekTools]
) -> None:
    release = threading.Event()
    real = make_tools()
    search = real.get(SEARCH)
    assert search is not None

    def stuck(**arguments: Any) -> Any:
        release.wait(10)  # somewhere no timeout reaches
        return {"late": True}

    tools = _Tools(real)
    tools.definitions = (
        search,
        ToolDefinition(
            name="stuck",
            description="never answers",
            arguments_model=search.arguments_model,
            retriever_id=None,
            kind="function",
            function=stuck,
        ),
    )
    seen: list[CallEvent] = []
    tools.config = DispatchConfig(deadline_s=0.2, on_call_event=seen.append)
    dispatcher = Dispatcher(tools)
    try:
        results = run(dispatcher, [call("a", name="stuck"), call("b")])
    finally:
        release.set()
        dispatcher.close()

    assert [r.call_id for r in results] == ["a", "b"]
    assert results[1].ok
    assert results[0].error is not None and results[0].error.kind == "deadline_exceeded"
    assert error_of(results[0])["type"] == "temporarily_unavailable"
    assert our_threads() == []
    # The late worker's answer is dropped: one final event per call.
    finals = [e.call_id for e in seen if e.kind in ("finished", "failed")]
    assert sorted(finals) == ["a", "b"]
