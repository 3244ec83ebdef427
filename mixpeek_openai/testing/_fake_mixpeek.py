"""FakeMixpeek: a Mixpeek API on loopback for tests, demos and benchmarks.

A real HTTP server (stdlib ``http.server``) on ``127.0.0.1`` serving a sample namespace, so
the real ``mixpeek.Mixpeek`` client can talk to it through ``base_url``::

    with FakeMixpeek() as fake:
        client = fake.client()
        client.retrievers.execute("ret_product_demos", inputs={"query": "sso setup"})
        fake.inject("execute", Fault.status(503, retry_after=0))
        assert fake.requests[-1].endpoint == "execute"

It validates requests against the ``mixpeek`` package's generated models, injects faults
on demand and records every request (without secrets).
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import io
import json
import select
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic_core

from ._contract import ContractViolation, error_body, validate_response
from ._fake_api import ENDPOINTS, FakeApi, Route, route
from ._fake_mixpeek_data import load_sample_namespace
from ._faults import Fault

__all__ = ["DEFAULT_API_KEY", "DEFAULT_NAMESPACE", "ENDPOINTS", "FakeMixpeek", "RecordedRequest"]

#: The API key a :class:`FakeMixpeek` accepts unless told otherwise.
DEFAULT_API_KEY = "mxp-fake-key"
#: The namespace a :class:`FakeMixpeek` serves unless told otherwise.
DEFAULT_NAMESPACE = "ns_demo"

_REDACTED = "REDACTED"
_SECRET_HEADER_HINTS = ("authorization", "api-key", "apikey", "token", "secret", "cookie")
_POLL_S = 0.02


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    ``headers`` never hold secrets (``Authorization`` and similar are ``"REDACTED"``).
    ``body`` is the parsed JSON body (``None`` when empty or not JSON). ``started_at`` and
    ``finished_at`` are ``time.monotonic()`` readings; ``finished_at`` and ``status`` are
    ``None`` while the request is in flight, and ``status`` stays ``None`` when no response
    was sent (a reset or hang fault). ``fault`` names the injected fault kind, if any.
    """

    method: str
    path: str
    endpoint: str
    headers: Mapping[str, str]
    body: Any
    started_at: float
    finished_at: float | None = None
    status: int | None = None
    query: Mapping[str, tuple[str, ...]] | None = None
    params: Mapping[str, str] | None = None
    fault: str | None = None

    @property
    def in_flight(self) -> bool:
        """Whether the request had not finished when this record was taken."""
        return self.finished_at is None

    @property
    def retriever_id(self) -> str | None:
        """The retriever id or name in the path, for retriever endpoints."""
        return (self.params or {}).get("retriever_id")


class _Dropped(Exception):
    """The connection was dropped on purpose; no response follows."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 makes a burst of parallel clients wait for SYN retries.
    request_queue_size = 128

    def __init__(self, fake: FakeMixpeek, address: tuple[str, int]) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection and register it before its handler thread starts.

        While the accept is under way the fake counts as busy, so
        :meth:`FakeMixpeek.wait_until_idle` cannot miss a connection between the
        listening socket and its handler.
        """
        fake = self.fake
        with fake._lock:
            fake._accepting += 1
        try:
            conn, address = super().get_request()
            with fake._lock:
                fake._connections.add(conn)
        finally:
            with fake._lock:
                fake._accepting -= 1
                fake._lock.notify_all()
        return conn, address


class _ArrivalReader(io.RawIOBase):
    """A handler's socket as a raw stream that reports bytes before it takes them.

    The fake marks the connection busy while the bytes are still in the kernel's buffer
    (peeked, not read), so "nothing readable and nobody busy" means the server really has
    nothing left to read: a request written just before its client gave up is still
    recorded before :meth:`FakeMixpeek.wait_until_idle` returns.
    """

    def __init__(self, sock: socket.socket, fake: FakeMixpeek) -> None:
        self._sock = sock
        self._fake = fake

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.recv(1, socket.MSG_PEEK)  # blocks until bytes (or EOF) arrive
        self._fake._connection_busy(self._sock)
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "FakeMixpeek/1.0"
    sys_version = ""
    record: RecordedRequest | None = None

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_ArrivalReader(self.connection, self.server.fake))
        self.server.fake._connection_opened(self.connection)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        finally:
            self.server.fake._connection_settled(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: request lines are recorded in :attr:`FakeMixpeek.requests` instead."""

    def do_GET(self) -> None:
        """Serve a GET request."""
        self.server.fake._serve(self)

    def do_POST(self) -> None:
        """Serve a POST request."""
        self.server.fake._serve(self)

    def do_PUT(self) -> None:
        """Serve a PUT request (no endpoint accepts it: 404/405)."""
        self.server.fake._serve(self)

    def do_PATCH(self) -> None:
        """Serve a PATCH request (no endpoint accepts it: 404/405)."""
        self.server.fake._serve(self)

    def do_DELETE(self) -> None:
        """Serve a DELETE request (no endpoint accepts it: 404/405)."""
        self.server.fake._serve(self)


class _FaultQueue:
    def __init__(self) -> None:
        self.items: deque[list[Any]] = deque()  # [fault, remaining or None]

    def pop(self) -> Fault | None:
        if not self.items:
            return None
        entry = self.items[0]
        fault: Fault = entry[0]
        if entry[1] is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                self.items.popleft()
        return fault


class FakeMixpeek:
    """A Mixpeek API on ``127.0.0.1`` (free port) serving a sample namespace.

    Use it as a context manager (``with FakeMixpeek() as fake: ...``) or call
    :meth:`start` and :meth:`close`. ``fake.client()`` gives a real ``mixpeek.Mixpeek``
    client pointed at it.

    Served endpoints (names as used by :meth:`inject`, :meth:`set_latency` and
    :attr:`RecordedRequest.endpoint`): ``get_retriever`` (``GET /v1/retrievers/{id or
    name}``), ``list_retrievers`` (``POST /v1/retrievers/list``), ``execute``,
    ``execute_batch`` (<= 16 queries), ``explain`` (``POST /v1/retrievers/{id}/execute``,
    ``.../execute/batch``, ``.../execute/explain``), ``list_collections`` /
    ``get_collection``, ``list_taxonomies`` / ``get_taxonomy``, ``list_clusters`` /
    ``get_cluster``, ``list_objects`` / ``get_object`` (``/v1/buckets/{bucket}/objects``),
    ``list_documents`` / ``get_document`` (``/v1/collections/{id}/documents``). Anything
    else is ``unknown`` and answers 404 (405 for a known path with another method) in the
    API's error shape.

    Checks, in order: ``Authorization: Bearer <api_key>`` (401), ``X-Namespace`` (400 when
    missing, 403 when another namespace), the route (404/405), the JSON body against the
    generated ``mixpeek.models`` request model, undeclared keys included (422), top-level
    ``filters`` and the retriever's ``input_schema`` for ``inputs`` (422).

    Args:
        api_key: The key the fake accepts. Never stored in records, reprs or errors.
        namespace: The namespace id the fake serves.
        host: Interface to bind; loopback by default.
        port: Port to bind; 0 picks a free one.
        validate_responses: Also check every successful response body against the
            generated response models before sending it (a contract breach becomes a
            500 ``ContractViolation`` error). Off by default because it costs time.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validate_responses: bool = False,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._api_key = api_key
        self.namespace = namespace
        self._host = host
        self._port = port
        self.validate_responses = validate_responses
        self._api = FakeApi(load_sample_namespace(), namespace)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._records: list[RecordedRequest] = []
        self._faults: dict[str, _FaultQueue] = {}
        self._latency: dict[str, float] = {}
        self._paused: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()
        self._accepting = 0
        self._handler_threads: set[threading.Thread] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> FakeMixpeek:
        """Start serving in a background thread (idempotent); returns ``self``."""
        if self._server is not None:
            return self
        if self._stop.is_set():
            raise RuntimeError("A closed FakeMixpeek cannot be restarted; create a new one")
        self._server = _Server(self, (self._host, self._port))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeMixpeek:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and wait for every server thread to end.

        In-flight delays and hangs end at once; open connections are shut down.
        """
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handler_threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout=5.0)
        server.server_close()
        thread.join(timeout=5.0)
        self._server = None

    def __enter__(self) -> FakeMixpeek:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"FakeMixpeek(base_url={self.base_url!r}, namespace={self.namespace!r}, {state})"

    # --- addresses and clients -----------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The API key the fake accepts (pass it to clients; it is never recorded)."""
        return self._api_key

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start`)."""
        return self._server.server_address[1] if self._server is not None else 0

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    def client(self, **kwargs: Any) -> Any:
        """A real ``mixpeek.Mixpeek`` client for this fake.

        ``api_key``, ``namespace`` and ``base_url`` default to the fake's; other keyword
        arguments (e.g. ``timeout``) go to ``Mixpeek``.
        """
        from mixpeek import Mixpeek

        kwargs.setdefault("api_key", self._api_key)
        kwargs.setdefault("namespace", self.namespace)
        kwargs.setdefault("base_url", self.base_url)
        return Mixpeek(**kwargs)

    # --- sample namespace -----------------------------------------------------------

    @property
    def retriever_ids(self) -> tuple[str, ...]:
        """Ids of the namespace's retrievers, in listing order."""
        return tuple(self._api.data.retrievers)

    def retriever(self, retriever_id: str) -> dict[str, Any]:
        """A copy of a retriever definition (by id or name), as ``GET`` returns it."""
        found = self._api.data.find_retriever(retriever_id)
        if found is None:
            raise KeyError(retriever_id)
        return copy.deepcopy(found)

    @property
    def documents(self) -> list[dict[str, Any]]:
        """Copies of the namespace's documents (as stored, before response shaping)."""
        return copy.deepcopy(self._api.data.documents)

    @property
    def collection_ids(self) -> tuple[str, ...]:
        """Ids of the namespace's collections."""
        return tuple(c["collection_id"] for c in self._api.data.collections)

    def add_retriever(self, definition: Mapping[str, Any]) -> str:
        """Add (or replace) a retriever; returns its id.

        ``definition`` is a ``GET /v1/retrievers/{id}`` body; it must fit the generated
        ``RetrieverModelOutput`` model (else :class:`ContractViolation`). A missing
        ``retriever_id`` becomes ``ret_<retriever_name>``; missing ``stages``,
        ``collection_ids``/``collection_identifiers`` and ``fusion`` get defaults that
        search every collection. Free-text and media inputs become query terms; enum
        strings filter the document field of the same name.
        """
        try:
            # What the real API would send: datetimes as ISO text, models as their fields
            # (``RetrieverModelOutput(...).model_dump()`` holds datetimes).
            retriever = json.loads(_encode(pydantic_core.to_jsonable_python(dict(definition))))
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            raise ValueError(f"A retriever definition must be JSON data: {exc}") from None
        if "retriever_name" not in retriever:
            raise ValueError("A retriever definition needs a retriever_name")
        retriever.setdefault("retriever_id", f"ret_{retriever['retriever_name']}")
        all_collections = list(self.collection_ids)
        retriever.setdefault("collection_ids", all_collections)
        retriever.setdefault("collection_identifiers", list(retriever["collection_ids"]))
        retriever.setdefault("fusion", None)
        retriever.setdefault(
            "stages",
            [
                {
                    "stage_name": "feature_search",
                    "stage_type": "filter",
                    "config": {"stage_id": "feature_search", "parameters": {"final_top_k": 10}},
                    "parameters": {"final_top_k": 10},
                }
            ],
        )
        validate_response("get_retriever", retriever)
        data = self._api.data
        with self._lock:
            # Copy-on-write: serving threads may be iterating the current mappings.
            data.bindings = {
                k: v for k, v in data.bindings.items() if k != retriever["retriever_id"]
            }
            data.retrievers = {**data.retrievers, retriever["retriever_id"]: retriever}
        return str(retriever["retriever_id"])

    def remove_retriever(self, retriever_id: str) -> None:
        """Remove a retriever (by id); later requests for it get 404."""
        data = self._api.data
        with self._lock:
            data.retrievers = {k: v for k, v in data.retrievers.items() if k != retriever_id}

    # --- faults and latency -------------------------------------------------------------

    def inject(self, endpoint: str, fault: Fault, times: int | None = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests to ``endpoint``.

        ``endpoint`` is one of :data:`ENDPOINTS` (e.g. ``"execute"``), ``"unknown"`` or
        ``"*"`` (any endpoint; used when the endpoint's own queue is empty). Faults on an
        endpoint apply in the order queued. ``times=None`` repeats it until
        :meth:`clear_faults`.
        """
        self._check_endpoint(endpoint)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        with self._lock:
            self._faults.setdefault(endpoint, _FaultQueue()).items.append([fault, times])

    def clear_faults(self, endpoint: str | None = None) -> None:
        """Drop queued faults (of one endpoint, or all)."""
        with self._lock:
            if endpoint is None:
                self._faults.clear()
            else:
                self._faults.pop(endpoint, None)

    def set_latency(self, seconds: float, endpoint: str = "*") -> None:
        """Add ``seconds`` of latency to every request to ``endpoint`` (``"*"``: all).

        An endpoint's own latency replaces the ``"*"`` one. 0 removes it.
        """
        self._check_endpoint(endpoint)
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            if seconds:
                self._latency[endpoint] = seconds
            else:
                self._latency.pop(endpoint, None)

    def pause(self, endpoint: str = "*") -> None:
        """Hold requests to ``endpoint`` (``"*"``: all) before answering, until :meth:`resume`.

        With :meth:`wait_for_requests` (``in_flight=True``) this makes concurrency tests
        deterministic: pause, fire requests, wait until they are all held, assert, resume.
        """
        self._check_endpoint(endpoint)
        with self._lock:
            self._paused.add(endpoint)

    def resume(self, endpoint: str | None = None) -> None:
        """Release held requests (of one paused ``endpoint``, or all)."""
        with self._lock:
            if endpoint is None:
                self._paused.clear()
            else:
                self._paused.discard(endpoint)
            self._lock.notify_all()

    def _wait_while_paused(self, endpoint: str) -> None:
        with self._lock:
            while not self._stop.is_set() and (endpoint in self._paused or "*" in self._paused):
                self._lock.wait(_POLL_S * 5)

    @staticmethod
    def _check_endpoint(endpoint: str) -> None:
        if endpoint != "*" and endpoint != "unknown" and endpoint not in ENDPOINTS:
            known = ", ".join(ENDPOINTS)
            raise ValueError(f"Unknown endpoint {endpoint!r}; use one of {known}, 'unknown' or '*'")

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for key in (endpoint, "*"):
                queue = self._faults.get(key)
                fault = queue.pop() if queue else None
                if fault is not None:
                    return fault
        return None

    # --- records --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._records)

    def requests_for(self, endpoint: str) -> list[RecordedRequest]:
        """The recorded requests to one endpoint, in arrival order."""
        return [r for r in self.requests if r.endpoint == endpoint]

    def clear_requests(self) -> None:
        """Forget recorded requests (in-flight ones are still recorded when they finish)."""
        with self._lock:
            self._records.clear()

    def max_overlap(self, endpoint: str | None = None) -> int:
        """The most requests (to ``endpoint``, or any) that were in flight at once.

        Computed from the records' ``started_at``/``finished_at``, so it asserts
        concurrency without timing assumptions. Requests still in flight count as open.
        """
        events: list[tuple[float, int]] = []
        for rec in self.requests:
            if endpoint is not None and rec.endpoint != endpoint:
                continue
            events.append((rec.started_at, 1))
            events.append((rec.finished_at if rec.finished_at is not None else float("inf"), -1))
        # Ends sort before starts at the same instant: touching intervals do not overlap.
        events.sort(key=lambda e: (e[0], e[1]))
        current = peak = 0
        for _, delta in events:
            current += delta
            peak = max(peak, current)
        return peak

    def max_concurrency(self, endpoint: str | None = None) -> int:
        """Alias of :meth:`max_overlap`."""
        return self.max_overlap(endpoint)

    def in_flight(self, endpoint: str | None = None) -> int:
        """How many requests (to ``endpoint``, or any) are being served right now."""
        return sum(
            1 for r in self.requests if r.in_flight and (endpoint is None or r.endpoint == endpoint)
        )

    def wait_for_requests(
        self,
        count: int,
        endpoint: str | None = None,
        *,
        in_flight: bool = False,
        timeout: float = 5.0,
    ) -> bool:
        """Block until ``count`` requests (to ``endpoint``) were received, or are in flight.

        Returns ``False`` on timeout. Lets tests synchronise with the server without sleeping.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                matching = [
                    r
                    for r in self._records
                    if (endpoint is None or r.endpoint == endpoint)
                    and (not in_flight or r.in_flight)
                ]
                if len(matching) >= count:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)

    def wait_until_idle(self, timeout: float = 5.0) -> bool:
        """Block until the server has nothing left to do; ``False`` on timeout.

        Idle means no request is in flight, none is being read, and no bytes or
        connections wait unread. Useful after a client gave up (timeout, reset) while the
        server still reads or finishes: every request the client managed to write is in
        :attr:`requests` when this returns ``True``.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._idle_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Bytes arriving in a kernel buffer notify nobody: look again shortly.
                self._lock.wait(min(remaining, 0.02))
            return True

    def _idle_locked(self) -> bool:
        if self._accepting or self._busy or any(r.in_flight for r in self._records):
            return False
        sockets = [s for s in self._connections if s.fileno() >= 0]
        if self._server is not None:
            sockets.append(self._server.socket)
        with selectors.DefaultSelector() as selector:
            for sock in sockets:
                selector.register(sock, selectors.EVENT_READ)
            return not selector.select(timeout=0)

    def _connection_busy(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy.add(conn)

    def _connection_settled(self, conn: socket.socket) -> None:
        with self._lock:
            self._busy.discard(conn)
            self._lock.notify_all()

    def _start_record(self, record: RecordedRequest) -> int:
        with self._lock:
            self._records.append(record)
            self._lock.notify_all()
            return len(self._records) - 1

    def _finish_record(self, handler: _Handler, status: int | None) -> None:
        """Complete the handler's record once (before the response's first byte is sent)."""
        record = handler.record
        if record is None:
            return
        handler.record = None
        done = replace(record, finished_at=time.monotonic(), status=status)
        with self._lock:
            # Identity, not index: clear_requests() may have run meanwhile.
            for i in range(len(self._records) - 1, -1, -1):
                if self._records[i] is record:
                    self._records[i] = done
                    break
            self._lock.notify_all()

    # --- serving ----------------------------------------------------------------------

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
            self._handler_threads.add(threading.current_thread())

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._busy.discard(conn)
            self._handler_threads.discard(threading.current_thread())
            self._lock.notify_all()

    def _serve(self, handler: _Handler) -> None:
        started = time.monotonic()
        parts = urlsplit(handler.path)
        path = parts.path
        query = parse_qs(parts.query)
        raw = self._read_body(handler)
        body, body_ok = _parse_json(raw)
        matched = route(handler.command, path)
        endpoint = matched.endpoint if isinstance(matched, Route) else "unknown"
        fault = self._take_fault(endpoint)
        record = RecordedRequest(
            method=handler.command,
            path=path,
            endpoint=endpoint,
            headers=_safe_headers(handler.headers.items()),
            body=body,
            started_at=started,
            query={k: tuple(v) for k, v in query.items()},
            params=dict(matched.params) if isinstance(matched, Route) else {},
            fault=fault.kind if fault else None,
        )
        self._start_record(record)
        handler.record = record
        try:
            self._respond(handler, matched, endpoint, query, body, body_ok, raw, fault)
        except _Dropped:
            pass
        except OSError:
            # The client went away mid-response; nothing more to send.
            handler.close_connection = True
        finally:
            self._finish_record(handler, None)

    def _respond(
        self,
        handler: _Handler,
        matched: Route | str | None,
        endpoint: str,
        query: Mapping[str, list[str]],
        body: Any,
        body_ok: bool,
        raw: bytes,
        fault: Fault | None,
    ) -> int:
        self._wait_while_paused(endpoint)
        if self._stop.is_set():
            self._drop(handler, reset=False)
        with self._lock:
            latency = self._latency.get(endpoint, self._latency.get("*", 0.0))
        if fault is not None and fault.kind == "delay":
            latency += fault.seconds
        if latency and self._stop.wait(latency):
            self._drop(handler, reset=False)
        if fault is not None:
            early = self._early_fault(handler, fault)
            if early is not None:
                return early
        status, payload = self._answer(handler, matched, query, body, body_ok, raw, fault)
        if self.validate_responses and endpoint != "unknown":
            try:
                validate_response(endpoint, payload, status=status)
            except ContractViolation as exc:
                status, payload = (
                    500,
                    error_body(
                        500,
                        str(exc),
                        error_type="ContractViolation",
                        details={"errors": exc.errors},
                    ),
                )
        if fault is not None and fault.kind == "huge_body" and isinstance(payload, dict):
            filler = max(0, fault.size_bytes - len(_encode(payload)) - len(',"debug_padding":""'))
            payload = {**payload, "debug_padding": "x" * filler}
        self._send(handler, status, payload)
        return status

    def _early_fault(self, handler: _Handler, fault: Fault) -> int | None:
        """Apply a fault that replaces the normal answer; ``None`` when it does not."""
        if fault.kind == "reset":
            self._drop(handler, reset=True)
        if fault.kind == "hang":
            self._hang(handler, fault.seconds)
            self._drop(handler, reset=False)
        if fault.kind == "status":
            status = fault.http_status or 500
            payload = fault.body
            if payload is None:
                details: dict[str, Any] = {}
                if fault.retry_after_seconds is not None:
                    details["retry_after_seconds"] = fault.retry_after_seconds
                if fault.retryable is not None:
                    details["retryable"] = fault.retryable
                payload = error_body(
                    status,
                    fault.message or f"Injected {status} error",
                    details=details or None,
                )
            self._send(handler, status, payload, fault.headers)
            return status
        if fault.kind == "malformed_json":
            status = fault.http_status or 200
            self._send_raw(handler, status, b'{"execution_id": "exec_broken", "documents": [{"doc')
            return status
        if fault.kind == "empty_body":
            status = fault.http_status or 200
            self._send_raw(handler, status, b"")
            return status
        if fault.kind == "response":
            status = fault.http_status or 200
            if isinstance(fault.body, (bytes, str)):
                data = fault.body.encode() if isinstance(fault.body, str) else fault.body
                self._send_raw(handler, status, data, fault.headers)
            else:
                self._send(handler, status, fault.body, fault.headers)
            return status
        return None

    def _answer(
        self,
        handler: _Handler,
        matched: Route | str | None,
        query: Mapping[str, list[str]],
        body: Any,
        body_ok: bool,
        raw: bytes,
        fault: Fault | None,
    ) -> tuple[int, Any]:
        auth = handler.headers.get("Authorization")
        if not auth:
            return 401, error_body(
                401,
                "Missing Authorization header; send 'Authorization: Bearer <api key>'",
                code="missing_api_key",
            )
        expected = f"Bearer {self._api_key}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            return 401, error_body(401, "Invalid API key", code="invalid_api_key")
        namespace = handler.headers.get("X-Namespace")
        if not namespace:
            return 400, error_body(
                400,
                "Missing X-Namespace header; send the namespace id or name",
                code="namespace_required",
            )
        if namespace != self.namespace:
            return 403, error_body(
                403,
                f"Namespace '{namespace}' is not accessible with this API key",
                details={"namespace": namespace},
                code="namespace_forbidden",
            )
        if matched is None:
            return 404, error_body(
                404,
                f"No route for {handler.command} {urlsplit(handler.path).path}",
                details={"method": handler.command, "path": urlsplit(handler.path).path},
                code="route_not_found",
            )
        if isinstance(matched, str):
            return 405, error_body(
                405,
                f"Method {handler.command} not allowed on {urlsplit(handler.path).path}",
                details={"method": handler.command},
            )
        if not body_ok:
            return 400, error_body(
                400,
                "Request body is not valid JSON",
                details={"bytes": len(raw)},
                code="invalid_json",
            )
        execution_fault = None
        if fault is not None and fault.kind == "execution_status" and fault.execution_status:
            execution_fault = (fault.execution_status, fault.message or fault.execution_status)
        return self._api.handle(matched, query, body, execution_fault)

    # --- low-level I/O ----------------------------------------------------------------

    @staticmethod
    def _read_body(handler: _Handler) -> bytes:
        length = handler.headers.get("Content-Length")
        if length:
            return handler.rfile.read(int(length))
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(
        self,
        handler: _Handler,
        status: int,
        payload: Any,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._send_raw(handler, status, _encode(payload), headers)

    def _send_raw(
        self,
        handler: _Handler,
        status: int,
        data: bytes,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        # Finish the record first, so a client that has its answer sees it recorded.
        self._finish_record(handler, status)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        if data:
            handler.wfile.write(data)
        handler.wfile.flush()

    def _drop(self, handler: _Handler, *, reset: bool) -> None:
        conn = handler.connection
        if reset:
            # SO_LINGER with a zero timeout makes close() send a TCP RST.
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.close()
        handler.close_connection = True
        raise _Dropped

    def _hang(self, handler: _Handler, seconds: float) -> None:
        """Wait up to ``seconds``; stop early when the fake closes or the client hangs up."""
        deadline = time.monotonic() + seconds
        conn = handler.connection
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._stop.wait(min(_POLL_S * 5, remaining)):
                return
            if _peer_closed(conn):
                return


def _peer_closed(conn: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _safe_headers(items: Iterator[tuple[str, str]] | Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        lowered = name.lower()
        secret = any(hint in lowered for hint in _SECRET_HEADER_HINTS)
        headers[name] = _REDACTED if secret else value
    return headers
