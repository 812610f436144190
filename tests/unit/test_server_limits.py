"""The server under hostile clients, over real loopback sockets: timeouts, caps, bad input."""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import pytest

from exporter.web.limits import HttpLimits
from exporter.web.server import ExporterHTTPServer
from tests.support.endpoints import fixed_endpoints, serving
from tests.support.paths import REPO_ROOT
from tests.support.promstack import wait_until

SMALL_BODY = b"# HELP x y\n# TYPE x gauge\nx 1.0\n"


ServerFactory = Callable[..., ExporterHTTPServer]


@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    started: list[ExporterHTTPServer] = []

    def start(body: bytes = SMALL_BODY, serve: bool = True, **limits: Any) -> ExporterHTTPServer:
        endpoints = fixed_endpoints(body)
        server = ExporterHTTPServer(("127.0.0.1", 0), endpoints, limits=HttpLimits(**limits))
        if serve:
            server.serve_in_thread()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def connect(server: ExporterHTTPServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(server.server_address, timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(server: ExporterHTTPServer, raw: bytes) -> bytes:
    """Send raw bytes, stop sending, and read the whole answer."""
    with connect(server) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def get(server: ExporterHTTPServer, path: str = "/metrics", timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection(*server.server_address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def closed_by_server(sock: socket.socket) -> bool | None:
    """True once the server has closed sock (EOF or reset); None while it is open."""
    sock.setblocking(False)
    try:
        return True if sock.recv(65536) == b"" else None
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # Unicode digits pass str.isdigit(): 97 in 20,000 hostile requests ended in a traceback.
        (b"POST /-/reload HTTP/1.1\r\nContent-Length: \xc2\xb3\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nContent-Length: \xd9\xa1\r\n\r\n", b"400"),
        (b"POST /-/reload HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n", b"413"),
        (b"POST /-/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
        (b"\x00\x01garbage that is not http\r\n\r\n", b"400"),
        (b"GET /\r\n\r\n", b"400"),
        (b"GET / HTTP/3.0\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", b"400"),  # half a head, then the client stopped
        (b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nCookie: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
        (b"BREW /pot HTTP/1.1\r\n\r\n", b"501"),
    ],
    ids=[
        "superscript-three",
        "arabic-indic-one",
        "too-large",
        "chunked",
        "garbage",
        "http-0.9",
        "http-3",
        "half-a-head",
        "long-request-line",
        "big-header",
        "many-headers",
        "unknown-method",
    ],
)
def test_bad_requests_get_a_status_line_and_no_traceback(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture, raw: bytes, status: bytes
) -> None:
    server = start_server()
    with caplog.at_level(logging.DEBUG):
        answer = exchange(server, raw)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert get(server) == 200


def test_a_request_then_a_half_close_is_answered(start_server: ServerFactory) -> None:
    answer = exchange(start_server(), b"GET /-/healthy HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"Healthy.\n")


def test_pipelined_requests_are_answered_in_order(start_server: ServerFactory) -> None:
    answer = exchange(
        start_server(),
        b"GET /-/healthy HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
        b"POST /-/reload HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /-/ready HTTP/1.1\r\n\r\n",
    )
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200", b"404", b"200", b"200"]


def test_expect_100_continue(start_server: ServerFactory) -> None:
    with connect(start_server()) as sock:
        sock.sendall(
            b"POST /-/reload HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_trickled_head_is_cut_off_at_the_header_deadline(start_server: ServerFactory) -> None:
    # Slowloris: a byte every 0.1 s would keep a per-recv timeout from ever firing.
    server = start_server(read_header_timeout=1.0)
    with connect(server) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            if closed_by_server(sock):
                closed = True
                break
            sock.setblocking(True)
            time.sleep(0.1)
        assert closed
        assert 0.9 < time.monotonic() - started < 2.5


def test_a_silent_connection_is_closed_at_the_header_deadline(start_server: ServerFactory) -> None:
    server = start_server(read_header_timeout=0.5)
    with connect(server) as sock:
        started = time.monotonic()
        wait_until(lambda: closed_by_server(sock), timeout=3, what="the silent connection to close")
        assert time.monotonic() - started >= 0.45


def test_an_idle_keep_alive_connection_is_closed(start_server: ServerFactory) -> None:
    server = start_server(idle_timeout=0.5, read_header_timeout=5.0)
    with connect(server) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        started = time.monotonic()
        wait_until(lambda: closed_by_server(sock), timeout=3, what="the idle connection to close")
        assert time.monotonic() - started >= 0.45


def test_connections_beyond_the_cap_are_refused_at_once(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(max_connections=5)
    with ExitStack() as stack:
        held = [stack.enter_context(connect(server)) for _ in range(5)]
        wait_until(lambda: server.open_connections == 5 or None, timeout=5, what="5 connections")
        started = time.monotonic()
        with connect(server) as extra:
            answer = read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert time.monotonic() - started < 0.5
        with connect(server) as another:
            assert read_all(another).startswith(b"HTTP/1.1 503 ")
        warnings = [r for r in caplog.records if "too many open connections" in r.getMessage()]
        assert len(warnings) == 1  # once a minute at most, however many are refused
        held[0].close()
        wait_until(lambda: server.open_connections == 4 or None, timeout=5, what="a free slot")
        assert get(server) == 200


def test_at_the_cap_the_longest_idle_keep_alive_connection_makes_room(
    start_server: ServerFactory,
) -> None:
    # Connections kept idle after one request would otherwise hold every slot for the whole
    # idle timeout; those still sending a request (or silent) are not evicted, see above.
    server = start_server(max_connections=3)
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(server)) for _ in range(3)]
        for sock in idle:
            sock.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert get(server) == 200  # a fourth connection is served
        wait_until(lambda: closed_by_server(idle[0]), timeout=5, what="the oldest idle to close")
        assert server.open_connections <= 3


def test_a_client_that_stops_reading_is_dropped(start_server: ServerFactory) -> None:
    server = start_server(body=b"x" * (8 << 20), write_stall_timeout=0.5)
    with connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        wait_until(lambda: server.open_connections == 0 or None, timeout=5, what="the drop")


def test_a_slow_reader_gets_the_whole_body(start_server: ServerFactory) -> None:
    # Slower overall than the stall timeout allows, but never stalled that long.
    body = b"x" * (4 << 20)
    server = start_server(body=body, write_stall_timeout=0.3)
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        started, data = time.monotonic(), b""
        while chunk := sock.recv(256 * 1024):
            data += chunk
            time.sleep(0.02)
        assert data.endswith(body)
        assert time.monotonic() - started > 0.3


def test_the_listen_queue_takes_100_connects_while_nothing_accepts(
    start_server: ServerFactory,
) -> None:
    # With socketserver's backlog of 5, connects past the queue wait ~1 s for a SYN retransmit.
    server = start_server(serve=False)
    with ExitStack() as stack:
        slowest = 0.0
        for _ in range(100):
            started = time.monotonic()
            stack.enter_context(connect(server, timeout=0.5))
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5
        server.serve_in_thread()
        assert get(server) == 200


def test_idle_connections_cost_no_threads(start_server: ServerFactory) -> None:
    server = start_server()
    assert get(server) == 200
    before = threading.active_count()
    with ExitStack() as stack:
        for _ in range(300):
            stack.enter_context(connect(server))
        wait_until(lambda: server.open_connections == 300 or None, timeout=10, what="300 open")
        assert get(server) == 200
        assert threading.active_count() <= before + 8  # at most the worker pool fills up


def test_a_handler_bug_is_a_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> NoReturn:
        raise RuntimeError("a bug")

    endpoints = fixed_endpoints(b"x 1\n")
    with serving(dataclasses.replace(endpoints, payload=broken)) as server:
        assert get(server) == 500
        assert get(server, "/-/healthy") == 200
    # A bug, unlike bad input, is logged with its traceback.
    assert [r.getMessage() for r in caplog.records if r.exc_info] == ["http request failed"]


_SERVER_WITH_FEW_FILES = """
import logging, resource, sys
from exporter.web.limits import HttpLimits
from exporter.web.server import ExporterHTTPServer
from tests.support.endpoints import fixed_endpoints
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
server = ExporterHTTPServer(
    ("127.0.0.1", 0), fixed_endpoints(b"x 1\\n"), limits=HttpLimits(max_connections=500)
)
# --web.max-connections above the process's file limit: accept() fails with EMFILE.
resource.setrlimit(resource.RLIMIT_NOFILE, (40, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
server.serve_in_thread()
print(server.server_address[1], flush=True)
sys.stdin.read()
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_files_pauses_accepting_instead_of_spinning(tmp_path: Path) -> None:
    log_file = tmp_path / "stderr.log"
    with log_file.open("w") as stderr_sink:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_WITH_FEW_FILES],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_sink,
            text=True,
        )
    assert process.stdout is not None
    assert process.stdin is not None
    with ExitStack() as stack:
        try:
            port = int(process.stdout.readline())
            clients = [
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                for _ in range(60)
            ]
            before = _cpu_seconds(process.pid)
            time.sleep(1.0)  # a rate: how much CPU the loop burns while the files run out
            spent = _cpu_seconds(process.pid) - before
            for client in clients:
                client.close()

            def answered() -> bool | None:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return True if read_all(sock).startswith(b"HTTP/1.1 200") else None

            wait_until(answered, timeout=10, what="the server to accept again")
        finally:
            process.stdin.close()
            process.wait(timeout=10)
    stderr = log_file.read_text()
    assert spent < 0.3  # spinning on the ready listener burns a whole core
    assert stderr.count("cannot accept connections") == 1  # once, not once per turn
