"""HTTP transport: the threaded HTTP server and the request handler.

The server (HTTP/1.1 keep-alive, one thread per connection) tracks its open connections; the
handler reads a request, lets the :class:`~voluum_sandbox.server.SandboxServer` answer it
and writes the response (also as a connection reset or a truncated body).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .responses import Response


class Sandbox(Protocol):
    """What answers the requests: :class:`~voluum_sandbox.server.SandboxServer` (which imports
    this module, so it is described here rather than imported).
    """  # noqa: D205

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes, client: str | None = None
    ) -> tuple[Response, dict[str, Any] | None]:
        """The response to one request, and its log entry."""


class SandboxHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows its :class:`Sandbox` and its open connections."""

    daemon_threads = True
    request_queue_size = 256
    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind and start tracking connections."""
        super().__init__(address, handler)
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection, then serve it in a thread."""
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open (keep-alive) connection."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    """Reads a request, lets the :class:`Sandbox` answer it and writes the response."""

    protocol_version = "HTTP/1.1"
    server_version = "Voluum-Portal/1.0"
    timeout = 120
    server: SandboxHTTPServer

    def version_string(self) -> str:
        """``Server`` header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _serve(self) -> None:
        """Handle any method."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp, _ = self.server.sandbox.handle(
            self.command, self.path, self.headers, body, client=str(self.client_address[0])
        )
        if resp.action == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.send_header("X-Frame-Options", "DENY")
        for key, value in resp.headers:
            self.send_header(key, value)
        self.end_headers()
        if resp.action == "truncate":
            self.close_connection = True
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.wfile.flush()
            return
        self.wfile.write(resp.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve
