"""A loopback server that answers every execute with one canned body (for fuzzing).

The real ``mixpeek.Mixpeek`` client is pointed at it; the dispatcher's own transport
sends the requests, so fuzzed responses go through exactly the path real ones take.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CannedServer:
    """Serves ``body`` (bytes) with ``status`` to every POST; records the request bodies."""

    def __init__(self) -> None:
        self.body = b'{"documents": []}'
        self.status = 200
        self.sent: list[Any] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                server.sent.append(json.loads(raw) if raw else None)
                self._answer(server.status, server.body)

            def do_GET(self) -> None:
                self._answer(404, b'{"detail": "not found"}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def answer(self, value: Any, status: int = 200) -> None:
        """Answer with ``value`` (JSON-encoded unless bytes) from now on."""
        self.body = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.status = status

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


_SERVER: CannedServer | None = None


def canned_server() -> CannedServer:
    """One server for the whole test session (hypothesis examples reuse it)."""
    global _SERVER
    if _SERVER is None:
        _SERVER = CannedServer()
    return _SERVER
