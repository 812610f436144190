"""HTTP endpoints over a real loopback socket: cached bytes, gzip, health, readiness, reload."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from exporter.web.payload import CONTENT_TYPE, Payload
from exporter.web.server import Endpoints, ExporterHTTPServer, ReloadResult, accepts_gzip
from tests.support.endpoints import serving


@dataclass
class FakeExporter:
    payload: Payload = field(
        default_factory=lambda: Payload.of(b"# HELP x y\n# TYPE x gauge\nx 1.0\n")
    )
    is_ready: bool = False
    reload_result: ReloadResult = field(
        default_factory=lambda: ReloadResult(True, "config reloaded: 2 things")
    )
    reloads: int = 0

    def reload(self) -> ReloadResult:
        self.reloads += 1
        return self.reload_result


@pytest.fixture
def exporter() -> FakeExporter:
    return FakeExporter()


@pytest.fixture
def server(exporter: FakeExporter) -> Iterator[ExporterHTTPServer]:
    endpoints = Endpoints(
        telemetry_path="/metrics",
        payload=lambda: exporter.payload,
        ready=lambda: exporter.is_ready,
        reload=exporter.reload,
    )
    with serving(endpoints) as srv:
        yield srv


def request(
    server: ExporterHTTPServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_metrics_serves_cached_bytes(server: ExporterHTTPServer, exporter: FakeExporter) -> None:
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert body == exporter.payload.plain
    assert headers["content-type"] == CONTENT_TYPE
    assert "content-encoding" not in headers


def test_metrics_gzip_when_asked(server: ExporterHTTPServer, exporter: FakeExporter) -> None:
    status, headers, body = request(server, "GET", "/metrics", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == exporter.payload.plain


def test_head_sends_headers_only(server: ExporterHTTPServer, exporter: FakeExporter) -> None:
    status, headers, body = request(server, "HEAD", "/metrics")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(exporter.payload.plain))


def test_landing_page_links_metrics(server: ExporterHTTPServer) -> None:
    status, headers, body = request(server, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b'href="/metrics"' in body


def test_ready_turns_200_after_first_cycle(
    server: ExporterHTTPServer, exporter: FakeExporter
) -> None:
    assert request(server, "GET", "/-/ready")[0] == 503
    assert request(server, "GET", "/-/healthy")[0] == 200
    exporter.is_ready = True
    assert request(server, "GET", "/-/ready")[0] == 200


def test_reload_needs_post(server: ExporterHTTPServer, exporter: FakeExporter) -> None:
    status, headers, _ = request(server, "GET", "/-/reload")
    assert (status, headers["allow"]) == (405, "POST")
    assert exporter.reloads == 0
    status, _, body = request(server, "POST", "/-/reload")
    assert (status, body) == (200, b"config reloaded: 2 things\n")
    exporter.reload_result = ReloadResult(False, "config reload failed: poll.interval: bad")
    status, _, body = request(server, "POST", "/-/reload")
    assert status == 500
    assert b"poll.interval: bad" in body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/metrics", 405),
        ("PUT", "/metrics", 405),
        ("DELETE", "/-/reload", 405),
        ("PATCH", "/elsewhere", 404),
        ("GET", "/metrics?debug=1", 200),
    ],
)
def test_bad_requests_get_clear_statuses(
    server: ExporterHTTPServer, method: str, path: str, status: int
) -> None:
    assert request(server, method, path)[0] == status


def test_oversized_reload_body_is_refused(
    server: ExporterHTTPServer, exporter: FakeExporter
) -> None:
    status, _, _ = request(server, "POST", "/-/reload", {"Content-Length": "10000000"}, b"")
    assert status == 413
    assert exporter.reloads == 0


def test_garbage_on_the_socket_gets_400_and_server_survives(server: ExporterHTTPServer) -> None:
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage that is not http\r\n\r\n")
        # A status line, not http.server's HTTP/0.9-style bare HTML page.
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert request(server, "GET", "/-/healthy")[0] == 200


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("deflate, br", False),
        ("*", True),
        ("", False),
        ("gzip;q=bogus", False),
    ],
)
def test_accepts_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected
