"""``StubOpenAI``: an OpenAI API behind an ``httpx2.MockTransport`` for the real openai clients.

>>> stub = StubOpenAI()
>>> stub.script(stub.tool_call("search", {"query": "cats"}), stub.text("Found cats."))
>>> client = stub.client()            # openai.OpenAI talking to the stub, no network
>>> aclient = stub.async_client()     # openai.AsyncOpenAI, same state
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import openai

from . import _stub_assistants as _asst
from . import _stub_model as _model
from ._openapi import OpenAPIRequestChecker, SpecViolation
from ._stub_chat import chat_completions
from ._stub_core import (
    Incoming,
    RecordedOpenAIRequest,
    Reply,
    StubCore,
    compile_path_pattern,
)
from ._stub_model import StubAPIError, StubToolCall, StubTurn, StubUsage
from ._stub_responses import (
    add_conversation_items,
    cancel_response,
    create_conversation,
    create_response,
    delete_conversation,
    get_conversation,
    get_response,
    list_conversation_items,
)

__all__ = ["RecordedOpenAIRequest", "StubOpenAI", "StubToolCall", "StubTurn", "StubUsage"]

_Handler = Callable[[StubCore, Incoming], Reply]

_ID = r"(?P<{}>[^/]+)"
_T = _ID.format("thread_id")
_R = _ID.format("run_id")
_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = [
    (m, re.compile(f"^/v1{p}$"), h)
    for m, p, h in [
        ("POST", "/chat/completions", chat_completions),
        ("POST", "/responses", create_response),
        ("GET", "/responses/" + _ID.format("response_id"), get_response),
        ("POST", "/responses/" + _ID.format("response_id") + "/cancel", cancel_response),
        ("POST", "/conversations", create_conversation),
        ("GET", "/conversations/" + _ID.format("conversation_id"), get_conversation),
        ("DELETE", "/conversations/" + _ID.format("conversation_id"), delete_conversation),
        (
            "GET",
            "/conversations/" + _ID.format("conversation_id") + "/items",
            list_conversation_items,
        ),
        (
            "POST",
            "/conversations/" + _ID.format("conversation_id") + "/items",
            add_conversation_items,
        ),
        ("POST", "/assistants", _asst.create_assistant),
        ("GET", "/assistants", _asst.list_assistants),
        ("GET", "/assistants/" + _ID.format("assistant_id"), _asst.get_assistant),
        ("POST", "/assistants/" + _ID.format("assistant_id"), _asst.update_assistant),
        ("DELETE", "/assistants/" + _ID.format("assistant_id"), _asst.delete_assistant),
        ("POST", "/threads", _asst.create_thread),
        ("POST", "/threads/runs", _asst.create_thread_and_run),
        ("GET", f"/threads/{_T}", _asst.get_thread),
        ("DELETE", f"/threads/{_T}", _asst.delete_thread),
        ("POST", f"/threads/{_T}/messages", _asst.create_message),
        ("GET", f"/threads/{_T}/messages", _asst.list_messages),
        ("GET", f"/threads/{_T}/messages/" + _ID.format("message_id"), _asst.get_message),
        ("POST", f"/threads/{_T}/runs", _asst.create_run),
        ("GET", f"/threads/{_T}/runs", _asst.list_runs),
        ("GET", f"/threads/{_T}/runs/{_R}", _asst.get_run),
        ("GET", f"/threads/{_T}/runs/{_R}/steps", _asst.list_steps),
        ("POST", f"/threads/{_T}/runs/{_R}/submit_tool_outputs", _asst.submit_tool_outputs),
        ("POST", f"/threads/{_T}/runs/{_R}/cancel", _asst.cancel_run),
    ]
]

_RUN_GET = re.compile(r"^/v1/threads/[^/]+/runs/(?P<run_id>[^/]+)$")


class StubOpenAI:
    """An in-memory OpenAI API that real ``openai.OpenAI`` / ``AsyncOpenAI`` clients talk to.

    Serves Chat Completions (plain and streamed), Responses (with ``previous_response_id``
    and Conversations), and the Assistants API (assistants, threads, messages, runs with
    the full status machine, streamed runs), enforcing the API's tool-call rules with
    OpenAI's 400 error shape. What the "model" says comes from :meth:`script` turns, or
    from a deterministic rule-based model: it calls the first offered tool with the
    user's words, then summarises the tool output.

    Args:
        api_key: the key clients must send (``Bearer``); never recorded or shown.
        base_url: the base URL the clients use.
        poll_after_ms: value of the ``openai-poll-after-ms`` header on run responses, which
            the openai polling helpers honour (``None`` leaves the header out).
        in_progress_polls: extra ``GET``s a run stays ``in_progress`` before each model
            step (a turn's own ``polls`` overrides it).
        run_ttl_s: seconds from run creation to ``expires_at``.
        background_polls: ``GET``s a ``background=True`` response stays ``queued`` /
            ``in_progress`` before its final status (a turn's own ``polls`` overrides it).
        clock: time source in seconds (default ``time.time``); see :meth:`advance_clock`.
        spec: an :class:`OpenAPIRequestChecker` (or the path of OpenAI's ``openapi.json``)
            that every request is checked against; off-spec requests are listed in
            :attr:`spec_violations`. Defaults to the one set with :meth:`use_spec`.
    """

    _default_spec: ClassVar[OpenAPIRequestChecker | None] = None

    text = staticmethod(_model.text)
    truncated = staticmethod(_model.truncated)
    content_filtered = staticmethod(_model.content_filtered)
    call = staticmethod(_model.call)
    tool_calls = staticmethod(_model.tool_calls)
    tool_call = staticmethod(_model.tool_call)
    error = staticmethod(_model.error)
    run_failed = staticmethod(_model.run_failed)
    run_expired = staticmethod(_model.run_expired)
    run_incomplete = staticmethod(_model.run_incomplete)
    run_cancelled = staticmethod(_model.run_cancelled)

    def __init__(
        self,
        *,
        api_key: str = "sk-stub",
        base_url: str = "https://stub.openai.local/v1",
        poll_after_ms: int | None = 1,
        in_progress_polls: int = 0,
        run_ttl_s: float = 600.0,
        clock: Callable[[], float] | None = None,
        spec: OpenAPIRequestChecker | str | Path | None = None,
        background_polls: int = 1,
    ) -> None:
        self._api_key = api_key
        if isinstance(spec, (str, Path)):
            spec = OpenAPIRequestChecker.from_path(spec)
        self._spec = spec if spec is not None else StubOpenAI._default_spec
        self._violations: list[SpecViolation] = []
        self.base_url = base_url
        self._core = StubCore(
            api_key=api_key,
            poll_after_ms=poll_after_ms,
            run_polls=in_progress_polls,
            run_ttl_s=run_ttl_s,
            clock=clock,
        )
        self._core.background_polls = max(0, background_polls)
        self.transport = httpx2.MockTransport(self._handle)
        """The mock transport (works for both ``httpx2.Client`` and ``httpx2.AsyncClient``)."""

    def __repr__(self) -> str:
        return (
            f"StubOpenAI(base_url={self.base_url!r}, requests={len(self._core.records())}, "
            f"pending_turns={self._core.pending()})"
        )

    # -- the API description -----------------------------------------------

    @classmethod
    def use_spec(
        cls, spec: OpenAPIRequestChecker | str | Path | None
    ) -> OpenAPIRequestChecker | None:
        """Check the requests of every stub created from now on against ``spec``.

        Returns the checker used before (pass it back to restore it). The project's own
        test suite does this for every test, with OpenAI's official description.
        """
        previous = cls._default_spec
        if isinstance(spec, (str, Path)):
            spec = OpenAPIRequestChecker.from_path(spec)
        cls._default_spec = spec
        return previous

    @property
    def spec_violations(self) -> list[SpecViolation]:
        """Requests to this stub that did not match the API description (empty without one)."""
        with self._core.lock:
            return list(self._violations)

    # -- clients ----------------------------------------------------------

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """A real ``openai.OpenAI`` bound to this stub (``max_retries=0`` unless given)."""
        options: dict[str, Any] = {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "max_retries": 0,
        }
        options.update(kwargs)
        options.setdefault("http_client", httpx2.Client(transport=self.transport))
        return openai.OpenAI(**options)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """A real ``openai.AsyncOpenAI`` bound to this stub (``max_retries=0`` unless given)."""
        options: dict[str, Any] = {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "max_retries": 0,
        }
        options.update(kwargs)
        options.setdefault("http_client", httpx2.AsyncClient(transport=self.transport))
        return openai.AsyncOpenAI(**options)

    # -- scripting --------------------------------------------------------

    def script(self, *turns: StubTurn | Iterable[StubTurn]) -> StubOpenAI:
        """Queue what the model answers next, in order (turns or lists of turns).

        Each model request (a chat or responses create, or a run's model step) consumes one
        turn; when the queue is empty the rule-based model answers. Returns the stub.
        """
        flat: list[StubTurn] = []
        for turn in turns:
            if isinstance(turn, StubTurn):
                flat.append(turn)
            else:
                flat.extend(turn)
        self._core.push_turns(flat)
        return self

    @property
    def pending_turns(self) -> int:
        """Scripted turns not consumed yet."""
        return self._core.pending()

    def clear_script(self) -> None:
        """Drop every scripted turn not consumed yet."""
        self._core.clear_script()

    def inject_error(
        self,
        status: int,
        body: Any = None,
        *,
        path: str | re.Pattern[str] = "**",
        method: str | None = None,
        times: int = 1,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after_ms: int | None = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method``/``path`` with an HTTP error.

        ``path`` is a glob over the URL path (``*`` = one segment, ``**`` = anything) or a
        compiled regex, e.g. ``"/v1/threads/*/runs/*"``. Checked before the endpoint runs,
        so no state changes. ``retry-after-ms`` keeps the openai client's retries instant.
        """
        turn = _model.error(
            status, body, message=message, headers=headers, retry_after_ms=retry_after_ms
        )
        self._core.add_fault(status, turn.http_body, turn.http_headers, path, method, max(0, times))

    def report_usage_details(self, *, cached_tokens: int = 0, reasoning_tokens: int = 0) -> None:
        """Report these cached-prompt and reasoning token counts with every model response
        from now on (Chat and Responses; capped at the prompt / completion counts)."""
        with self._core.lock:
            self._core.usage_details = (max(0, cached_tokens), max(0, reasoning_tokens))

    # -- clock and runs ---------------------------------------------------

    def advance_clock(self, seconds: float) -> None:
        """Move the stub's clock forward; active runs past ``expires_at`` become ``expired``."""
        self._core.advance(seconds)

    def expire_run(self, run_id: str) -> None:
        """Expire a run now (e.g. while it waits in ``requires_action``)."""
        with self._core.lock:
            run = self._run_state(run_id)
            if run.status in _asst.ACTIVE:
                run.data["expires_at"] = int(self._core.now()) - 1
                _asst.refresh(self._core, run)

    def run(self, run_id: str) -> dict[str, Any]:
        """A snapshot of a run's JSON (without advancing it)."""
        with self._core.lock:
            run = self._run_state(run_id)
            _asst.refresh(self._core, run)
            return json.loads(json.dumps(run.data))  # type: ignore[no-any-return]

    def thread_messages(self, thread_id: str) -> list[dict[str, Any]]:
        """A snapshot of a thread's messages, oldest first."""
        with self._core.lock:
            return json.loads(json.dumps(self._core.messages.get(thread_id, [])))  # type: ignore[no-any-return]

    def conversation_items(self, conversation_id: str) -> list[dict[str, Any]]:
        """A snapshot of a conversation's items, oldest first."""
        with self._core.lock:
            items = self._core.conversation_items.get(conversation_id, [])
            return json.loads(json.dumps(items))  # type: ignore[no-any-return]

    def _run_state(self, run_id: str) -> _asst.RunState:
        run = self._core.runs.get(run_id)
        if not isinstance(run, _asst.RunState):
            raise KeyError(f"no run {run_id!r}")
        return run

    # -- records ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedOpenAIRequest]:
        """Every request received so far, in order (no credentials)."""
        return self._core.records()

    def requests_to(
        self, pattern: str | re.Pattern[str], method: str | None = None
    ) -> list[RecordedOpenAIRequest]:
        """Requests whose path matches ``pattern`` (glob: ``*`` one segment, ``**`` any)."""
        rx = compile_path_pattern(pattern)
        want = method.upper() if method else None
        return [
            r
            for r in self._core.records()
            if rx.search(r.path) and (want is None or r.method == want)
        ]

    def poll_count(self, run_id: str | None = None) -> int:
        """Number of ``GET /v1/threads/{t}/runs/{r}`` requests (for one run, or all)."""
        count = 0
        for r in self._core.records():
            match = _RUN_GET.match(r.path)
            if r.method == "GET" and match and (run_id is None or match["run_id"] == run_id):
                count += 1
        return count

    # -- transport handler ------------------------------------------------

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        core = self._core
        method = request.method.upper()
        path = request.url.path
        params = dict(request.url.params)
        raw = request.content
        body: Any = None
        with core.lock:
            try:
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError as exc:
                        body = raw.decode("utf-8", "replace")
                        raise StubAPIError(
                            400, "We could not parse the JSON body of your request."
                        ) from exc
                if self._spec is not None:
                    problems = self._spec.check(method, path, body)
                    if problems:
                        self._violations.append(SpecViolation(method, path, body, problems))
                core.check_auth(request.headers)
                fault = core.take_fault(method, path)
                if fault is not None:
                    raise fault
                reply = self._route(method, path, params, body)
            except StubAPIError as exc:
                reply = Reply(exc.body, exc.status, headers=exc.headers)
            core.record(
                RecordedOpenAIRequest(
                    method=method,
                    path=path,
                    body=body,
                    headers=core.clean_headers(request.headers.items()),
                    query=params,
                    status=reply.status,
                )
            )
            headers = {"x-request-id": core.new_id("req"), **reply.headers}
        if reply.sse is not None:
            headers["content-type"] = "text/event-stream; charset=utf-8"
            return httpx2.Response(reply.status, content=reply.sse, headers=headers)
        return httpx2.Response(reply.status, json=reply.body, headers=headers)

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> Reply:
        allowed = False
        for route_method, rx, handler in _ROUTES:
            match = rx.match(path)
            if not match:
                continue
            allowed = True
            if route_method == method:
                return handler(self._core, Incoming(method, path, params, body, match.groupdict()))
        raise StubAPIError(
            405 if allowed else 404,
            f"Invalid URL ({method} {path})",
            type="invalid_request_error",
        )
