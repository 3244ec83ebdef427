"""A hostile Mixpeek API on loopback: raw sockets, one thread per connection.

:class:`HostileServer` speaks just enough HTTP/1.1 for the real ``mixpeek.Mixpeek`` client
(and whatever transport the tool set uses) to talk to it. ``GET /v1/retrievers/{id}``
answers a valid retriever definition for any id, so ``MixpeekTools.from_retrievers`` works;
``POST /v1/retrievers/{id}/execute`` runs whatever :class:`Behaviour` the test sets on
:attr:`HostileServer.execute`: silence, dripped headers or bodies, broken framing, bodies
that break the API contract, a reset.

Every connection is recorded with the moment the *server* saw it end and who ended it, so a
test can check that nothing a call started outlives it: a client that gives up must close
its socket, and the server sees the EOF (or reset) within one poll interval (50 ms).
"""

from __future__ import annotations

import contextlib
import copy
import http
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mixpeek import Mixpeek

API_KEY = "mxpk-7Qz9XvL2bR4tW8nY1cF6hJ3kM5pS0dGa"
"""The key clients of the hostile server use (long enough for 12-character fragments)."""
NAMESPACE = "ns_hostile"

REDIRECT_TARGET = "/v1/redirected"
"""A path answering a valid execute response to any method (the target of 3xx answers)."""

_POLL_S = 0.05
_THREAD_PREFIX = "hostile-"

DEFINITION: dict[str, Any] = {
    "retriever_id": "ret_hostile",
    "retriever_name": "product_search",
    "description": "Semantic search over the product catalogue",
    "collection_ids": ["col_products"],
    "collection_identifiers": ["col_products"],
    "fusion": None,
    "stages": [
        {
            "stage_name": "feature_search",
            "stage_type": "filter",
            "config": {
                "stage_id": "feature_search",
                "parameters": {
                    "searches": [
                        {
                            "feature_uri": "mixpeek://text_extractor@v1/e5_large",
                            "query": "{{INPUT.query}}",
                            "top_k": 50,
                        }
                    ],
                    "final_top_k": 10,
                },
            },
            "parameters": {"final_top_k": 10},
        }
    ],
    "input_schema": {
        "query": {"type": "text", "description": "What to search for", "required": True},
        "top_k": {"type": "integer", "description": "Max results", "default": 10},
        "min_score": {"type": "number", "description": "Lowest score kept"},
    },
    "version": 3,
    "created_at": "2026-01-05T12:00:00Z",
    "updated_at": "2026-01-06T09:30:00Z",
    "is_published": False,
}
"""The definition served for every retriever id (shaped like ``RetrieverModelOutput``)."""


def execute_body(documents: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A valid execute response (``ExecuteRetrieverResponse``) with these documents."""
    docs = (
        documents
        if documents is not None
        else [
            {
                "document_id": "doc_item_123",
                "collection_id": "col_products",
                "score": 0.8731,
                "metadata": {"title": "Red running shoe", "category": "shoes"},
            },
            {
                "document_id": "doc_item_456",
                "collection_id": "col_products",
                "score": 0.8012,
                "metadata": {"title": "Trail shoe", "category": "shoes"},
            },
        ]
    )
    body: dict[str, Any] = {
        "retriever_id": DEFINITION["retriever_id"],
        "execution_id": "exec_9f8e7d6c",
        "status": "completed",
        "documents": docs,
        "pagination": {
            "method": "cursor",
            "limit": 10,
            "returned": len(docs),
            "total": len(docs),
            "cursor": None,
            "has_next": False,
        },
        "warnings": [],
    }
    body.update(extra)
    return body


# -- what the server saw ------------------------------------------------------------------------


@dataclass
class Request:
    """One request the server read in full."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def is_execute(self) -> bool:
        return self.method == "POST" and self.path.endswith("/execute")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def query(self) -> Any:
        """``inputs.query`` of an execute request (``None`` when absent)."""
        try:
            inputs = (self.json() or {}).get("inputs") or {}
        except ValueError:
            return None
        return inputs.get("query") if isinstance(inputs, dict) else None


@dataclass
class Connection:
    """One accepted connection; ``closed_at`` is ``time.monotonic()`` when it ended."""

    number: int
    opened_at: float
    requests: list[Request] = field(default_factory=list)
    closed_at: float | None = None
    closed_by: Literal["client", "server"] | None = None
    answering: bool = False
    """A request was read and its answer is not finished (silent, dripping...)."""

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def held(self) -> bool:
        """Open with a request still unanswered (not idle between requests)."""
        return self.is_open and self.answering

    @property
    def carried_execute(self) -> bool:
        return any(r.is_execute for r in self.requests)

    def __repr__(self) -> str:
        paths = [f"{r.method} {r.path}" for r in self.requests]
        state = "held" if self.held else "open" if self.is_open else f"closed by {self.closed_by}"
        return f"Connection(#{self.number}, {state}, {paths})"


class ClientGone(Exception):
    """The client closed (or reset) the connection."""


class Stopping(Exception):
    """The server is shutting down."""


# -- one exchange -------------------------------------------------------------------------------


class Exchange:
    """The server side of one request: what a :class:`Behaviour` writes its answer with."""

    def __init__(self, server: HostileServer, sock: socket.socket, request: Request) -> None:
        self.server = server
        self.sock = sock
        self.request = request
        self.keep_alive = True
        """Whether the connection is read for another request afterwards."""

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone from exc

    def wait(self, seconds: float | None) -> None:
        """Send nothing for ``seconds`` (``None``: until the client leaves or the server
        stops); raises :class:`ClientGone` as soon as the client closes the connection."""
        end = None if seconds is None else time.monotonic() + seconds
        while True:
            if self.server.stopping.is_set():
                raise Stopping
            left = _POLL_S if end is None else min(_POLL_S, end - time.monotonic())
            if left <= 0:
                return
            _watch_for_eof(self.sock, left)

    def drip(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte every ``interval`` seconds."""
        for i in range(len(data)):
            self.wait(interval)
            self.send(data[i : i + 1])

    def hang_up(self) -> None:
        """Close from the server side (after a complete or a broken answer)."""
        self.keep_alive = False

    def reset(self) -> None:
        """Abort the connection with a TCP reset."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.keep_alive = False


Behaviour = Callable[[Exchange], None]
"""How the server answers one request."""


def _watch_for_eof(sock: socket.socket, timeout: float) -> None:
    readable, _, _ = select.select([sock], [], [], max(0.0, timeout))
    if not readable:
        return
    try:
        data = sock.recv(65536)
    except OSError as exc:
        raise ClientGone from exc
    if not data:
        raise ClientGone


def head(
    status: int,
    headers: Mapping[str, str] | None = None,
    *,
    length: int | None = None,
    chunked: bool = False,
    close: bool = False,
) -> bytes:
    """A status line and headers, ready to send."""
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if close:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode(body: Any) -> bytes:
    """``bytes`` as they are, ``str`` as UTF-8, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


# -- behaviours ---------------------------------------------------------------------------------


def respond(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = False,
) -> Behaviour:
    """Answer at once with ``body`` (JSON value, ``str`` or ``bytes``) and a Content-Length."""
    data = encode(body)

    def behave(ex: Exchange) -> None:
        ex.send(head(status, headers, length=len(data), close=close) + data)
        if close:
            ex.hang_up()

    return behave


def silent() -> Behaviour:
    """Read the request, then send nothing until the client leaves."""

    def behave(ex: Exchange) -> None:
        ex.wait(None)

    return behave


def drip_headers(interval: float = 0.2) -> Behaviour:
    """Send the status line and headers one byte every ``interval`` s (then the body)."""
    data = encode(execute_body())

    def behave(ex: Exchange) -> None:
        ex.drip(head(200, length=len(data)), interval)
        ex.send(data)

    return behave


def drip_body(interval: float = 0.2) -> Behaviour:
    """Headers at once (with Content-Length), then the body one byte every ``interval`` s."""
    data = encode(execute_body())

    def behave(ex: Exchange) -> None:
        ex.send(head(200, length=len(data)))
        ex.drip(data, interval)

    return behave


def drip_chunked(interval: float = 0.2) -> Behaviour:
    """Headers at once (chunked), then one one-byte chunk every ``interval`` s."""
    data = encode(execute_body())

    def behave(ex: Exchange) -> None:
        ex.send(head(200, chunked=True))
        for i in range(len(data)):
            ex.wait(interval)
            ex.send(b"1\r\n" + data[i : i + 1] + b"\r\n")
        ex.send(b"0\r\n\r\n")

    return behave


def raw(data: bytes) -> Behaviour:
    """Send exactly ``data`` as the whole answer, then close."""

    def behave(ex: Exchange) -> None:
        ex.send(data)
        ex.hang_up()

    return behave


def short_body(body: Any = None, missing: int = 500) -> Behaviour:
    """Declare ``missing`` more bytes than the body has, send the body, then close."""
    data = encode(execute_body() if body is None else body)

    def behave(ex: Exchange) -> None:
        ex.send(head(200, length=len(data) + missing) + data)
        ex.hang_up()

    return behave


def reset() -> Behaviour:
    """Read the request, then reset the connection without answering."""

    def behave(ex: Exchange) -> None:
        ex.reset()

    return behave


def by_query(choices: Mapping[str, Behaviour], default: Behaviour) -> Behaviour:
    """Pick the behaviour by the execute request's ``inputs.query``."""

    def behave(ex: Exchange) -> None:
        query = ex.request.query
        chosen = choices.get(query, default) if isinstance(query, str) else default
        chosen(ex)

    return behave


def after_requests(count: int, then: Behaviour, *, timeout: float = 5.0) -> Behaviour:
    """Wait until the server has received ``count`` execute requests, then run ``then``
    (so the other requests of a batch are known to be held at the server first)."""

    def behave(ex: Exchange) -> None:
        end = time.monotonic() + timeout
        while ex.server.execute_count() < count and time.monotonic() < end:
            ex.wait(_POLL_S)
        then(ex)

    return behave


# -- the server ---------------------------------------------------------------------------------


class HostileServer:
    """A misbehaving Mixpeek API on ``127.0.0.1``; use as a context manager.

    ``execute`` decides how execute requests are answered (a valid response by default);
    ``get_retriever`` how ``GET /v1/retrievers/{id}`` is (a valid definition, answered
    with ``Connection: close`` so the connection that fetched the definitions is never one
    the tool set's own transport could reuse).
    """

    def __init__(self, *, api_key: str = API_KEY, namespace: str = NAMESPACE) -> None:
        self.api_key = api_key
        self.namespace = namespace
        self.execute: Behaviour = respond(execute_body())
        self.get_retriever: Behaviour | None = None
        self.stopping = threading.Event()
        self._lock = threading.Condition()
        self._connections: list[Connection] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(_POLL_S)
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=_THREAD_PREFIX + "accept", daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, **kwargs: Any) -> Mixpeek:
        """A real ``mixpeek.Mixpeek`` client for this server."""
        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("namespace", self.namespace)
        kwargs.setdefault("base_url", self.base_url)
        return Mixpeek(**kwargs)

    # -- what happened ----------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return [r for c in self._connections for r in c.requests]

    def execute_count(self) -> int:
        """Execute requests received so far."""
        return sum(1 for r in self.requests if r.is_execute)

    def wait_for_executes(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` execute requests have been received."""
        with self._lock:
            return self._lock.wait_for(lambda: self.execute_count() >= count, timeout)

    def open_after(
        self, seconds: float = 1.0, *, idle_too: bool = False, executes_only: bool = True
    ) -> list[Connection]:
        """Connections still open after waiting up to ``seconds`` for them to close.

        By default only connections *held* on an unanswered execute count (a connection
        idle in a keep-alive pool after a complete answer is not a leftover of a call);
        ``idle_too`` counts every open one, ``executes_only=False`` those that never
        carried an execute as well.
        """

        def still_open() -> list[Connection]:
            return [
                c
                for c in self._connections
                if (c.is_open if idle_too else c.held) and (c.carried_execute or not executes_only)
            ]

        with self._lock:
            self._lock.wait_for(lambda: not still_open(), seconds)
            return still_open()

    def open_now(self, *, executes_only: bool = False) -> list[Connection]:
        with self._lock:
            return [
                c
                for c in self._connections
                if c.is_open and (c.carried_execute or not executes_only)
            ]

    # -- serving ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        number = 0
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            number += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(number=number, opened_at=time.monotonic())
            thread = threading.Thread(
                target=self._serve,
                args=(sock, conn),
                name=f"{_THREAD_PREFIX}conn-{number}",
                daemon=True,
            )
            with self._lock:
                self._connections.append(conn)
                self._sockets.append(sock)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, conn: Connection) -> None:
        closed_by: Literal["client", "server"] = "server"
        try:
            buffer = b""
            while True:
                request, buffer = self._read_request(sock, buffer)
                with self._lock:
                    conn.requests.append(request)
                    conn.answering = True
                    self._lock.notify_all()
                exchange = Exchange(self, sock, request)
                self._route(exchange)
                with self._lock:
                    conn.answering = False
                    self._lock.notify_all()
                if not exchange.keep_alive:
                    break
        except ClientGone:
            closed_by = "client"
        except Stopping:
            closed_by = "server"
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._lock:
                conn.closed_at = time.monotonic()
                conn.closed_by = closed_by
                self._lock.notify_all()

    def _read_request(self, sock: socket.socket, buffer: bytes) -> tuple[Request, bytes]:
        while b"\r\n\r\n" not in buffer:
            buffer += self._recv(sock)
        raw_head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, buffer = self._read_chunked(sock, buffer)
        else:
            length = int(headers.get("content-length") or 0)
            while len(buffer) < length:
                buffer += self._recv(sock)
            body, buffer = buffer[:length], buffer[length:]
        path = target.split("?", 1)[0]
        if path.startswith("http://"):
            path = "/" + path.split("/", 3)[3]
        request = Request(method, path, headers, body, time.monotonic())
        return request, buffer

    def _read_chunked(self, sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
        body = b""
        while True:
            while b"\r\n" not in buffer:
                buffer += self._recv(sock)
            size_line, buffer = buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buffer) < size + 2:
                buffer += self._recv(sock)
            body, buffer = body + buffer[:size], buffer[size + 2 :]
            if size == 0:
                return body, buffer

    def _recv(self, sock: socket.socket) -> bytes:
        while True:
            if self.stopping.is_set():
                raise Stopping
            readable, _, _ = select.select([sock], [], [], _POLL_S)
            if not readable:
                continue
            try:
                data = sock.recv(65536)
            except OSError as exc:
                raise ClientGone from exc
            if not data:
                raise ClientGone
            return data

    def _route(self, ex: Exchange) -> None:
        request = ex.request
        if request.method == "GET" and request.path.startswith("/v1/retrievers/"):
            if self.get_retriever is not None:
                self.get_retriever(ex)
                return
            rid = request.path.rsplit("/", 1)[-1]
            respond({**copy.deepcopy(DEFINITION), "retriever_id": rid}, close=True)(ex)
        elif request.is_execute:
            self.execute(ex)
        elif request.path == REDIRECT_TARGET:
            # Where redirects point: a clean result, so following one would show.
            respond(execute_body())(ex)
        else:
            respond({"detail": f"no route for {request.method} {request.path}"}, 404)(ex)


def is_server_thread(thread: threading.Thread) -> bool:
    """The hostile server's own threads."""
    return thread.name.startswith(_THREAD_PREFIX)


def other_threads() -> list[threading.Thread]:
    """Live threads other than the hostile server's."""
    return [t for t in threading.enumerate() if not is_server_thread(t)]


@contextlib.contextmanager
def serving(execute: Behaviour | None = None) -> Iterator[HostileServer]:
    """A started server whose executes run ``execute``."""
    with HostileServer() as server:
        if execute is not None:
            server.execute = execute
        yield server


# -- calling under a watchdog -------------------------------------------------------------------


@dataclass
class Timed:
    """What a watched call returned (or raised) and how long it took."""

    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


def call_within(limit: float, fn: Callable[[], Any]) -> Timed:
    """Run ``fn`` in a fresh thread and wait at most ``limit`` seconds for it.

    A call still blocked at ``limit`` fails the test at once (rather than holding the
    suite until the server gives up); the server's shutdown then unblocks it.
    """
    timed = Timed()

    def target() -> None:
        started = time.monotonic()
        try:
            timed.value = fn()
        except BaseException as exc:
            timed.error = exc
        finally:
            timed.elapsed = time.monotonic() - started

    thread = threading.Thread(target=target, name="watched-call", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise AssertionError(f"the call was still blocked {limit:g} s after it started")
    return timed
