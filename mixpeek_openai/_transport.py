"""Sending a :class:`~mixpeek_openai._request.MixpeekRequest` within a deadline, sync or async.

Why the dispatcher sends requests itself
----------------------------------------
The ``mixpeek`` client (1.3.x) retries 429 and 503 on its own, sleeping up to 180 s in
total, on top of urllib3's connection retries; its socket timeouts bound each read, not
the response, so a server that drips one byte every half second holds a call forever; it
is synchronous, so the async path would need a thread per call; and the only ways to
change any of that go through its private parts (``_http``, ``_request``), which a
release may change. So the user's client supplies only what it publicly holds (API key,
namespace, base URL and timeout: :class:`Endpoint`) and this module sends the exact
request the tool decided, with the headers the client would send.

Options measured on one ~19 KB execute response over loopback: urllib3 (the floor the
benchmarks compare with) and ``http.client`` spend about 90 µs framing each exchange, h11
about 110 µs, httpx2's sync client more again; none of them bounds a whole response by a
deadline. The sans-IO framing in :mod:`mixpeek_openai._http11` costs about 7 µs and is
shared by both paths below; only the socket calls differ:

* :class:`SyncTransport`: blocking sockets. Before every connect, send and receive the
  socket's timeout is set to what is left of the call's deadline (capped by the client's
  read timeout), so the deadline holds whatever the server does. Kept-alive connections
  are pooled (at most ``max_connections`` idle), and one the server closed while it was
  idle is noticed before reuse. A request the server drops unanswered is not resent here:
  it is a failed attempt for the retry layer, which counts it.
  :meth:`SyncTransport.abort` shuts down every socket in flight, which wakes any thread
  blocked on one: the dispatcher calls it when a batch is interrupted.
* :class:`AsyncTransport`: asyncio streams, no threads. The whole exchange runs under a
  timer that cancels it at the deadline; cancellation (a deadline, a cancelled task, a
  KeyboardInterrupt in the loop) aborts the connection at once. Connections are pooled
  per event loop, and in-flight requests are bounded by a semaphore per loop.

No redirect is followed (a 3xx is the server's answer and classified as such), nothing is
retried here (the retry layer decides, so the attempts it counts are the requests the
server saw), and no request header is ever stored on anything returned or raised.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from mixpeek_openai._deadline import Deadline
from mixpeek_openai._http11 import (
    ProtocolViolation,
    Response,
    ResponseParser,
    ResponseTooLarge,
    encode_request,
)
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai.errors import ConfigurationError

__all__ = [
    "AsyncTransport",
    "CancelScope",
    "Cancelled",
    "ConnectFailed",
    "ConnectionDropped",
    "DeadlineReached",
    "Endpoint",
    "ProtocolViolation",
    "ReadTimedOut",
    "Response",
    "ResponseTooLarge",
    "SyncTransport",
    "TransportError",
]

_CONNECT_TIMEOUT_S = 5.0  # what the mixpeek client uses
_RECV_BYTES = 64 * 1024
_USER_AGENT = "mixpeek-openai"


# -- errors ---------------------------------------------------------------------------------


class TransportError(Exception):
    """An attempt failed below HTTP. ``sent`` is ``False`` only when provably nothing was."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ConnectFailed(TransportError):
    """The connection could not be opened (nothing was sent)."""


class ConnectionDropped(TransportError):
    """The connection failed or was closed while the request was in flight.

    ``no_response`` says that not one byte of a response arrived.
    """

    def __init__(self, message: str, *, no_response: bool) -> None:
        super().__init__(message, sent=True)
        self.no_response = no_response


class ReadTimedOut(TransportError):
    """One read waited longer than the client's read timeout (the deadline had time left)."""


class DeadlineReached(TransportError):
    """The call's deadline passed before or during the attempt."""


class Cancelled(TransportError):
    """The call was stopped from outside (its batch was interrupted)."""


class CancelScope:
    """Lets another thread stop one call: its sockets are shut down, its waits end.

    The sync dispatcher gives each call of a batch a scope; when the batch is interrupted
    (KeyboardInterrupt, an exception from a callback) it cancels them all, so no worker
    stays blocked on a socket or a retry wait.
    """

    def __init__(self) -> None:
        """A scope that is not cancelled."""
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Stop the call: shut down its sockets and end its waits."""
        self._event.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def attach(self, sock: socket.socket) -> None:
        """Track ``sock`` while the call uses it (raises :class:`Cancelled` if cancelled)."""
        with self._lock:
            if self._event.is_set():
                raise Cancelled("the call was cancelled")
            self._sockets.add(sock)

    def detach(self, sock: socket.socket) -> None:
        """Stop tracking ``sock``."""
        with self._lock:
            self._sockets.discard(sock)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry wait), or less if the call is cancelled meanwhile."""
        if self._event.wait(seconds):
            raise Cancelled("the call was cancelled")


