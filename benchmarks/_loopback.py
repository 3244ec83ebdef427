"""A zero-latency Mixpeek stand-in that runs in its own process, for the benchmarks.

Why another process: a server in the measured process shares its GIL and its thread
count, so every figure would partly measure the server (``FakeMixpeek`` starts a thread
per connection). Why a real socket: the code under test must be measured through its
public API only, whatever it sends HTTP with (urllib3 under the ``mixpeek`` client today,
its own sockets or ``httpx2`` tomorrow); anything patched inside the process would stop
measuring it the day the transport changes.

The server is one asyncio event loop speaking HTTP/1.1 with keep-alive (``Content-Length``
or chunked request bodies, pipelining answered in order) and answers from bytes built
once:

* ``GET /v1/retrievers/{id}``: the retriever definition;
* ``POST /v1/retrievers/{id}/execute``: the configured execute body, after the configured
  latency (an ``asyncio`` timer, so hundreds of connections can wait at once);
* anything else: 404 in the API's error shape.

Optional checks (``validate=True``, off by default because they cost time): the
``Authorization: Bearer`` key and ``X-Namespace`` header, and an execute body that is a
JSON object with an ``inputs`` object and only the keys the API declares; a failed check
answers 401/400/403/422 as the API would, and is counted.

Control endpoints under ``/__loopback/`` (``stats``, ``reset``, ``configure``) let the
benchmark change the latency and read server-side counts: requests, connections (open,
most at once, opened in total) and the most executes in flight at once, which shows
concurrency without any timing assumption.

This file only imports the standard library: it is started as a script
(``python _loopback.py``), reads its configuration as one JSON line on stdin, prints its
port on stdout and serves until stdin closes (so it ends with the benchmark that
started it). :class:`LoopbackMixpeek` does all that from the benchmark's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_API_KEY", "DEFAULT_NAMESPACE", "LoopbackMixpeek", "LoopbackStats"]

DEFAULT_API_KEY = "mxp-loopback-bench-key"
DEFAULT_NAMESPACE = "ns_demo"
_CONTROL = "/__loopback/"
_MAX_HEADER_BYTES = 64 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
}


# -- the benchmark's side ------------------------------------------------------------------


@dataclass(frozen=True)
class LoopbackStats:
    """Server-side counts since the last :meth:`LoopbackMixpeek.reset`."""

    requests: int
    executes: int
    gets: int
    rejected: int
    """Requests refused by the optional checks (``validate=True``)."""
    max_in_flight: int
    """The most executes held at once (waiting for their latency to pass)."""
    open_connections: int
    max_connections: int
    """The most connections open at once."""
    connections_opened: int


class LoopbackMixpeek:
    """Start, steer and stop the loopback server (a child process) from a benchmark.

    Use it as a context manager. ``client()`` gives a real ``mixpeek.Mixpeek`` client
    pointed at it; ``base_url``, ``api_key`` and ``namespace`` let any other client (a
    plain urllib3 pool, a peer library) reach the same server.

    Args:
        definitions: ``GET /v1/retrievers/{id}`` bodies by retriever id.
        execute_body: The bytes every execute answers with (any retriever id).
        latency_s: Time each execute is held before it is answered.
        validate: Check credentials and execute bodies (see the module docstring).
        allowed_keys: Top-level execute body keys the checks accept; by default the
            fields of ``mixpeek.models.ExecuteRetrieverRequest`` (read in this process).
    """

    def __init__(
        self,
        definitions: Mapping[str, Mapping[str, Any]],
        execute_body: bytes,
        *,
        latency_s: float = 0.0,
        validate: bool = False,
        api_key: str = DEFAULT_API_KEY,
        namespace: str = DEFAULT_NAMESPACE,
        allowed_keys: Iterable[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.namespace = namespace
        self._config: dict[str, Any] = {
            "definitions": {k: dict(v) for k, v in definitions.items()},
            "execute_body": execute_body.decode("utf-8"),
            "latency_s": latency_s,
            "validate": validate,
            "api_key": api_key,
            "namespace": namespace,
            "allowed_keys": sorted(allowed_keys) if allowed_keys is not None else None,
        }
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, **kwargs: Any) -> Any:
        """A real ``mixpeek.Mixpeek`` client for this server (keyword arguments go to it)."""
        from mixpeek import Mixpeek

        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("namespace", self.namespace)
        kwargs.setdefault("base_url", self.base_url)
        return Mixpeek(**kwargs)

    def headers(self) -> dict[str, str]:
        """The headers the API expects on every request (for clients written by hand)."""
        return {
            "Authorization": f"Bearer {self.api_key}",
            "X-Namespace": self.namespace,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def start(self, timeout: float = 30.0) -> LoopbackMixpeek:
        """Start the child process and wait until it listens; returns ``self``."""
        if self._process is not None:
            return self
        config = dict(self._config)
        if config["validate"] and config["allowed_keys"] is None:
            config["allowed_keys"] = sorted(_declared_execute_keys())
        process = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(config).encode() + b"\n")
            process.stdin.flush()
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            line = process.stdout.readline() if ready else b""
            if not line.startswith(b"port "):
                raise RuntimeError(f"the loopback server did not start (said {line!r})")
            self.port = int(line.split()[1])
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the child process (closing its stdin ends it; killed if it lingers)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> LoopbackMixpeek:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _control(self, action: str, payload: Mapping[str, Any] | None = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(dict(payload or {})).encode()
            conn.request("POST", _CONTROL + action, body=body)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"loopback {action}: HTTP {response.status} {data[:200]!r}")
            return json.loads(data)
        finally:
            conn.close()

    def configure(self, *, latency_s: float | None = None, validate: bool | None = None) -> None:
        """Change the execute latency and/or the checks of the running server."""
        payload: dict[str, Any] = {}
        if latency_s is not None:
            payload["latency_s"] = latency_s
        if validate is not None:
            payload["validate"] = validate
            if validate and self._config["allowed_keys"] is None:
                payload["allowed_keys"] = sorted(_declared_execute_keys())
        self._control("configure", payload)

    def stats(self) -> LoopbackStats:
        """Counts since the last :meth:`reset`."""
        return LoopbackStats(**self._control("stats"))

    def reset(self) -> None:
        """Zero the counts (open connections stay counted as open)."""
        self._control("reset")


def _declared_execute_keys() -> set[str]:
    """Top-level keys of the execute request body, from the ``mixpeek`` package's model."""
    from mixpeek.models import ExecuteRetrieverRequest  # type: ignore[attr-defined]

    keys = set()
    for name, info in ExecuteRetrieverRequest.model_fields.items():
        keys.add(info.alias or name)
    return keys


