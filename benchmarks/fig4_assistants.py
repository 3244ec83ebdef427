"""Figure 4: Assistants runs - HTTP requests, and time from the run's completion to our return.

``StubOpenAI`` advances a run one step per ``GET``, with no notion of time. To give runs a
duration, :class:`TimedRuns` sits in front of it on the client's transport: every model
step (after the run is created, after tool outputs are submitted) takes ``work_s`` of wall
time. Until then a ``GET`` of the run answers ``in_progress`` (from the last state seen);
after it, the stub is driven to the step's stop (``requires_action`` or terminal). A
streamed request answers once the step's work is done, the way a server streams the
events as they happen. The run's completion time is the moment its last step's work was
done, so ``return - completion`` is the delay the client adds: up to one poll interval
when polling, only local processing when streaming.

Each run: the model calls the search tool twice, then answers. Approaches:

* ours, polling: ``run_assistant(...)`` (honours the ``openai-poll-after-ms`` header);
* ours, streaming: ``run_assistant(..., stream=True)``;
* by hand: ``runs.create_and_poll`` / ``submit_tool_outputs_and_poll`` with the docs'
  tool loop (:func:`benchmarks.peers.handwritten.run_assistant_by_hand`).

Goal: streaming makes zero polls; polling detects completion within one poll interval.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2

from benchmarks._backend import (
    DEMO_QUERY,
    DEMO_RETRIEVER,
    Samples,
    build_tools,
    close_tools,
    quiet_deprecations,
)
from benchmarks._report import Figure, Settings, Stat
from benchmarks.peers import handwritten
from mixpeek_openai.assistants import create_assistant, run_assistant
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI

__all__ = ["TimedRuns", "run"]

TITLE = "Assistants runs: requests and completion-to-return delay"
GOAL = "streaming: 0 polls; polling: detects completion within 1 poll interval"

_RUN_GET = re.compile(r"^/v1/threads/[^/]+/runs/(?P<run>[^/]+)$")
_RUN_CREATE = re.compile(r"^/v1/threads/(?:[^/]+/)?runs$")
_SUBMIT = re.compile(r"^/v1/threads/[^/]+/runs/(?P<run>[^/]+)/submit_tool_outputs$")
_WORKING = ("queued", "in_progress")
_TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


@dataclass
class TimedRuns:
    """A transport handler in front of ``StubOpenAI`` that makes each run step take time."""

    stub: StubOpenAI
    work_s: float
    log: list[tuple[str, str]] = field(default_factory=list)
    completed_at: dict[str, float] = field(default_factory=dict)
    """When each run's last step was done (server side)."""
    seen_at: dict[str, float] = field(default_factory=dict)
    """When the client was first told a run had ended (the response to it was sent)."""
    _ready_at: dict[str, float] = field(default_factory=dict)
    _last: dict[str, dict[str, Any]] = field(default_factory=dict)
    _headers: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Any:
        """An ``openai.OpenAI`` client whose requests go through this handler."""
        return self.stub.client(http_client=httpx2.Client(transport=httpx2.MockTransport(self)))

    def polls(self) -> int:
        """``GET`` requests of a run so far."""
        return sum(1 for method, path in self.log if method == "GET" and _RUN_GET.match(path))

    def _forward(self, request: httpx2.Request) -> httpx2.Response:
        response = cast(httpx2.Response, self.stub.transport.handler(request))
        response.read()
        return response

    def _remember(self, run: dict[str, Any], response: httpx2.Response, started: float) -> None:
        run_id = str(run.get("id"))
        self._last[run_id] = run
        poll = response.headers.get("openai-poll-after-ms")
        if poll is not None:
            self._headers = {"openai-poll-after-ms": poll}
        if run.get("status") in _TERMINAL and run_id not in self.completed_at:
            self.completed_at[run_id] = self._ready_at.get(run_id, started)
            self.seen_at[run_id] = time.perf_counter()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        """Serve one request (see the module docstring)."""
        now = time.perf_counter()
        path = request.url.path
        with self._lock:
            self.log.append((request.method, path))
        body: dict[str, Any] = {}
        if request.method == "POST" and request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = {}
        streamed = bool(body.get("stream"))
        get = _RUN_GET.match(path) if request.method == "GET" else None
        submit = _SUBMIT.match(path) if request.method == "POST" else None
        create = request.method == "POST" and _RUN_CREATE.match(path) is not None
        if get is not None:
            run_id = get["run"]
            if now < self._ready_at.get(run_id, 0.0) and run_id in self._last:
                still = {**self._last[run_id], "status": "in_progress", "required_action": None}
                return httpx2.Response(200, json=still, headers=self._headers)
            response = self._forward(request)
            run = response.json()
            while response.status_code == 200 and run.get("status") in _WORKING:
                response = self._forward(request)
                run = response.json()
            self._remember(run, response, now)
            return response
        if streamed and (create or submit is not None):
            # The server streams the step's events as they happen: after its work.
            time.sleep(self.work_s)
            done = time.perf_counter()
            response = self._forward(request)
            for run in _streamed_runs(response.content):
                self._ready_at[str(run.get("id"))] = done
                self._remember(run, response, done)
            return response
        response = self._forward(request)
        if (create or submit is not None) and response.status_code == 200:
            run = response.json()
            self._ready_at[str(run.get("id"))] = now + self.work_s
            self._remember(run, response, now)
        return response