# -- where requests go ----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom requests are sent, read once from the user's Mixpeek client.

    ``repr`` never shows the API key.
    """

    scheme: str
    host: str
    port: int
    base_path: str
    api_key: str
    namespace: str | None
    read_timeout: float

    @classmethod
    def from_client(cls, client: Any) -> Endpoint:
        """Read ``api_key``, ``namespace``, ``base_url`` and ``timeout`` off ``client``.

        Raises:
            ConfigurationError: the client lacks them or they cannot be sent.
        """
        api_key = getattr(client, "api_key", None)
        base_url = getattr(client, "base_url", None)
        if not isinstance(api_key, str) or not isinstance(base_url, str):
            raise ConfigurationError(
                "The Mixpeek client must have string `api_key` and `base_url` attributes "
                "(pass a mixpeek.Mixpeek instance)."
            )
        namespace = getattr(client, "namespace", None)
        if namespace is not None and not isinstance(namespace, str):
            raise ConfigurationError("The Mixpeek client's `namespace` must be a string or None.")
        timeout = getattr(client, "timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            timeout = 30.0
        for label, value in (("api_key", api_key), ("namespace", namespace or "")):
            if any(c in value for c in "\r\n\x00"):
                raise ConfigurationError(
                    f"The Mixpeek client's {label} contains a line break; check its value."
                )
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"The Mixpeek base URL {base_url!r} is not an http(s) URL; use e.g. "
                "https://api.mixpeek.com/v1."
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigurationError(
                f"The Mixpeek base URL {base_url!r} has an invalid port."
            ) from None
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            base_path=parts.path.rstrip("/"),
            api_key=api_key,
            namespace=namespace or None,
            read_timeout=float(timeout),
        )

    def __repr__(self) -> str:
        return (
            f"Endpoint({self.scheme}://{self.host}:{self.port}{self.base_path}, "
            f"namespace={self.namespace!r})"
        )

    @property
    def host_header(self) -> str:
        """The ``Host`` header value."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def encode(self, request: MixpeekRequest) -> bytes:
        """The bytes of ``request`` (the headers ``mixpeek.Mixpeek`` sends, plus ours)."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": _USER_AGENT,
        }
        if self.namespace:
            headers["X-Namespace"] = self.namespace
        body = request.encoded_body()
        if body is not None:
            headers["Content-Type"] = "application/json"
        target = self.base_path + request.path
        return encode_request(request.method, self.host_header, target, headers, body)


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


# -- sync -----------------------------------------------------------------------------------


class SyncTransport:
    """Blocking sends bounded by a deadline; safe to share between threads."""

    def __init__(
        self, endpoint: Endpoint, *, max_connections: int, max_response_bytes: int
    ) -> None:
        """Pool at most ``max_connections`` idle connections to ``endpoint``."""
        self._endpoint = endpoint
        self._max_idle = max(1, max_connections)
        self._max_body = max_response_bytes
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []
        self._in_flight: set[socket.socket] = set()
        self._ssl: ssl.SSLContext | None = None
        # A tool set dropped without close() must not leave its sockets to the collector.
        weakref.finalize(self, _close_sockets, self._idle)

    def send(
        self, request: MixpeekRequest, deadline: Deadline, scope: CancelScope | None = None
    ) -> Response:
        """One attempt of ``request``; raises :class:`TransportError` subclasses.

        ``scope`` lets another thread stop the attempt (see :class:`CancelScope`).
        """
        data = self._endpoint.encode(request)
        sock = self._checkout(deadline, scope)
        return self._exchange(sock, data, deadline, scope)

    def abort(self) -> None:
        """Shut down every connection in flight (their sends fail at once)."""
        with self._lock:
            in_flight = list(self._in_flight)
        for sock in in_flight:
            _shutdown(sock)

    def close(self) -> None:
        """Close idle connections and abort those in flight."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
        self.abort()

    # -- connections ---------------------------------------------------------------------

    def _checkout(self, deadline: Deadline, scope: CancelScope | None) -> socket.socket:
        sock: socket.socket | None = None
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None or _still_open(sock):
                break
            sock.close()  # the server closed it while it was idle
        if sock is None:
            sock = self._connect(deadline)
        with self._lock:
            self._in_flight.add(sock)
        if scope is not None:
            try:
                scope.attach(sock)
            except Cancelled:
                self._release(sock, reusable=False, scope=None)
                raise
        return sock

    def _release(self, sock: socket.socket, *, reusable: bool, scope: CancelScope | None) -> None:
        if scope is not None:
            scope.detach(sock)
            reusable = reusable and not scope.cancelled
        with self._lock:
            self._in_flight.discard(sock)
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(sock)
                return
        sock.close()

    def _connect(self, deadline: Deadline) -> socket.socket:
        endpoint = self._endpoint
        remaining = deadline.remaining()
        if remaining <= 0.0:
            raise DeadlineReached("the call's deadline passed before connecting", sent=False)
        try:
            sock = socket.create_connection(
                (endpoint.host, endpoint.port), timeout=min(_CONNECT_TIMEOUT_S, remaining)
            )
        except TimeoutError:
            if deadline.expired():
                raise DeadlineReached("the deadline passed while connecting", sent=False) from None
            raise ConnectFailed("timed out connecting", sent=False) from None
        except OSError as exc:
            raise ConnectFailed(f"could not connect ({_os_reason(exc)})", sent=False) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.scheme == "https":
                if self._ssl is None:
                    self._ssl = _ssl_context()
                sock.settimeout(max(0.001, min(_CONNECT_TIMEOUT_S, deadline.remaining())))
                sock = self._ssl.wrap_socket(sock, server_hostname=endpoint.host)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                if deadline.expired():
                    raise DeadlineReached("the deadline passed during TLS", sent=False) from None
                raise ConnectFailed(f"TLS failed ({_os_reason(exc)})", sent=False) from None
            raise
        return sock

    # -- one exchange ----------------------------------------------------------------------

    def _exchange(
        self, sock: socket.socket, data: bytes, deadline: Deadline, scope: CancelScope | None
    ) -> Response:
        parser = ResponseParser(self._max_body)
        reusable = False
        try:
            with _socket_errors(deadline, parser):
                sock.settimeout(_time_left(deadline, self._endpoint.read_timeout))
                sock.sendall(data)
                while True:
                    sock.settimeout(_time_left(deadline, self._endpoint.read_timeout))
                    chunk = sock.recv(_RECV_BYTES)
                    if chunk:
                        if parser.feed(chunk):
                            break
                    elif parser.feed_eof():
                        break
            reusable = parser.reusable
            return parser.response()
        except ConnectionDropped:
            if scope is not None and scope.cancelled:
                raise Cancelled("the call was cancelled") from None
            raise
        finally:
            self._release(sock, reusable=reusable, scope=scope)


def _time_left(deadline: Deadline, read_timeout: float) -> float:
    remaining = deadline.remaining()
    if remaining <= 0.0:
        raise DeadlineReached("the call's deadline passed while waiting for the response")
    return min(remaining, read_timeout)


@contextmanager
def _socket_errors(deadline: Deadline, parser: ResponseParser) -> Iterator[None]:
    """Turn socket exceptions into :class:`TransportError` subclasses."""
    try:
        yield
    except TimeoutError:
        if deadline.expired():
            raise DeadlineReached("the deadline passed while waiting for the response") from None
        raise ReadTimedOut("timed out waiting for the response") from None
    except ProtocolViolation as exc:
        if not parser.received_any:
            raise ConnectionDropped(str(exc), no_response=True) from None
        raise
    except OSError as exc:
        raise ConnectionDropped(
            f"the connection failed ({_os_reason(exc)})", no_response=not parser.received_any
        ) from None


def _close_sockets(sockets: list[socket.socket]) -> None:
    while sockets:
        sockets.pop().close()


def _still_open(sock: socket.socket) -> bool:
    """Whether a pooled connection is still usable (not closed, nothing unread)."""
    try:
        sock.setblocking(False)
        try:
            sock.recv(1, socket.MSG_PEEK)  # EOF, or bytes nobody asked for: unusable
            return False
        finally:
            sock.setblocking(True)
    except BlockingIOError:
        return True  # nothing to read: the connection is idle and open
    except OSError:
        return False


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    name = getattr(exc, "strerror", None)
    return str(name) if name else type(exc).__name__


# -- async ----------------------------------------------------------------------------------


class _LoopPool:
    """One event loop's idle connections and in-flight bound.

    Idle connections must not outlive their loop (``asyncio.run`` closes it, and a
    transport collected after that warns and leaks its socket). An event loop finalizes
    the async generators still alive when it shuts down (``shutdown_asyncgens``), so each
    pool keeps one suspended generator whose ``finally`` closes the idle connections.
    """

    def __init__(self, max_connections: int) -> None:
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.in_flight = asyncio.Semaphore(max_connections)
        self._guard: Any = None

    async def watch_loop(self) -> None:
        """Arrange for :meth:`close` to run when the running loop shuts down."""

        async def guard() -> Any:
            try:
                yield None
            finally:
                self.close()

        self._guard = guard()
        await self._guard.__anext__()

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for _, writer in idle:
            writer.transport.abort()


