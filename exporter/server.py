"""HTTP(S) endpoints: cached /metrics (gzip on request), landing page, health, readiness, reload."""

from __future__ import annotations

import html
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from exporter import __version__
from exporter.collector import CONTENT_TYPE, Payload
from exporter.tlsconfig import peer_sans, sans_allowed
from exporter.webconfig import REALM, WebSecurity

log = logging.getLogger(__name__)

# A reload request carries no meaningful body; refuse anything large rather than read it.
MAX_BODY_BYTES = 64 * 1024
# A client that opens a connection and says nothing must not hold a thread for long.
TLS_HANDSHAKE_TIMEOUT = 10.0
_TLS_HANDSHAKE_RECORD = 0x16
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What the HTTP layer asks of the rest of the exporter; nothing here touches AWS."""

    telemetry_path: str
    payload: Callable[[], Payload]
    ready: Callable[[], bool]
    reload: Callable[[], ReloadResult]


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Let a restarted exporter bind its port while the old socket sits in TIME_WAIT.
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        endpoints: Endpoints,
        security: WebSecurity | None = None,
    ) -> None:
        self.endpoints = endpoints
        # Read once per connection (TLS) and per request (auth, headers); a reload replaces
        # it whole, so a connection never sees half of an old and half of a new config.
        self.security = security
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread: a slow or broken TLS handshake costs that
        # thread and nothing else, never the accept loop.
        security = self.security
        context = security.tls if security is not None else None
        if security is None or context is None:
            super().finish_request(request, client_address)
            return
        tls = _handshake(request, client_address, context)
        if tls is None:
            return
        if security.allowed_sans is not None and not sans_allowed(
            peer_sans(tls.getpeercert()), security.allowed_sans
        ):
            # Go fails the handshake (VerifyPeerCertificate); Python's ssl has no such hook,
            # so the connection ends before any request is read.
            log.debug("client certificate has no allowed SAN", extra={"client": client_address[0]})
            self.shutdown_request(tls)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            self.shutdown_request(tls)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is routine; say so at debug, not as a traceback.
        error = sys.exc_info()[1]
        client = client_address[0] if client_address else ""
        if isinstance(error, OSError):
            log.debug("http connection error", extra={"client": client, "error": str(error)})
        else:
            log.error("http request failed", extra={"client": client}, exc_info=True)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else host
        return f"[{host_text}]:{port}" if ":" in host_text else f"{host_text}:{port}"

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
        )
        thread.start()
        return thread


def _handshake(
    request: socket.socket, client_address: Any, context: ssl.SSLContext
) -> ssl.SSLSocket | None:
    """The TLS connection on request, or None (connection closed) when the handshake fails."""
    client = client_address[0] if client_address else ""
    try:
        request.settimeout(TLS_HANDSHAKE_TIMEOUT)
        first = request.recv(1, socket.MSG_PEEK)
        if first and first[0] != _TLS_HANDSHAKE_RECORD:
            # Plain HTTP on the TLS port: answer it in plain text, as Go's servers do, so
            # the operator sees why rather than a reset connection.
            request.recv(MAX_BODY_BYTES)
            request.sendall(_PLAIN_HTTP_ANSWER)
            log.debug("plain HTTP request on the TLS port", extra={"client": client})
            return None
        if not first:
            return None
        tls = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
    except OSError as error:
        log.debug("tls connection failed", extra={"client": client, "error": str(error)})
        return None
    try:
        tls.do_handshake()
    except OSError as error:  # ssl.SSLError too: no client certificate, bad version, ...
        log.debug("tls handshake failed", extra={"client": client, "error": str(error)})
        tls.close()
        return None
    return tls


def landing_page(telemetry_path: str) -> bytes:
    path = html.escape(telemetry_path)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>AWS IoT connectivity exporter</title></head>
<body>
<h1>AWS IoT connectivity exporter</h1>
<p>Version {html.escape(__version__)}</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a> (ready once the first poll cycle has completed)</li>
</ul>
<p>POST <code>/-/reload</code> (or send SIGHUP) to reload the configuration.</p>
</body></html>
""".encode()


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection must not hold a thread forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle on, a small body waits for
    # the client's delayed ACK (40 ms per gzip scrape of a small fleet, measured).
    disable_nagle_algorithm = True
    server_version = f"iot-connectivity-exporter/{__version__}"

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        security = self.server.security
        if security is None:
            return True
        if security.rate_limit is not None and not security.rate_limit.limiter.allow():
            # Before auth, as in exporter-toolkit: a flood must not buy bcrypt checks.
            self.send_response(HTTPStatus.TOO_MANY_REQUESTS)
            body = b"Too Many Requests\n"
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            super().end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return False
        if security.auth is None or security.auth.allows(self.headers.get("Authorization")):
            return True
        # Any request body stays unread; closing keeps it from being taken for a request.
        self.close_connection = True
        body = b"Unauthorized\n"
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return False

    def end_headers(self) -> None:
        security = self.server.security
        if security is not None:
            for name, value in security.headers:
                self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        path = self._path()
        if path != "/-/reload":
            self._method_not_allowed_or_missing(path)
            return
        if self.headers.get("Transfer-Encoding"):
            # Rather than parse chunking for a body we ignore, answer and close the
            # connection so no unread bytes are taken for the next request.
            self.close_connection = True
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "reload takes no body\n")
            self.close_connection = True
            return
        self.rfile.read(int(length))
        result = self.server.endpoints.reload()
        status = HTTPStatus.OK if result.ok else HTTPStatus.INTERNAL_SERVER_ERROR
        self._text(status, result.message + "\n")

    def do_PUT(self) -> None:
        self._method_not_allowed_or_missing(self._path())

    def do_DELETE(self) -> None:
        self.do_PUT()

    def do_PATCH(self) -> None:
        self.do_PUT()

    def _route(self, *, head: bool) -> None:
        endpoints = self.server.endpoints
        path = self._path()
        if path == endpoints.telemetry_path:
            self._metrics(endpoints.payload(), head=head)
        elif path == "/":
            self._send(
                HTTPStatus.OK,
                landing_page(endpoints.telemetry_path),
                "text/html; charset=utf-8",
                head=head,
            )
        elif path == "/-/healthy":
            self._text(HTTPStatus.OK, "Healthy.\n", head=head)
        elif path == "/-/ready":
            if endpoints.ready():
                self._text(HTTPStatus.OK, "Ready.\n", head=head)
            else:
                self._text(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "Not ready: the first poll cycle has not completed yet.\n",
                    head=head,
                )
        elif path == "/-/reload":
            self._text(
                HTTPStatus.METHOD_NOT_ALLOWED, "use POST to reload\n", head=head, allow="POST"
            )
        else:
            self._text(HTTPStatus.NOT_FOUND, f"not found: {path}\n", head=head)

    def _metrics(self, payload: Payload, *, head: bool) -> None:
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            parts, extra = payload.gzip_parts, {"Content-Encoding": "gzip"}
        else:
            parts, extra = payload.plain_parts, {}
        self._send(HTTPStatus.OK, parts, CONTENT_TYPE, head=head, vary="Accept-Encoding", **extra)

    def _method_not_allowed_or_missing(self, path: str) -> None:
        known = {self.server.endpoints.telemetry_path, "/", "/-/healthy", "/-/ready", "/-/reload"}
        if path in known:
            allow = "POST" if path == "/-/reload" else "GET, HEAD"
            self._text(
                HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed\n", allow=allow
            )
        else:
            self._text(HTTPStatus.NOT_FOUND, f"not found: {path}\n")

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _text(self, status: HTTPStatus, text: str, *, head: bool = False, **headers: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", head=head, **headers)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes | tuple[bytes, ...],
        content_type: str,
        *,
        head: bool = False,
        **headers: str,
    ) -> None:
        parts = (body,) if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(part) for part in parts)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-").title(), value)
        self.end_headers()
        if not head:
            for part in parts:
                self.wfile.write(part)

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes are frequent and uninteresting; errors still reach log_error below.
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log.debug(
            "http request error", extra={"client": self.client_address[0], "error": format % args}
        )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (honouring an explicit q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
