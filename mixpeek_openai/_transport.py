"""Deadline-bounded sending of tool-call requests through the ``mixpeek`` client.

Why this module exists
----------------------
The ``mixpeek`` client (1.3.x) retries 429 and 503 responses itself, sleeping on each
``Retry-After`` for up to 180 seconds in total, on top of urllib3's own connection
retries. A tool call must answer the model within its deadline (20 s by default), and
exactly one layer must decide about retries (:mod:`mixpeek_openai.retries`), so those
inner waits must never run.

The choice
----------
The dispatcher does not send through the user's ``Mixpeek`` instance as is. Once per tool
set it builds a *sibling* ``mixpeek.Mixpeek`` from the user client's public attributes
(``api_key``, ``namespace``, ``base_url``, ``timeout``) and replaces the sibling's
``_http`` connection pool with a :class:`DeadlinePool`:

* urllib3 retries and redirects are disabled, so every connection retry is ours too;
* each attempt's connect and read timeouts are ``min(client timeout, time left before
  the call's deadline)``, and reading the body stops when the deadline passes, so one
  attempt can overrun the deadline by at most a single socket read;
* a 429 or 503 (and any other status the retry policy retries) is raised out of the pool
  as :class:`StatusError`, carrying status, headers and body, *before* the ``mixpeek``
  client's loop can sleep on it; the retry layer then decides, honouring ``Retry-After``
  within the deadline;
* response bodies larger than ``max_response_bytes`` are refused (:class:`ResponseTooLarge`).

Requests are still made through the client's public methods (``retrievers.execute``,
``retrievers.get``, ``retrievers.list``, ``collections.get``, ``collections.list``), so
its URL building, headers and error parsing (``MixpeekAPIError``) stay in charge; the few
endpoints it has no method for go through its ``_request(method, path, body=...)``. The
deadline reaches the pool through a :class:`contextvars.ContextVar` set by the worker
thread that runs the call, so one sibling client is safely shared by parallel calls.

The user's own client is never modified, and its attributes are read once: change them
afterwards and build a new tool set.

Fallback
--------
Replacing ``_http`` relies on an attribute the ``mixpeek`` package does not document. If a
release drops it (or the client is not a plain ``mixpeek.Mixpeek``), the dispatcher falls
back to calling the user's client in a worker thread and waiting no longer than the
deadline (a warning says so for a ``Mixpeek`` without ``_http``). The model still gets its
answer in time, but an abandoned request may keep running in the background until the
client's own retries give up.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import urllib3

from mixpeek_openai._request import MixpeekRequest

if TYPE_CHECKING:
    from mixpeek_openai.retries import Deadline

__all__ = [
    "DeadlinePool",
    "DeadlineReached",
    "ResponseTooLarge",
    "Sender",
    "StatusError",
    "deadline_scope",
]

_log = logging.getLogger("mixpeek_openai.transport")

_current_deadline: ContextVar[Deadline | None] = ContextVar("mixpeek_openai_deadline", default=None)

_CONNECT_TIMEOUT_S = 5.0  # the mixpeek client's own connect timeout
_CHUNK = 64 * 1024


class DeadlineReached(Exception):
    """The call's deadline passed before or during an attempt."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class StatusError(Exception):
    """An HTTP status the retry layer decides on, raised out of the pool before the
    ``mixpeek`` client's own retry loop can sleep on it. ``str()`` shows only the status."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        # Only what the retry decision needs; never request headers (Authorization).
        self.headers = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
        self.body = body


class ResponseTooLarge(Exception):
    """The response body was larger than the configured limit."""


@dataclass(frozen=True)
class _Response:
    """The part of a urllib3 response the ``mixpeek`` client reads."""

    status: int
    data: bytes
    headers: Mapping[str, str]


@contextlib.contextmanager
def deadline_scope(deadline: Deadline | None) -> Iterator[None]:
    """Make ``deadline`` bound every request sent by this thread/task inside the block."""
    token = _current_deadline.set(deadline)
    try:
        yield
    finally:
        _current_deadline.reset(token)


class DeadlinePool:
    """Stands in for the ``mixpeek`` client's ``urllib3.PoolManager`` (its ``_http``).

    Only ``request(method, url, body=, headers=)`` is used by the client. See the module
    docstring for what it does differently.
    """

    def __init__(
        self,
        *,
        read_timeout: float,
        max_response_bytes: int,
        intercept_statuses: frozenset[int],
        maxsize: int = 10,
        connect_timeout: float = _CONNECT_TIMEOUT_S,
    ) -> None:
        """Create the pool; ``maxsize`` connections are kept per host for parallel calls."""
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._intercept = intercept_statuses | {429, 503}
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=max(1, maxsize), retries=False)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **_ignored: Any,
    ) -> _Response:
        """Send one request within the current deadline; see the module docstring."""
        deadline = _current_deadline.get()
        connect, read = self._connect_timeout, self._read_timeout
        if deadline is not None:
            remaining = deadline.remaining()
            if remaining <= 0.0:
                raise DeadlineReached("the call's deadline passed before sending", sent=False)
            connect, read = min(connect, remaining), min(read, remaining)
        resp = self._pool.request(
            method,
            url,
            body=body,
            headers=dict(headers or {}),
            timeout=urllib3.Timeout(connect=connect, read=read),
            retries=False,
            redirect=False,
            preload_content=False,
        )
        try:
            data = self._read_body(resp, deadline)
        except BaseException:
            # A half-read connection cannot be reused.
            resp.close()
            raise
        finally:
            resp.release_conn()
        if resp.status in self._intercept:
            raise StatusError(resp.status, resp.headers, data)
        return _Response(status=resp.status, data=data, headers=resp.headers)

    def _read_body(self, resp: urllib3.BaseHTTPResponse, deadline: Deadline | None) -> bytes:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self._max_response_bytes:
            raise ResponseTooLarge(
                f"the response ({int(length)} bytes) is larger than the "
                f"{self._max_response_bytes}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self._max_response_bytes:
                raise ResponseTooLarge(
                    f"the response is larger than the {self._max_response_bytes}-byte limit"
                )
            chunks.append(chunk)
            if deadline is not None and deadline.expired():
                raise DeadlineReached("the call's deadline passed while reading", sent=True)
        return b"".join(chunks)

    def clear(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()


# -- sending ----------------------------------------------------------------------------

_EXECUTE = re.compile(r"^/retrievers/([^/]+)/execute$")
_GET_RETRIEVER = re.compile(r"^/retrievers/([^/]+)$")
_GET_COLLECTION = re.compile(r"^/collections/([^/]+)$")


def _call_client(client: Any, request: MixpeekRequest) -> Any:
    """Send ``request`` through the client's public methods where it has one."""
    method, path = request.method, request.path
    body = dict(request.body) if request.body is not None else None
    if method == "POST" and (m := _EXECUTE.match(path)) and body is not None:
        inputs = body.pop("inputs", {})
        return client.retrievers.execute(m.group(1), inputs=inputs, **body)
    if method == "GET" and body is None:
        if path != "/retrievers/list" and (m := _GET_RETRIEVER.match(path)):
            return client.retrievers.get(m.group(1))
        if path != "/collections/list" and (m := _GET_COLLECTION.match(path)):
            return client.collections.get(m.group(1))
    if method == "POST" and body is None:
        if path == "/retrievers/list":
            return client.retrievers.list()
        if path == "/collections/list":
            return client.collections.list()
    return client._request(method, path, body=body)