def _streamed_runs(content: bytes) -> list[dict[str, Any]]:
    """The run objects carried by ``thread.run.*`` events of an SSE body."""
    runs = []
    event = ""
    for line in content.decode("utf-8", "replace").splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif (
            line.startswith("data:")
            and event.startswith("thread.run.")
            and (not event.startswith("thread.run.step"))
        ):
            try:
                runs.append(json.loads(line[5:].strip()))
            except ValueError:
                continue
    return runs


@dataclass
class _Outcome:
    requests: int
    polls: int
    detect_ms: float
    delay_ms: float
    wall_ms: float


def run(settings: Settings, samples: Samples) -> Figure:
    """Measure figure 4."""
    base_work = settings.pickf(0.30, 0.02)
    poll_ms = settings.pick(250, 10)
    reps = settings.reps(8, 1)
    # Spread the step durations over one poll interval, so completion falls at every
    # phase of the polling cycle across repetitions (a fixed duration would always be
    # noticed after the same delay).
    works = [base_work + (i + 0.5) / reps * poll_ms / 1000 for i in range(reps)]
    outcomes: dict[str, list[_Outcome]] = {}
    with FakeMixpeek() as fake:
        mixpeek = fake.client()
        tools = build_tools(mixpeek, [DEMO_RETRIEVER])
        name = tools.definitions[0].name
        stub = StubOpenAI(poll_after_ms=poll_ms)
        gate = TimedRuns(stub, works[0])
        client = gate.client()
        ours_assistant = create_assistant(client, tools, model="gpt-4o", name="demos")
        with quiet_deprecations():
            hand_assistant = client.beta.assistants.create(
                model="gpt-4o", name="demos-by-hand", tools=[handwritten.HAND_TOOL]
            )

        def script(tool_name: str) -> None:
            stub.script(
                stub.tool_calls(
                    [
                        stub.call(tool_name, {"query": DEMO_QUERY, "limit": 5}),
                        stub.call(tool_name, {"query": "sso audit log", "limit": 5}),
                    ]
                ),
                stub.text("Here are the demos about SSO."),
            )

        def ours(stream: bool) -> Callable[[], str]:
            def go() -> str:
                script(name)
                result = run_assistant(
                    client, tools, assistant_id=ours_assistant.id, message=DEMO_QUERY, stream=stream
                )
                return str(result.run.id)

            return go

        def by_hand() -> str:
            script(handwritten.HAND_TOOL_NAME)
            with quiet_deprecations():
                run_obj, _ = handwritten.run_assistant_by_hand(
                    client,
                    mixpeek,
                    DEMO_RETRIEVER,
                    assistant_id=hand_assistant.id,
                    message=DEMO_QUERY,
                )
            return str(run_obj.id)

        approaches: dict[str, Callable[[], str]] = {
            "ours, polling": ours(False),
            "ours, streaming": ours(True),
            "by hand, create_and_poll": by_hand,
        }
        for work in works:
            gate.work_s = work
            for label, fn in approaches.items():
                before_log, before_polls = len(gate.log), gate.polls()
                start = time.perf_counter()
                run_id = fn()
                end = time.perf_counter()
                completed = gate.completed_at.get(run_id, end)
                seen = gate.seen_at.get(run_id, end)
                outcomes.setdefault(label, []).append(
                    _Outcome(
                        requests=len(gate.log) - before_log,
                        polls=gate.polls() - before_polls,
                        detect_ms=(seen - completed) * 1000,
                        delay_ms=(end - completed) * 1000,
                        wall_ms=(end - start) * 1000,
                    )
                )
        close_tools(tools)

    delay = {k: Stat.of([o.delay_ms for o in v], "ms") for k, v in outcomes.items()}
    wall = {k: Stat.of([o.wall_ms for o in v], "ms") for k, v in outcomes.items()}
    polls = {k: Stat.of([o.polls for o in v], "polls") for k, v in outcomes.items()}
    reqs = {k: Stat.of([o.requests for o in v], "requests") for k, v in outcomes.items()}
    streaming_polls = max(o.polls for o in outcomes["ours, streaming"])
    detect = {k: Stat.of([o.detect_ms for o in v], "ms") for k, v in outcomes.items()}
    worst_detect = max(o.detect_ms for o in outcomes["ours, polling"])
    worst_poll_delay = max(o.delay_ms for o in outcomes["ours, polling"])
    met = streaming_polls == 0 and worst_detect <= poll_ms
    notes = []
    if streaming_polls:
        notes.append(f"Missed: streaming made {streaming_polls} polls.")
    if worst_detect > poll_ms:
        notes.append(
            f"Missed: polling took up to {worst_detect:.0f} ms to notice completion, "
            f"{worst_detect - poll_ms:.0f} ms over one {poll_ms} ms interval (each cycle is "
            f"the interval plus the poll request itself)."
        )
    notes.append(
        f"Polling noticed completion after {detect['ours, polling'].median:.0f} ms (median; "
        f"max {worst_detect:.0f} ms) and returned after {delay['ours, polling'].median:.0f} ms "
        f"(max {worst_poll_delay:.0f} ms; the rest is reading the reply messages)."
    )
    notes.append(
        f"Each model step takes {works[0] * 1000:.0f}-{works[-1] * 1000:.0f} ms (spread over "
        f"one interval); the server suggests polling every "
        f"{poll_ms} ms (`openai-poll-after-ms`), which both pollers honour."
    )
    details = [
        f"{label}: requests {reqs[label].text()}, run polls {polls[label].text()}, "
        f"completion-to-detection {detect[label].text(1)}, "
        f"completion-to-return {delay[label].text(1)} (max "
        f"{max(o.delay_ms for o in outcomes[label]):.1f} ms), wall {wall[label].text()}"
        for label in outcomes
    ]
    details.append(
        f"{reps} runs per approach; each run: create thread + message, one requires_action "
        "with 2 tool calls (FakeMixpeek on loopback), then the answer."
    )

    def cell(label: str) -> str:
        return (
            f"{reqs[label].median:.0f} req, {polls[label].median:.0f} polls, "
            f"delay {delay[label].short(1)}"
        )

    return Figure(
        key="4",
        title=TITLE,
        ours=f"polling: {cell('ours, polling')}; streaming: {cell('ours, streaming')}",
        peers=f"create_and_poll by hand: {cell('by hand, create_and_poll')}",
        ratios=(
            f"detection delay / poll interval: ours {detect['ours, polling'].median / poll_ms:.2f}"
            f" (max {worst_detect / poll_ms:.2f}); by hand "
            f"{detect['by hand, create_and_poll'].median / poll_ms:.2f} (max "
            f"{max(o.detect_ms for o in outcomes['by hand, create_and_poll']) / poll_ms:.2f})"
        ),
        goal=GOAL,
        met=None if settings.smoke else met,
        notes=notes,
        details=details,
        data={
            "work_s": works,
            "poll_ms": poll_ms,
            "repetitions": reps,
            "runs": {k: [o.__dict__ for o in v] for k, v in outcomes.items()},
        },
    )
