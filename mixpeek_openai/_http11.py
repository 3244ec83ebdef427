"""HTTP/1.1 framing without I/O: the request bytes, and a parser fed the response bytes.

The transport (:mod:`mixpeek_openai._transport`) owns the sockets, sync or async; this
module only turns a request into bytes and bytes into a response, so both send paths share
every decision about what the server said. It understands exactly what a JSON API
answers with, and refuses the rest instead of guessing:

* a status line, headers (at most :data:`MAX_HEAD_BYTES`), then a body framed by
  ``Content-Length``, by ``Transfer-Encoding: chunked`` or by the connection closing;
* interim ``1xx`` responses are skipped; ``204``/``304`` have no body;
* a body longer than the limit raises :class:`ResponseTooLarge` as soon as the limit is
  passed (the declared length is checked before anything is read);
* a connection closed before the declared body is complete, a malformed status line,
  header or chunk size, conflicting lengths, or a content coding we did not ask for raise
  :class:`ProtocolViolation`: the server lied about its body.

Why not h11 or http.client: on this workload (one ~19 KB JSON response) h11 costs about
110 µs per exchange and ``http.client`` about 90 µs, each more than everything else a
tool call does; this parser costs about 7 µs, and its limits are the ones we need.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_HEAD_BYTES",
    "ProtocolViolation",
    "Response",
    "ResponseParser",
    "ResponseTooLarge",
    "encode_request",
]

MAX_HEAD_BYTES = 64 * 1024
"""Largest status line plus headers accepted."""

_MAX_CHUNK_LINE = 1024


class ProtocolViolation(Exception):
    """The server's bytes are not a well-formed HTTP/1.1 response."""


class ResponseTooLarge(Exception):
    """The response body is larger than the configured limit."""


@dataclass(frozen=True)
class Response:
    """A complete response: status, headers (names lower-cased) and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


def encode_request(
    method: str, host: str, target: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    """The bytes of one request. Header values were checked for CR/LF by the caller."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class ResponseParser:
    """Feed it the bytes the server sends; it says when the response is complete.

    ``feed(data)`` and ``feed_eof()`` raise :class:`ProtocolViolation` or
    :class:`ResponseTooLarge`; after either returns ``True``, :meth:`response` is ready and
    :attr:`reusable` says whether the connection may carry another request.
    """

    __slots__ = (
        "_body",
        "_buffer",
        "_chunk_left",
        "_close_delimited",
        "_done",
        "_headers",
        "_keep_alive",
        "_length",
        "_max_body",
        "_size",
        "_state",
        "_status",
        "received_any",
    )

    def __init__(self, max_body_bytes: int) -> None:
        """A parser for one response whose body may be at most ``max_body_bytes``."""
        self._max_body = max_body_bytes
        self._buffer = b""
        self._state = "head"  # head, length, chunk_size, chunk_data, chunk_crlf, trailer, close
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._length = 0
        self._chunk_left = 0
        self._keep_alive = False
        self._close_delimited = False
        self._done = False
        self.received_any = False
        """Whether any byte of a response arrived (a stale kept-alive connection sends none)."""

    @property
    def reusable(self) -> bool:
        """Whether the connection can be used again (complete, kept alive, nothing extra)."""
        return self._done and self._keep_alive and not self._buffer

    def response(self) -> Response:
        """The complete response (only after ``feed``/``feed_eof`` returned ``True``)."""
        return Response(self._status, self._headers, b"".join(self._body))

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Add bytes from the server; ``True`` once the response is complete."""
        if data:
            self.received_any = True
        self._buffer += data
        while not self._done:
            before = self._state, len(self._buffer)
            step = getattr(self, "_on_" + self._state)
            step()
            if (self._state, len(self._buffer)) == before and not self._done:
                return False  # needs more bytes
        return True

    def feed_eof(self) -> bool:
        """The server closed the connection; ``True`` if that completes the response."""
        if self._done:
            return True
        if self._state == "close":
            self._keep_alive = False
            self._done = True
            return True
        if not self.received_any:
            raise ProtocolViolation("the server closed the connection without a response")
        raise ProtocolViolation("the server closed the connection before the response was complete")

    # -- states ----------------------------------------------------------------------------

    def _on_head(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolViolation("the response headers are too large")
            return
        if end > MAX_HEAD_BYTES:
            raise ProtocolViolation("the response headers are too large")
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        lines = head.decode("latin-1").split("\r\n")
        version, status = _status_line(lines[0])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or not _is_token(name):
                raise ProtocolViolation("a response header is malformed")
            key = name.lower()
            value = value.strip()
            if key in headers:
                if key == "content-length" and headers[key] != value:
                    raise ProtocolViolation("the response declares two different lengths")
                value = f"{headers[key]}, {value}"
                if key == "content-length":
                    value = headers[key]
            headers[key] = value
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolViolation("the server switched protocols")
            return  # an interim response; the real one follows
        self._status, self._headers = status, headers
        connection = headers.get("connection", "").lower()
        self._keep_alive = (version == "HTTP/1.1" and "close" not in connection) or (
            version == "HTTP/1.0" and "keep-alive" in connection
        )
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding not in ("", "identity"):
            raise ProtocolViolation(
                f"the response uses a content coding ({coding!r}) not asked for"
            )
        self._start_body(headers)

    def _start_body(self, headers: dict[str, str]) -> None:
        if self._status in (204, 304):
            self._done = True
            return
        transfer = headers.get("transfer-encoding")
        if transfer is not None:
            codings = [c.strip().lower() for c in transfer.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise ProtocolViolation("the response uses a transfer coding other than chunked")
            self._state = "chunk_size"
            return
        length = headers.get("content-length")
        if length is None:
            self._state = "close"
            self._close_delimited = True
            self._keep_alive = False
            return
        if not _is_decimal(length) or len(length) > 18:
            raise ProtocolViolation("the response's Content-Length is not a number")
        self._length = int(length)
        if self._length > self._max_body:
            raise ResponseTooLarge(
                f"the response ({self._length} bytes) is larger than the "
                f"{self._max_body}-byte limit"
            )
        if self._length == 0:
            self._done = True
            return
        self._state = "length"

    def _on_length(self) -> None:
        take = self._buffer[: self._length - self._size]
        self._buffer = self._buffer[len(take) :]
        self._add(take)
        if self._size == self._length:
            self._done = True

    def _on_close(self) -> None:
        self._add(self._buffer)
        self._buffer = b""

    def _on_chunk_size(self) -> None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_CHUNK_LINE:
                raise ProtocolViolation("a chunk size line is too long")
            return
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 15 or not _is_hex(size_text):
            raise ProtocolViolation("a chunk size is malformed")
        size = int(size_text, 16)
        if size == 0:
            self._state = "trailer"
            return
        if self._size + size > self._max_body:
            raise ResponseTooLarge(f"the response is larger than the {self._max_body}-byte limit")
        self._chunk_left = size
        self._state = "chunk_data"

    def _on_chunk_data(self) -> None:
        take = self._buffer[: self._chunk_left]
        self._buffer = self._buffer[len(take) :]
        self._chunk_left -= len(take)
        self._add(take)
        if self._chunk_left == 0:
            self._state = "chunk_crlf"

    def _on_chunk_crlf(self) -> None:
        if len(self._buffer) < 2:
            return
        if self._buffer[:2] != b"\r\n":
            raise ProtocolViolation("a chunk is longer than its declared size")
        self._buffer = self._buffer[2:]
        self._state = "chunk_size"

    def _on_trailer(self) -> None:
        if self._buffer.startswith(b"\r\n"):
            self._buffer = self._buffer[2:]
            self._done = True
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolViolation("the response trailers are too large")
            return
        self._buffer = self._buffer[end + 4 :]
        self._done = True

    def _add(self, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._size > self._max_body:
            raise ResponseTooLarge(f"the response is larger than the {self._max_body}-byte limit")
        self._body.append(data)


def _status_line(line: str) -> tuple[str, int]:
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0"):
        raise ProtocolViolation("the response does not start with an HTTP/1.x status line")
    code = parts[1]
    if len(code) != 3 or not _is_decimal(code):
        raise ProtocolViolation("the response's status code is malformed")
    return parts[0], int(code)


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _is_token(name: str) -> bool:
    return all(c in _TOKEN_CHARS for c in name)


def _is_hex(text: bytes) -> bool:
    return all(c in _HEX for c in text)


def _is_decimal(text: str) -> bool:
    # Not str.isdigit: headers are decoded as latin-1, where "²" is a digit int() refuses.
    return text.isascii() and text.isdigit()