def _call_in_thread(client: Any, request: MixpeekRequest, deadline: Deadline) -> Any:
    """Fallback: run the request in a daemon thread and wait no longer than the deadline."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = _call_client(client, request)
        except BaseException as exc:  # handed over to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    remaining = deadline.remaining()
    if remaining <= 0.0:
        raise DeadlineReached("the call's deadline passed before sending", sent=False)
    threading.Thread(target=run, name="mixpeek-openai-send", daemon=True).start()
    if not done.wait(remaining):
        raise DeadlineReached("no answer before the call's deadline", sent=True)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _overrides_request(client: Any) -> bool:
    from mixpeek import Mixpeek

    return getattr(type(client), "_request", None) is not Mixpeek._request


class Sender:
    """Sends :class:`MixpeekRequest` objects for one tool set, bounded by a deadline.

    ``mode`` is ``"deadline_transport"`` (a sibling client on a :class:`DeadlinePool`) or
    ``"bounded_wait"`` (the fallback described in the module docstring).
    """

    def __init__(
        self,
        client: Any,
        *,
        max_connections: int,
        max_response_bytes: int,
        intercept_statuses: frozenset[int],
    ) -> None:
        """Build the sibling client for ``client`` (or choose the fallback)."""
        self._client = client
        self._sibling: Any = None
        self._pool: DeadlinePool | None = None
        self.mode: Literal["deadline_transport", "bounded_wait"] = "bounded_wait"
        try:
            from mixpeek import Mixpeek
        except ImportError:  # pragma: no cover - mixpeek is a dependency
            return
        if not isinstance(client, Mixpeek) or _overrides_request(client):
            _log.debug(
                "client is not a plain mixpeek.Mixpeek; sending through it with a bounded wait"
            )
            return
        sibling = Mixpeek(
            api_key=client.api_key,
            namespace=client.namespace,
            base_url=client.base_url,
            timeout=client.timeout,
        )
        original = getattr(sibling, "_http", None)
        if not isinstance(original, urllib3.PoolManager):
            warnings.warn(
                "This mixpeek release has no replaceable connection pool, so its own "
                "429/503 retries cannot be switched off: tool calls still answer the model "
                "within their deadline, but an abandoned request may keep running in the "
                "background.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        original.clear()
        self._pool = DeadlinePool(
            read_timeout=float(client.timeout),
            max_response_bytes=max_response_bytes,
            intercept_statuses=intercept_statuses,
            maxsize=max_connections,
        )
        # The attribute is typed as urllib3.PoolManager; the pool stands in for it.
        sibling_any: Any = sibling
        sibling_any._http = self._pool
        self._sibling = sibling
        self.mode = "deadline_transport"

    @property
    def api_key(self) -> str | None:
        """The API key of the client (for scrubbing it from anything emitted)."""
        key = getattr(self._client, "api_key", None)
        return key if isinstance(key, str) and key else None

    def send(self, request: MixpeekRequest, deadline: Deadline) -> Any:
        """Send one attempt of ``request``; raises on failure (classified by the retry layer)."""
        if self._sibling is not None:
            with deadline_scope(deadline):
                return _call_client(self._sibling, request)
        return _call_in_thread(self._client, request, deadline)

    def close(self) -> None:
        """Release pooled connections."""
        if self._pool is not None:
            self._pool.clear()
