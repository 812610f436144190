"""The HTTP server on its own in tests: endpoints serving fixed bytes, and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from exporter.web.config_file import WebSecurity
from exporter.web.limits import HttpLimits
from exporter.web.payload import Payload
from exporter.web.server import Endpoints, ExporterHTTPServer, ReloadResult


def fixed_endpoints(body: bytes, reload_message: str = "reloaded") -> Endpoints:
    """/metrics serves body (cached once, plain and gzip), always ready, reload succeeds."""
    payload = Payload.of(body)
    return Endpoints(
        "/metrics", lambda: payload, lambda: True, lambda: ReloadResult(True, reload_message)
    )


@contextmanager
def serving(
    endpoints: Endpoints,
    security: WebSecurity | None = None,
    limits: HttpLimits | None = None,
) -> Iterator[ExporterHTTPServer]:
    """The server on a free port of 127.0.0.1, serving in a thread; shut down on leaving."""
    server = ExporterHTTPServer(("127.0.0.1", 0), endpoints, security, limits)
    try:
        server.serve_in_thread()
        yield server
    finally:
        server.shutdown()
        server.server_close()
