"""Property: any request to a real server on 127.0.0.1 gets a status line, never a traceback.

Requests are built from random methods, targets, headers and bodies (framed right or
wrong), or are plain random bytes; each goes over its own connection, which the client then
half-closes, so the server sees both complete and cut-off requests.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.web.config_file import build_security, parse_web_config
from exporter.web.limits import HttpLimits
from exporter.web.server import ExporterHTTPServer
from tests.support.endpoints import fixed_endpoints, serving

STATUS_LINE = re.compile(rb"HTTP/1\.1 [1-5][0-9][0-9] [^\r\n]*\r\n")
PATHS = ["/", "/metrics", "/-/healthy", "/-/ready", "/-/reload", "/metrics?x=1", "//x", "*"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"]
HEADERS = ["Content-Length", "Transfer-Encoding", "Connection", "Expect", "Authorization",
           "Accept-Encoding", "Host"]  # fmt: skip
# Basic auth and a rate limit on, so their paths are taken too: alice's password is "x",
# which the sampled header "Basic YWxpY2U6eA==" sends, so requests reach the handlers.
WEB_CONFIG = (
    "basic_auth_users:\n"
    f"  alice: {bcrypt.hashpw(b'x', bcrypt.gensalt(4)).decode()}\n"
    "rate_limit: {interval: 1ms, burst: 1000}\n"
    "http_server_config: {headers: {X-Content-Type-Options: nosniff}}\n"
)


def header_values() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from([b"0", b"5", b"\xc2\xb3", b"-1", b"chunked", b"close", b"keep-alive",
                         b"100-continue", b"gzip", b"Basic YWxpY2U6eA==", b"Basic !!"]),
        st.binary(max_size=40),
    )  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.one_of(st.sampled_from(METHODS), st.text(max_size=8))).encode()
    target = draw(st.one_of(st.sampled_from(PATHS), st.text(max_size=30))).encode()
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1", b""]))
    lines = [b" ".join(part for part in (method, target, version) if part)]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.one_of(st.sampled_from(HEADERS), st.text(max_size=12))).encode()
        lines.append(name + b": " + draw(header_values()))
    ending = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = ending.join(lines) + ending * draw(st.integers(0, 2))
    return head + draw(st.binary(max_size=64))


@pytest.fixture(scope="module")
def server() -> Iterator[ExporterHTTPServer]:
    endpoints = fixed_endpoints(b"x 1\n")
    security = build_security(parse_web_config(WEB_CONFIG), "web.yml")
    with serving(endpoints, security, HttpLimits(read_header_timeout=2.0)) as srv:
        yield srv


def answer(server: ExporterHTTPServer, raw: bytes) -> bytes:
    with socket.create_connection(server.server_address, timeout=5) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed while we were still sending
            pass
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(requests(), st.binary(min_size=1, max_size=200)))
def test_any_request_gets_a_status_line(
    server: ExporterHTTPServer, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        data = answer(server, raw)
    # Only blank lines (skipped before a request, RFC 9112) may go unanswered.
    if raw.strip(b"\r\n") or data:
        assert STATUS_LINE.match(data), (raw, data[:200])
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
