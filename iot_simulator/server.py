"""The HTTP/1.1 server: a thread per keep-alive connection, outages, AWS-style errors for junk."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from iot_simulator.protocol import HttpRequest, Response, json_error
from iot_simulator.service import Outcome

ADMIN_PREFIX = "/_simulator/"
_REASONS = BaseHTTPRequestHandler.responses
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST, as a crashed or absent peer does


def reset(sock: socket.socket) -> None:
    """Drop a connection abruptly (TCP RST)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    with contextlib.suppress(OSError):
        sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # An idle keep-alive connection, or a body that never arrives, frees its thread in time.
    timeout = 120
    server: Any  # the Server below; BaseHTTPRequestHandler types it as socketserver's

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request logging: it would cost more than serving the request."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP gets an AWS-style JSON error instead of http.server's HTML page."""
        self.close_connection = True
        self._write(
            json_error(
                "BadRequestException" if code < 500 else "InternalFailureException",
                message or _REASONS.get(code, ("Error",))[0],
                code,
            )
        )

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client went away; nothing to answer
            super().handle()

    def _dispatch(self) -> None:
        owner: Server = self.server
        path, _, query = self.path.partition("?")
        if owner.outage is not None and not path.startswith(ADMIN_PREFIX):
            # Drop it as a dead server would. The admin endpoints stay up (while the listener
            # is), so an outage can be ended over HTTP.
            self.close_connection = True
            reset(self.connection)
            return
        body = self._read_body(owner.max_body_bytes)
        if body is None:
            return
        if path.startswith(ADMIN_PREFIX):
            self._write(owner.admin(self.command, path[len(ADMIN_PREFIX) :], query, body))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        outcome: Outcome = owner.service(HttpRequest(self.command, path, query, headers, body))
        if outcome.delay > 0 and owner.stopping.wait(outcome.delay):
            self.close_connection = True
            return
        if outcome.reset or outcome.response is None:
            self.close_connection = True
            reset(self.connection)
            return
        self._write(outcome.response)

    # http.server looks methods up by these names.
    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815

    def _read_body(self, limit: int) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._write(
                json_error("LengthRequiredException", "Chunked bodies are not supported", 411)
            )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._write(json_error("BadRequestException", "Invalid Content-Length", 400))
            return None
        if length > limit:
            self.close_connection = True  # the unread body makes the connection unusable
            self._write(
                json_error(
                    "RequestEntityTooLargeException", f"Request body exceeds {limit} bytes", 413
                )
            )
            return None
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        reason = _REASONS.get(response.status, ("Unknown",))[0]
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append("x-amzn-RequestId: 00000000-0000-4000-8000-000000000000")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" else response.body
        # One write: headers and body leave in one segment.
        self.wfile.write(head + body)


class Server:
    """Accepts connections on host:port and serves each on its own daemon thread.

    Its own accept loop (rather than socketserver's) lets an outage close the listening
    socket, so clients see "connection refused", and reopen it on the same port afterwards.
    """

    def __init__(
        self,
        host: str,
        port: int,
        service: Callable[[HttpRequest], Outcome],
        admin: Callable[[str, str, str, bytes], Response],
        max_body_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.service = service
        self.admin = admin
        self.max_body_bytes = max_body_bytes
        self.outage: str | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def start(self) -> None:
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(256)
        self.port = listener.getsockname()[1]
        thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="simulator-accept", daemon=True
        )
        with self._lock:
            self._listener, self._acceptor = listener, thread
        thread.start()

    def _close_listener(self) -> None:
        with self._lock:
            listener, thread = self._listener, self._acceptor
            self._listener = self._acceptor = None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, address = listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn, address), name="simulator-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, address: Any) -> None:
        try:
            _Handler(conn, address, self)  # type: ignore[arg-type]  # duck-typed server
        except Exception:  # noqa: S110 - a broken connection must never take the server down
            pass
        finally:
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def set_outage(self, outage: str | None) -> None:
        """ "refuse": stop listening; "reset": accept and reset; None: serve again."""
        if outage == self.outage:
            return
        self.outage = outage
        if outage == "refuse":
            self._close_listener()
        elif self._listener is None and not self.stopping.is_set():
            self._listen()

    def _drop_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopping.set()
        self._close_listener()
        self._drop_connections()