# -- the server (the child process) --------------------------------------------------------


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _error(status: int, message: str, **details: Any) -> bytes:
    body = {"success": False, "status": status, "error": {"message": message, **details}}
    return _response(status, json.dumps(body).encode())


class _Server:
    """State shared by the connections: canned answers, settings, counts."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.definitions = {
            rid: _response(200, json.dumps(d).encode()) for rid, d in config["definitions"].items()
        }
        self.execute = _response(200, config["execute_body"].encode("utf-8"))
        self.latency_s = float(config.get("latency_s") or 0.0)
        self.validate = bool(config.get("validate"))
        self.auth = f"Bearer {config['api_key']}"
        self.namespace = str(config["namespace"])
        self.allowed_keys = frozenset(config.get("allowed_keys") or ())
        self.open_connections = 0
        self.reset()

    def reset(self) -> None:
        self.requests = self.executes = self.gets = self.rejected = 0
        self.in_flight = self.max_in_flight = 0
        self.max_connections = self.open_connections
        self.connections_opened = 0

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "executes": self.executes,
            "gets": self.gets,
            "rejected": self.rejected,
            "max_in_flight": self.max_in_flight,
            "open_connections": self.open_connections,
            "max_connections": self.max_connections,
            "connections_opened": self.connections_opened,
        }

    def control(self, action: str, body: bytes) -> bytes:
        payload = json.loads(body or b"{}")
        if action == "configure":
            if "latency_s" in payload:
                self.latency_s = float(payload["latency_s"])
            if "validate" in payload:
                self.validate = bool(payload["validate"])
            if payload.get("allowed_keys"):
                self.allowed_keys = frozenset(payload["allowed_keys"])
        elif action == "reset":
            self.reset()
        elif action != "stats":
            return _error(404, f"unknown control action {action!r}")
        return _response(200, json.dumps(self.stats()).encode())

    def check(self, headers: Mapping[str, str], body: bytes | None) -> bytes | None:
        """The API's refusal for a request that fails the checks, or None."""
        if headers.get("authorization") != self.auth:
            return _error(401, "Invalid or missing API key")
        namespace = headers.get("x-namespace")
        if not namespace:
            return _error(400, "X-Namespace header is required")
        if namespace != self.namespace:
            return _error(403, "Namespace not accessible with this key")
        if body is None:
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(422, "Request body is not valid JSON")
        if not isinstance(payload, dict):
            return _error(422, "Request body must be a JSON object")
        if not isinstance(payload.get("inputs"), dict):
            return _error(422, "Field required: inputs (an object)", loc=["body", "inputs"])
        extra = sorted(set(payload) - self.allowed_keys) if self.allowed_keys else []
        if extra:
            return _error(422, f"Extra inputs are not permitted: {extra}", loc=["body", *extra])
        return None


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered one at a time, in order."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.busy = False
        self.counted = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _count(self) -> None:
        """Count this connection, from its first API request (control ones are not counted)."""
        if self.counted:
            return
        self.counted = True
        server = self.server
        server.open_connections += 1
        server.connections_opened += 1
        server.max_connections = max(server.max_connections, server.open_connections)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.server.open_connections -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._serve()

    def _serve(self) -> None:
        while not self.busy and self.transport is not None:
            request = self._take_request()
            if request is None:
                return
            self._answer(*request)

    def _take_request(self) -> tuple[str, str, dict[str, str], bytes | None, bool] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEADER_BYTES:
                self._fail(_error(400, "Request headers too large"))
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self._fail(_error(400, "Malformed request line"))
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        body: bytes | None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = self._chunked(start)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < start + length:
                return None
            body = bytes(self.buffer[start : start + length]) if length else None
            consumed = start + length
        del self.buffer[:consumed]
        connection = headers.get("connection", "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        return method, target.split("?", 1)[0], headers, body, close

    def _chunked(self, start: int) -> tuple[bytes, int] | None:
        """The decoded body and the bytes it took, or None until it is all here."""
        chunks: list[bytes] = []
        pos = start
        while True:
            eol = self.buffer.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buffer[pos:eol]).split(b";", 1)[0] or b"0", 16)
            pos = eol + 2
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n", pos)
                while trailer_end > pos:  # skip trailer headers
                    pos = trailer_end + 2
                    trailer_end = self.buffer.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None
                return b"".join(chunks), trailer_end + 2
            if len(self.buffer) < pos + size + 2:
                return None
            chunks.append(bytes(self.buffer[pos : pos + size]))
            pos += size + 2

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None, close: bool
    ) -> None:
        server = self.server
        if path.startswith(_CONTROL):
            self._send(server.control(path[len(_CONTROL) :], body or b""), close)
            return
        server.requests += 1
        self._count()
        parts = path.strip("/").split("/")
        is_execute = len(parts) == 4 and parts[:2] == ["v1", "retrievers"] and parts[3] == "execute"
        is_get = len(parts) == 3 and parts[:2] == ["v1", "retrievers"]
        refusal = None
        if server.validate and (is_execute or is_get):
            refusal = server.check(headers, body if is_execute else None)
        if refusal is not None:
            server.rejected += 1
            self._send(refusal, close)
        elif is_execute and method == "POST":
            server.executes += 1
            if server.latency_s > 0:
                self.busy = True
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                loop = asyncio.get_running_loop()
                loop.call_later(server.latency_s, self._release, server.execute, close)
            else:
                server.max_in_flight = max(server.max_in_flight, 1)
                self._send(server.execute, close)
        elif is_get and method == "GET":
            server.gets += 1
            answer = server.definitions.get(parts[2])
            if answer is None:
                answer = _error(404, f"Retriever '{parts[2]}' not found")
            self._send(answer, close)
        elif is_execute or is_get:
            self._send(_error(405, "Method not allowed"), close)
        else:
            self._send(_error(404, f"No route for {method} {path}"), close)

    def _release(self, data: bytes, close: bool) -> None:
        self.server.in_flight -= 1
        self.busy = False
        self._send(data, close)
        self._serve()

    def _send(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.transport.close()
            self.transport = None

    def _fail(self, data: bytes) -> None:
        self._send(data, True)
        self.buffer.clear()


async def _serve(config: Mapping[str, Any]) -> None:
    server = _Server(config)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: _Connection(server), "127.0.0.1", 0, backlog=4096, reuse_address=True
    )
    port = listener.sockets[0].getsockname()[1]
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    stopped = asyncio.Event()
    # stdin closing (the benchmark ended, or died) is the signal to stop.
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stopped.set)), daemon=True
    ).start()
    async with listener:
        await stopped.wait()


def _main() -> None:
    config = json.loads(sys.stdin.readline())
    asyncio.run(_serve(config))


if __name__ == "__main__":
    _main()
