"""HTTP/1.1 on the wire, without I/O: where a request head ends, what it says, response heads."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass, field
from http import HTTPStatus

from exporter.web.limits import HttpLimits

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_RE = re.compile(r"HTTP/([0-9])\.([0-9])")
_DIGITS_RE = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes "³"
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class RequestError(Exception):
    """A request the server answers with `status` and closes; `reason` is the body's text."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; header names keep their case, lookups ignore it."""

    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    _index: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def header(self, name: str, default: str = "") -> str:
        """The first value of a header (case-insensitive), or default."""
        if not self._index:
            for key, value in reversed(self.headers):
                self._index[key.lower()] = value
        return self._index.get(name.lower(), default)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.header("Connection").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens


def skip_blank_lines(buffer: bytearray) -> None:
    """Drop the empty lines a client may send before a request (RFC 9112, section 2.2)."""
    start = 0
    while buffer[start : start + 2] == b"\r\n" or buffer[start : start + 1] == b"\n":
        start += 2 if buffer[start : start + 1] == b"\r" else 1
    if start:
        del buffer[:start]


def head_end(buffer: bytes | bytearray, limits: HttpLimits) -> int | None:
    """Where the head in buffer ends (just past its blank line); None while incomplete.

    RequestError once the head, complete or not, breaks a limit: a client may not make the
    server hold more than max_header_bytes of it.
    """
    ends = [i + n for sep, n in ((b"\n\r\n", 3), (b"\n\n", 2)) if (i := buffer.find(sep)) >= 0]
    end = min(ends) if ends else None
    seen = buffer[:end] if end is not None else buffer
    line_end = seen.find(b"\n")
    if (line_end if line_end >= 0 else len(seen)) > limits.max_header_bytes:
        raise RequestError(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    if len(seen) > limits.max_header_bytes:
        raise RequestError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            f"request head over {limits.max_header_bytes} bytes",
        )
    fields = seen.count(b"\n") - 1 - (end is not None)  # less the request and blank lines
    if fields > limits.max_header_fields:
        raise RequestError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            f"more than {limits.max_header_fields} header fields",
        )
    return end


def parse_head(head: bytes) -> Request:
    """The request line and headers of a complete head; RequestError if malformed."""
    lines = head.decode("latin-1").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise RequestError(HTTPStatus.BAD_REQUEST, "empty request")
    method, target, version = _request_line(lines[0])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise RequestError(HTTPStatus.BAD_REQUEST, "folded header lines are not allowed")
        name, colon, value = line.partition(":")
        if not colon or _TOKEN_RE.fullmatch(name) is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, "malformed header line")
        value = value.strip(" \t")
        if _BAD_VALUE_RE.search(value):
            raise RequestError(HTTPStatus.BAD_REQUEST, "control character in a header value")
        headers.append((name, value))
    return Request(method, target, version, tuple(headers))


def _request_line(line: str) -> tuple[str, str, tuple[int, int]]:
    parts = line.split(" ")
    if len(parts) != 3:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed request method")
    if not target or _BAD_VALUE_RE.search(target) or "\t" in target:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed request target")
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed HTTP version")
    number = (int(match.group(1)), int(match.group(2)))
    if number[0] != 1:
        raise RequestError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    return method, target, number


def body_length(request: Request, limits: HttpLimits) -> int:
    """How many body bytes follow the head; RequestError when they cannot be framed or kept."""
    if any(name.lower() == "transfer-encoding" for name, _ in request.headers):
        # No endpoint takes a body worth streaming; chunked framing is not worth a parser.
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
    values = {value for name, value in request.headers if name.lower() == "content-length"}
    if not values:
        return 0
    if len(values) > 1 or _DIGITS_RE.fullmatch(next(iter(values))) is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
    length = int(next(iter(values)))
    if length > limits.max_body_bytes:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {limits.max_body_bytes} bytes"
        )
    return length


def expects_continue(request: Request) -> bool:
    return request.header("Expect").strip().lower() == "100-continue"


def response_head(status: HTTPStatus, headers: list[tuple[str, str]], server: str) -> bytes:
    """Status line and headers of an HTTP/1.1 response, with Date and Server."""
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Server: {server}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


def error_response(error: RequestError, server: str) -> bytes:
    """The whole answer to a request the server refuses before any handler sees it."""
    body = f"{error.reason}\n".encode()
    head = response_head(
        error.status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
        server,
    )
    return head + body