class AsyncTransport:
    """Async sends over asyncio streams, bounded by a deadline; no threads."""

    def __init__(
        self, endpoint: Endpoint, *, max_connections: int, max_response_bytes: int
    ) -> None:
        """Pool up to ``max_connections`` connections per event loop to ``endpoint``."""
        self._endpoint = endpoint
        self._max = max(1, max_connections)
        self._max_body = max_response_bytes
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )
        self._ssl: ssl.SSLContext | None = None

    async def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _LoopPool(self._max)
            await pool.watch_loop()
        return pool

    async def send(self, request: MixpeekRequest, deadline: Deadline) -> Response:
        """One attempt of ``request``; raises :class:`TransportError` subclasses."""
        data = self._endpoint.encode(request)
        pool = self._pools.get(asyncio.get_running_loop()) or await self._pool()
        with _Alarm(deadline) as alarm:
            async with pool.in_flight:
                streams = await self._checkout(pool, alarm)
                return await self._exchange(pool, streams, data, alarm)

    def close(self) -> None:
        """Close every idle connection of every loop."""
        pools = list(self._pools.items())
        self._pools = weakref.WeakKeyDictionary()
        for loop, pool in pools:
            if loop.is_closed():
                continue  # its pool was closed when the loop shut down
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                pool.close()
            else:
                loop.call_soon_threadsafe(pool.close)

    async def _checkout(
        self, pool: _LoopPool, alarm: _Alarm
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while pool.idle:
            reader, writer = pool.idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return reader, writer
            writer.transport.abort()  # the server closed it while it was idle
        endpoint = self._endpoint
        context = None
        if endpoint.scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            context = self._ssl
        alarm.phase = "connect"
        try:
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=context,
                server_hostname=endpoint.host if context else None,
                limit=_RECV_BYTES,
            )
        except OSError as exc:
            raise ConnectFailed(f"could not connect ({_os_reason(exc)})", sent=False) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def _exchange(
        self,
        pool: _LoopPool,
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        data: bytes,
        alarm: _Alarm,
    ) -> Response:
        reader, writer = streams
        parser = ResponseParser(self._max_body)
        alarm.parser = parser
        alarm.phase = "exchange"
        reusable = False
        try:
            try:
                writer.write(data)
                while True:
                    alarm.rearm(self._endpoint.read_timeout)
                    chunk = await reader.read(_RECV_BYTES)
                    if chunk:
                        if parser.feed(chunk):
                            break
                    elif parser.feed_eof():
                        break
            except ProtocolViolation as exc:
                if not parser.received_any:
                    raise ConnectionDropped(str(exc), no_response=True) from None
                raise
            except OSError as exc:
                raise ConnectionDropped(
                    f"the connection failed ({_os_reason(exc)})",
                    no_response=not parser.received_any,
                ) from None
            reusable = parser.reusable
            return parser.response()
        finally:
            if reusable and len(pool.idle) < self._max:
                pool.idle.append(streams)
            else:
                writer.transport.abort()


class _Alarm:
    """Cancels the current task at the deadline (or after a read timeout) and turns that
    cancellation into :class:`DeadlineReached` / :class:`ReadTimedOut`. A cancellation
    from outside passes through untouched."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._handle: asyncio.TimerHandle | None = None
        self._fired: str | None = None
        self._task: asyncio.Task[Any] | None = None
        self.parser: ResponseParser | None = None
        self.phase = "connect"

    def __enter__(self) -> _Alarm:
        remaining = self._deadline.remaining()
        if remaining <= 0.0:
            raise DeadlineReached("the call's deadline passed before sending", sent=False)
        self._task = asyncio.current_task()
        self._arm(remaining, "deadline")
        return self

    def rearm(self, read_timeout: float) -> None:
        """Bound the next read by ``read_timeout`` as well as by the deadline."""
        remaining = self._deadline.remaining()
        if remaining <= 0.0:
            raise DeadlineReached("the call's deadline passed while waiting for the response")
        if read_timeout < remaining:
            self._arm(read_timeout, "read")
        else:
            self._arm(remaining, "deadline")

    def _arm(self, seconds: float, kind: str) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_later(seconds, self._fire, kind)

    def _fire(self, kind: str) -> None:
        self._fired = kind
        if self._task is not None:
            self._task.cancel()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if self._handle is not None:
            self._handle.cancel()
        if self._fired is None or not isinstance(exc, asyncio.CancelledError):
            return False
        task = self._task
        if task is not None and hasattr(task, "uncancel") and task.uncancel() > 0:
            return False  # cancelled from outside as well: let that through
        sent = self.phase != "connect"
        if self._fired == "read" and not self._deadline.expired():
            raise ReadTimedOut("timed out waiting for the response", sent=sent) from None
        raise DeadlineReached("the call's deadline passed", sent=sent) from None
