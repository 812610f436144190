"""Tables of request heads against what the server makes of them: limits, framing, errors."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from exporter.web.limits import HttpLimits
from exporter.web.wire import (
    Request,
    RequestError,
    body_length,
    head_end,
    parse_head,
    skip_blank_lines,
)

LIMITS = HttpLimits(max_header_bytes=200, max_header_fields=3, max_body_bytes=100)


@pytest.mark.parametrize(
    ("buffer", "end"),
    [
        (b"GET / HTTP/1.1\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next", 27),  # pipelined
        (b"GET / HTTP/1.1\n\n", 16),  # bare LF, as http.server and Go accept
        (b"GET / HTTP/1.1\nHost: a\n\n", 24),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 3 + b"\r\n", 36),
    ],
)
def test_head_end(buffer: bytes, end: int | None) -> None:
    assert head_end(buffer, LIMITS) == end


@pytest.mark.parametrize(
    ("buffer", "status"),
    [
        (b"GET /" + b"a" * 300, HTTPStatus.REQUEST_URI_TOO_LONG),  # no line end yet
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 300, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 4, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 4 + b"\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
    ],
    ids=["request-line", "head-bytes", "fields-incomplete", "fields-complete"],
)
def test_head_limits(buffer: bytes, status: HTTPStatus) -> None:
    with pytest.raises(RequestError) as caught:
        head_end(buffer, LIMITS)
    assert caught.value.status == status


def test_leading_blank_lines_are_skipped() -> None:
    buffer = bytearray(b"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n")
    skip_blank_lines(buffer)
    assert buffer == b"GET / HTTP/1.1\r\n\r\n"


def test_parse_head() -> None:
    request = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\naccept-encoding:  gzip \r\n\r\n")
    assert (request.method, request.target, request.path, request.version) == (
        "GET",
        "/metrics?x=1",
        "/metrics",
        (1, 1),
    )
    assert request.header("Accept-Encoding") == "gzip"
    assert request.header("Missing", "none") == "none"
    assert request.keep_alive


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"\x00\x01garbage that is not http\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /\r\n\r\n", HTTPStatus.BAD_REQUEST),  # HTTP/0.9: answered without a status line
        (b"GET  / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"G(T / HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / http/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/2.0\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nNo colon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nSpace : x\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"\r\n\r\n", HTTPStatus.BAD_REQUEST),
    ],
)
def test_malformed_heads(head: bytes, status: HTTPStatus) -> None:
    with pytest.raises(RequestError) as caught:
        parse_head(head)
    assert caught.value.status == status


def request_with(*headers: tuple[str, str]) -> Request:
    return Request("POST", "/-/reload", (1, 1), headers)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((), 0),
        ((("Content-Length", "0"),), 0),
        ((("Content-Length", "12"),), 12),
        ((("content-length", "100"),), 100),
        ((("Content-Length", "7"), ("Content-Length", "7")), 7),
        # Unicode digits pass str.isdigit() and crashed the handler with a traceback.
        ((("Content-Length", "³"),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "١٢"),), HTTPStatus.BAD_REQUEST),  # Arabic-Indic digits
        ((("Content-Length", "-1"),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "+1"),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "1 2"),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "5, 5"),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", ""),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "9" * 40),), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "1"), ("Content-Length", "2")), HTTPStatus.BAD_REQUEST),
        ((("Content-Length", "101"),), HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        ((("Transfer-Encoding", "chunked"),), HTTPStatus.LENGTH_REQUIRED),
    ],
)
def test_body_length(headers: tuple[tuple[str, str], ...], expected: int | HTTPStatus) -> None:
    request = request_with(*headers)
    if isinstance(expected, HTTPStatus):
        with pytest.raises(RequestError) as caught:
            body_length(request, LIMITS)
        assert caught.value.status == expected
    else:
        assert body_length(request, LIMITS) == expected


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ((1, 1), "", True),
        ((1, 1), "close", False),
        ((1, 1), "Keep-Alive, Close", False),
        ((1, 0), "", False),
        ((1, 0), "keep-alive", True),
    ],
)
def test_keep_alive(version: tuple[int, int], connection: str, keep_alive: bool) -> None:
    headers = (("Connection", connection),) if connection else ()
    assert Request("GET", "/", version, headers).keep_alive is keep_alive
