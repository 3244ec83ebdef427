"""Shared state, request records and wire helpers of :class:`StubOpenAI`."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._stub_model import (
    ConvItem,
    OfferedTool,
    StubAPIError,
    StubTurn,
    default_turn,
    estimate_tokens,
)

__all__ = ["RecordedOpenAIRequest"]

# Headers that may carry a credential; never recorded.
_SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "openai-api-key", "proxy-authorization", "cookie"}
)


@dataclass(frozen=True)
class RecordedOpenAIRequest:
    """One request the stub received (credentials removed).

    ``path`` is the URL path (``/v1/chat/completions``), ``body`` the decoded JSON body
    (``None`` for GETs), ``headers`` lower-cased without ``Authorization`` or other
    credential headers, ``status`` the HTTP status answered.
    """

    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    status: int = 200

    @property
    def json(self) -> Any:
        """Alias of :attr:`body` (the decoded JSON body)."""
        return self.body


@dataclass(frozen=True)
class Incoming:
    """A decoded request handed to an endpoint handler."""

    method: str
    path: str
    params: Mapping[str, str]
    body: Any
    args: Mapping[str, str]

    def obj(self) -> dict[str, Any]:
        """The body as an object, or a 400 when it is not one."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise StubAPIError(400, "The request body must be a JSON object.")
        return self.body


@dataclass
class Reply:
    """What an endpoint answers: JSON, or a prepared SSE byte stream."""

    body: Any = None
    status: int = 200
    sse: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    status: int
    body: Any
    headers: dict[str, str]
    pattern: re.Pattern[str]
    method: str | None
    remaining: int


def compile_path_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """A path pattern: a regex as is, or a glob where ``*`` is one segment, ``**`` any."""
    if isinstance(pattern, re.Pattern):
        return pattern
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class StubCore:
    """State shared by every endpoint; all mutation happens under :attr:`lock`."""

    def __init__(
        self,
        *,
        api_key: str,
        poll_after_ms: int | None,
        run_polls: int,
        run_ttl_s: float,
        clock: Callable[[], float] | None,
    ) -> None:
        self.lock = threading.RLock()
        self._api_key = api_key
        self.poll_after_ms = poll_after_ms
        self.run_polls = run_polls
        self.run_ttl_s = run_ttl_s
        self._clock = clock or time.time
        self._offset = 0.0
        self._counters: dict[str, int] = {}
        self._script: deque[StubTurn] = deque()
        self._records: list[RecordedOpenAIRequest] = []
        self._faults: list[_Fault] = []
        # Per-API stores, owned by the endpoint modules.
        self.responses: dict[str, dict[str, Any]] = {}
        self.response_context: dict[str, list[dict[str, Any]]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self.conversation_items: dict[str, list[dict[str, Any]]] = {}
        self.assistants: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, Any] = {}
        self.background: dict[str, Any] = {}
        self.reasoning_items: set[str] = set()
        self.usage_details: tuple[int, int] = (0, 0)
        """(cached prompt tokens, reasoning tokens) reported with each model response."""
        self.background_polls = 1
        """``GET``s a background response stays ``queued`` / ``in_progress`` by default."""

    # -- time and ids -----------------------------------------------------

    def now(self) -> float:
        """The stub's clock (real time plus :meth:`advance` offsets)."""
        return self._clock() + self._offset

    def now_int(self) -> int:
        """The stub's clock as whole seconds, as the API reports timestamps."""
        return int(self.now())

    def advance(self, seconds: float) -> None:
        """Move the stub's clock forward (e.g. past a run's ``expires_at``)."""
        with self.lock:
            self._offset += seconds

    def new_id(self, prefix: str) -> str:
        """A deterministic id such as ``call_stub_0003``."""
        with self.lock:
            n = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = n
        sep = "-" if prefix.endswith("cmpl") else "_"
        return f"{prefix}{sep}stub{n:04d}"

    # -- model turns ------------------------------------------------------

    def push_turns(self, turns: Iterable[StubTurn]) -> None:
        """Queue scripted turns."""
        with self.lock:
            for turn in turns:
                if not isinstance(turn, StubTurn):
                    raise TypeError(f"script() takes StubTurn values, got {type(turn).__name__}")
                self._script.append(turn)

    def pending(self) -> int:
        """Number of scripted turns not yet consumed."""
        with self.lock:
            return len(self._script)

    def clear_script(self) -> None:
        """Drop every scripted turn not yet consumed."""
        with self.lock:
            self._script.clear()

    def next_turn(
        self,
        items: list[ConvItem],
        tools: list[OfferedTool],
        output_schema: Mapping[str, Any] | None = None,
    ) -> StubTurn:
        """The next scripted turn, or the rule-based model's answer (a JSON object that
        fits ``output_schema`` when structured outputs were asked for)."""
        with self.lock:
            if self._script:
                return self._script.popleft()
        return default_turn(items, tools, output_schema)

    # -- auth, faults and records ----------------------------------------

    def check_auth(self, headers: Mapping[str, str]) -> None:
        """401 unless the bearer token is the stub's key (never echoes the key)."""
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self._api_key}":
            raise StubAPIError(
                401,
                "Incorrect API key provided.",
                type="invalid_request_error",
                code="invalid_api_key",
            )

    def add_fault(
        self,
        status: int,
        body: Any,
        headers: Mapping[str, str],
        path: str | re.Pattern[str],
        method: str | None,
        times: int,
    ) -> None:
        """Queue an HTTP error for matching requests."""
        with self.lock:
            self._faults.append(
                _Fault(
                    status,
                    body,
                    dict(headers),
                    compile_path_pattern(path),
                    method.upper() if method else None,
                    times,
                )
            )

    def take_fault(self, method: str, path: str) -> StubAPIError | None:
        """Consume the first injected fault matching this request, if any."""
        with self.lock:
            for fault in self._faults:
                if fault.remaining <= 0:
                    continue
                if fault.method and fault.method != method:
                    continue
                if not fault.pattern.search(path):
                    continue
                fault.remaining -= 1
                return StubAPIError(
                    fault.status, "injected fault", headers=fault.headers, body=fault.body
                )
        return None

    def record(self, rec: RecordedOpenAIRequest) -> None:
        """Keep a request record."""
        with self.lock:
            self._records.append(rec)

    def records(self) -> list[RecordedOpenAIRequest]:
        """A copy of every request record so far."""
        with self.lock:
            return list(self._records)

    @staticmethod
    def clean_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Lower-cased headers without credentials."""
        return {k.lower(): v for k, v in headers if k.lower() not in _SECRET_HEADERS}


def raise_for_turn(turn: StubTurn, api: str) -> None:
    """Turn a scripted HTTP error (or a run-only outcome outside a run) into an error reply."""
    if turn.http_status is not None:
        raise StubAPIError(
            turn.http_status, "scripted error", headers=turn.http_headers, body=turn.http_body
        )
    if turn.run_outcome == "failed" and api == "chat":
        message = str((turn.last_error or {}).get("message", "The server had an error."))
        raise StubAPIError(500, message, type="server_error", code="server_error")
    if turn.run_outcome == "cancelled" and api == "responses-background":
        return  # a background response can end cancelled, like a run
    if turn.run_outcome in ("expired", "cancelled", "incomplete") and api != "assistants":
        raise StubAPIError(
            500,
            f"The scripted turn {turn.run_outcome!r} only applies to Assistants runs.",
            type="server_error",
        )


def usage_numbers(turn: StubTurn, prompt: Any, completion: Any) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens): the turn's own numbers or the estimate."""
    if turn.usage is not None:
        return turn.usage.prompt_tokens, turn.usage.completion_tokens
    return estimate_tokens(prompt), estimate_tokens(completion)
