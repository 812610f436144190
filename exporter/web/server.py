"""HTTP(S) endpoints: cached /metrics (gzip on request), landing page, health, readiness, reload."""

from __future__ import annotations

import html
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from exporter import __version__
from exporter.web.config_file import REALM, WebSecurity
from exporter.web.limits import HttpLimits
from exporter.web.loop import HttpLoop, Response, TLSPolicy
from exporter.web.payload import CONTENT_TYPE, Payload
from exporter.web.wire import Request, response_head

log = logging.getLogger(__name__)

SERVER_NAME = f"iot-connectivity-exporter/{__version__}"
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


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


class ExporterHTTPServer:
    """Listens on address and serves the endpoints through an HttpLoop (see loop.py)."""

    def __init__(
        self,
        address: tuple[str, int],
        endpoints: Endpoints,
        security: WebSecurity | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        self.endpoints = endpoints
        # Read once per connection (TLS) and per request (auth, rate limit, headers); a
        # reload replaces it whole, so no request sees half of an old and half of a new one.
        self.security = security
        self.limits = limits or HttpLimits()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Let a restarted exporter bind its port while the old socket sits in TIME_WAIT.
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            # socketserver's default backlog of 5 made 13 of 100 back-to-back connects wait
            # a second for a SYN retransmit, even on an idle exporter.
            self.socket.listen(socket.SOMAXCONN)
        except OSError:
            self.socket.close()
            raise
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._loop = HttpLoop(
            self.socket,
            self._respond,
            tls_policy=self._tls_policy,
            limits=self.limits,
            server_name=SERVER_NAME,
        )
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.server_address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def open_connections(self) -> int:
        return self._loop.open_connections

    def serve_forever(self) -> None:
        self._loop.run()

    def serve_in_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self) -> None:
        self._loop.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def server_close(self) -> None:
        self.socket.close()

    def _tls_policy(self) -> TLSPolicy:
        security = self.security
        if security is None:
            return TLSPolicy(None)
        return TLSPolicy(security.tls, security.allowed_sans)

    # --- answering (in a worker thread) ------------------------------------------------------

    def _respond(self, request: Request, client: str) -> Response:
        security = self.security
        limit = security.rate_limit if security is not None else None
        if limit is not None and not limit.limiter.allow():
            # Before auth and without the configured headers, as in exporter-toolkit: a
            # flood must not buy bcrypt checks.
            return _text(request, HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        extra = security.headers if security is not None else ()
        auth = security.auth if security is not None else None
        if auth is not None and not auth.allows(request.header("Authorization") or None):
            challenge = [("WWW-Authenticate", f'Basic realm="{REALM}"'), *extra]
            return _text(request, HTTPStatus.UNAUTHORIZED, "Unauthorized\n", challenge)
        return self._route(request, extra)

    def _route(self, request: Request, extra: Sequence[tuple[str, str]]) -> Response:
        endpoints = self.endpoints
        path, method = request.path, request.method
        known = {endpoints.telemetry_path, "/", "/-/healthy", "/-/ready", "/-/reload"}
        if path not in known:
            if method in ("GET", "HEAD", *_BODY_METHODS):
                return _text(request, HTTPStatus.NOT_FOUND, f"not found: {path}\n", extra)
            return _text(request, HTTPStatus.NOT_IMPLEMENTED, f"{method} is not served\n", extra)
        allow = "POST" if path == "/-/reload" else "GET, HEAD"
        if method not in allow.split(", "):
            text = f"method {method} not allowed\n" if allow != "POST" else "use POST to reload\n"
            return _text(request, HTTPStatus.METHOD_NOT_ALLOWED, text, [("Allow", allow), *extra])
        if path == "/-/reload":
            result = endpoints.reload()
            status = HTTPStatus.OK if result.ok else HTTPStatus.INTERNAL_SERVER_ERROR
            return _text(request, status, result.message + "\n", extra)
        return self._page(request, path, extra)

    def _page(self, request: Request, path: str, extra: Sequence[tuple[str, str]]) -> Response:
        endpoints = self.endpoints
        if path == endpoints.telemetry_path:
            return _metrics(request, endpoints.payload(), extra)
        if path == "/":
            page = (landing_page(endpoints.telemetry_path),)
            return _answer(request, HTTPStatus.OK, page, "text/html; charset=utf-8", extra)
        if path == "/-/healthy":
            return _text(request, HTTPStatus.OK, "Healthy.\n", extra)
        if endpoints.ready():
            return _text(request, HTTPStatus.OK, "Ready.\n", extra)
        not_ready = "Not ready: not every source has succeeded once yet.\n"
        return _text(request, HTTPStatus.SERVICE_UNAVAILABLE, not_ready, extra)


def _metrics(request: Request, payload: Payload, extra: Sequence[tuple[str, str]]) -> Response:
    if accepts_gzip(request.header("Accept-Encoding")):
        parts, more = payload.gzip_parts, [("Content-Encoding", "gzip")]
    else:
        parts, more = payload.plain_parts, []
    headers = [("Vary", "Accept-Encoding"), *more, *extra]
    return _answer(request, HTTPStatus.OK, parts, CONTENT_TYPE, headers)


def _text(
    request: Request,
    status: HTTPStatus,
    text: str,
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    return _answer(request, status, (text.encode(),), "text/plain; charset=utf-8", headers)


def _answer(
    request: Request,
    status: HTTPStatus,
    parts: tuple[bytes, ...],
    content_type: str,
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    close = not request.keep_alive
    fields = [
        ("Content-Type", content_type),
        ("Content-Length", str(sum(len(part) for part in parts))),
        *headers,
    ]
    if close:
        fields.append(("Connection", "close"))
    head = response_head(status, fields, SERVER_NAME)
    return Response(head, () if request.method == "HEAD" else parts, close)


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
<li><a href="/-/ready">Readiness</a> (ready once every source has succeeded once)</li>
</ul>
<p>POST <code>/-/reload</code> (or send SIGHUP) to reload the configuration.</p>
</body></html>
""".encode()


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
