"""The HTTP server's connections: one event loop reads and writes them, a few threads answer.

A thread per connection let idle, silent and trickling clients hold a thread each, without
limit. Here a connection costs a socket and a buffer until its request is complete: one
thread accepts, runs TLS handshakes, reads request heads against a deadline and size limits,
and writes responses as fast as each client takes them. Only a complete request reaches a
worker thread, which computes the answer without touching the network.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus

from exporter.web.limits import HttpLimits
from exporter.web.tls import peer_sans, sans_allowed
from exporter.web.wire import (
    Request,
    RequestError,
    body_length,
    error_response,
    expects_continue,
    head_end,
    parse_head,
    skip_blank_lines,
)

log = logging.getLogger(__name__)

WORKERS = 8
_RECV_BYTES = 64 * 1024
# A send copies what fits in the socket buffer; slicing a memoryview copies nothing, so a
# plain socket takes big slices (fewer system calls for a 30 MB body). TLS writes records of
# 16 KiB and must retry with the same slice, so it takes smaller ones.
_SEND_BYTES = 8 * 1024 * 1024
_TLS_SEND_BYTES = 256 * 1024
_ACCEPTS_PER_WAKE = 64
_TICK = 0.25  # how often deadlines are checked, at the least
_LINGER_SECONDS = 2.0  # after a refusal, let the client's unread request drain before closing
_LINGER_BYTES = 1024 * 1024
_REFUSAL_LOG_SECONDS = 60.0
_TLS_HANDSHAKE_RECORD = 0x16
_PLAIN_HTTP_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 25\r\nConnection: close\r\n\r\ntoo many open connections"
)


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers: the status line and headers as bytes, then the body's parts."""

    head: bytes
    body: tuple[bytes, ...] = ()
    close: bool = False


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    """What a new connection is held to; taken once per connection, at accept."""

    context: ssl.SSLContext | None
    allowed_sans: frozenset[str] | None = None


Handler = Callable[[Request, str], Response]


class _State(Enum):
    PEEK = "peek"  # TLS port: is the first byte a TLS handshake?
    HANDSHAKE = "handshake"
    READ = "read"
    BUSY = "busy"  # a worker is answering
    WRITE = "write"
    LINGER = "linger"


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    client: str
    state: _State
    deadline: float
    tls: TLSPolicy
    inbuf: bytearray = field(default_factory=bytearray)
    out: deque[memoryview] = field(default_factory=deque)
    close_after_write: bool = False
    request: Request | None = None  # parsed head, while its body arrives
    body_length: int = 0
    idle: bool = True  # no byte of the next request yet
    lingered: int = 0
    eof: bool = False  # the client has stopped sending
    send_bytes: int = _SEND_BYTES
    events: int = 0  # what it is registered for in the selector (0: not registered)


class HttpLoop:
    """Serves `handler` on a listening socket until stop(); see the module docstring."""

    def __init__(
        self,
        listener: socket.socket,
        handler: Handler,
        *,
        tls_policy: Callable[[], TLSPolicy],
        limits: HttpLimits,
        server_name: str,
        workers: int = WORKERS,
    ) -> None:
        self._listener = listener
        self._handler = handler
        self._tls_policy = tls_policy
        self._limits = limits
        self._server_name = server_name
        self._selector = selectors.DefaultSelector()
        self._connections: set[_Connection] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self._done: deque[tuple[_Connection, Response]] = deque()
        self._done_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._running = threading.Event()
        self._stopped = threading.Event()
        self.refused = 0  # connections turned away at max_connections
        self._next_refusal_log = 0.0
        self._next_accept_error_log = 0.0
        self._accept_paused = False

    # --- life cycle -------------------------------------------------------------------------

    def run(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._running.set()
        next_sweep = time.monotonic() + _TICK
        try:
            while not self._stopping.is_set():
                try:
                    next_sweep = self._turn(next_sweep)
                except Exception:  # a bug: log it and keep serving, never end the loop
                    log.exception("http server loop error")
        finally:
            for connection in list(self._connections):
                self._close(connection)
            self._selector.close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._wake_r.close()
            self._wake_w.close()
            self._stopped.set()

    def _turn(self, next_sweep: float) -> float:
        """One pass: wait for events, handle them and finished answers, sweep deadlines."""
        for key, events in self._selector.select(timeout=_TICK):
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj is self._wake_r:
                self._drain_wake()
            else:
                self._on_event(key.data, events)
        self._finish_answers()
        now = time.monotonic()
        if now < next_sweep:
            return next_sweep
        self._sweep(now)
        self._resume_accepting()
        return now + _TICK

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake()
        if self._running.is_set():
            self._stopped.wait(timeout)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def _wake(self) -> None:
        # OSError: full (a wake is pending anyway) or closed (stopping).
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    # --- accepting --------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and the like: say so, keep serving the rest
                self._pause_accepting(error)
                return
            client = str(address[0]) if isinstance(address, tuple) else str(address)
            policy = self._tls_policy()
            if len(self._connections) >= self._limits.max_connections and not self._evict_idle():
                self._refuse(sock, policy)
                continue
            try:
                sock.setblocking(False)
                # Headers and body go out in separate sends; Nagle would hold a small body
                # back for the client's delayed ACK (40 ms a scrape, measured).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            now = time.monotonic()
            state = _State.PEEK if policy.context is not None else _State.READ
            # Not idle: the handshake and the first request's head share one deadline.
            connection = _Connection(
                sock, client, state, now + self._limits.read_header_timeout, policy, idle=False
            )
            self._connections.add(connection)
            self._want(connection, selectors.EVENT_READ)

    def _evict_idle(self) -> bool:
        """Close the keep-alive connection idle the longest, if any, to make room.

        Otherwise a client could fill every slot with connections it keeps idle after one
        request and lock scrapers out for the whole idle timeout; a connection that is
        between requests loses nothing it sent.
        """
        idle = [c for c in self._connections if c.state is _State.READ and c.idle and not c.inbuf]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _pause_accepting(self, error: OSError) -> None:
        """Stop watching the listener until the next sweep: the connection that could not
        be accepted is still queued, so the listener stays ready and the loop would spin
        on it (as Go's server does, wait a little before accepting again)."""
        now = time.monotonic()
        if now >= self._next_accept_error_log:
            self._next_accept_error_log = now + _REFUSAL_LOG_SECONDS
            log.warning(
                "cannot accept connections; retrying every sweep (is the file limit below"
                " --web.max-connections?)",
                extra={"error": str(error)},
            )
        if not self._accept_paused:
            self._selector.unregister(self._listener)
            self._accept_paused = True

    def _resume_accepting(self) -> None:
        if self._accept_paused:
            self._selector.register(self._listener, selectors.EVENT_READ, None)
            self._accept_paused = False

    def _refuse(self, sock: socket.socket, policy: TLSPolicy) -> None:
        """Turn a connection away at once: a 503 for plain HTTP, a close for TLS."""
        self.refused += 1
        now = time.monotonic()
        if now >= self._next_refusal_log:
            # Once a minute at most: a flood must not flood the log as well.
            self._next_refusal_log = now + _REFUSAL_LOG_SECONDS
            log.warning(
                "too many open connections; refusing new ones (see --web.max-connections)",
                extra={"max_connections": self._limits.max_connections, "refused": self.refused},
            )
        try:
            sock.setblocking(False)
            if policy.context is None:
                sock.send(_TOO_MANY)
        except OSError:
            pass
        finally:
            sock.close()

    # --- events -----------------------------------------------------------------------------

    def _on_event(self, connection: _Connection, events: int) -> None:
        try:
            if connection.state is _State.PEEK:
                self._peek(connection)
            elif connection.state is _State.HANDSHAKE:
                self._handshake(connection)
            elif connection.state is _State.READ:
                self._read(connection)
            elif connection.state is _State.WRITE:
                self._write(connection)
            elif connection.state is _State.LINGER:
                self._linger(connection)
        except (ssl.SSLError, OSError) as error:
            log.debug(
                "http connection error", extra={"client": connection.client, "error": str(error)}
            )
            self._close(connection)
        except Exception:  # a bug: lose this connection, never the loop
            log.exception("http connection failed", extra={"client": connection.client})
            self._close(connection)

    def _peek(self, connection: _Connection) -> None:
        try:
            first = connection.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:  # a spurious wake-up: nothing to read yet
            return
        if not first:
            self._close(connection)
            return
        if first[0] != _TLS_HANDSHAKE_RECORD:
            # Plain HTTP on the TLS port: answer in plain text, as Go's servers do, so the
            # operator sees why rather than a reset connection.
            log.debug("plain HTTP request on the TLS port", extra={"client": connection.client})
            self._respond_and_close(connection, _PLAIN_HTTP_ON_TLS)
            return
        context = connection.tls.context
        assert context is not None  # PEEK is for TLS connections only
        connection.sock = context.wrap_socket(
            connection.sock, server_side=True, do_handshake_on_connect=False
        )
        connection.send_bytes = _TLS_SEND_BYTES
        connection.state = _State.HANDSHAKE
        self._handshake(connection)

    def _handshake(self, connection: _Connection) -> None:
        tls = connection.sock
        assert isinstance(tls, ssl.SSLSocket)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._want(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(connection, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as error:  # no client certificate, bad version, ...
            log.debug(
                "tls handshake failed", extra={"client": connection.client, "error": str(error)}
            )
            self._close(connection)
            return
        allowed = connection.tls.allowed_sans
        if allowed is not None and not sans_allowed(peer_sans(tls.getpeercert()), allowed):
            # Go fails the handshake (VerifyPeerCertificate); Python's ssl has no such hook,
            # so the connection ends before any request is read.
            log.debug("client certificate has no allowed SAN", extra={"client": connection.client})
            self._close(connection)
            return
        connection.state = _State.READ
        self._read(connection)

    def _read(self, connection: _Connection) -> None:
        while True:
            try:
                chunk = connection.sock.recv(_RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                self._want(connection, selectors.EVENT_WRITE)
                return
            if not chunk:
                connection.eof = True
                break
            if connection.idle:
                connection.idle = False
                connection.deadline = time.monotonic() + self._limits.read_header_timeout
            connection.inbuf += chunk
            if len(connection.inbuf) > self._limits.max_header_bytes + self._limits.max_body_bytes:
                break  # enough to decide on; the rest waits in the kernel
        self._want(connection, selectors.EVENT_READ)
        self._take_request(connection)
        if connection.eof and connection.state is _State.READ:
            self._end_of_input(connection)

    def _end_of_input(self, connection: _Connection) -> None:
        skip_blank_lines(connection.inbuf)
        if connection.inbuf or connection.request is not None:
            # Half a request, then the client stopped sending: say so, rather than vanish.
            error = RequestError(HTTPStatus.BAD_REQUEST, "incomplete request")
            self._respond_and_close(connection, error_response(error, self._server_name))
        else:
            self._close(connection)

    def _take_request(self, connection: _Connection) -> None:
        """Dispatch the request in inbuf once it is complete; answer a bad one at once."""
        try:
            if connection.request is None:
                skip_blank_lines(connection.inbuf)
                end = head_end(connection.inbuf, self._limits)
                if end is None:
                    return
                connection.request = parse_head(bytes(connection.inbuf[:end]))
                del connection.inbuf[:end]
                connection.body_length = body_length(connection.request, self._limits)
                if connection.body_length and expects_continue(connection.request):
                    self._send_now(connection, b"HTTP/1.1 100 Continue\r\n\r\n")
        except RequestError as error:
            log.debug(
                "bad http request", extra={"client": connection.client, "error": error.reason}
            )
            self._respond_and_close(connection, error_response(error, self._server_name))
            return
        if len(connection.inbuf) < connection.body_length:
            return
        request = connection.request
        body = bytes(connection.inbuf[: connection.body_length])
        del connection.inbuf[: connection.body_length]
        connection.request = None
        connection.state = _State.BUSY
        self._want(connection, 0)
        future = self._pool.submit(
            self._handler,
            Request(request.method, request.target, request.version, request.headers, body),
            connection.client,
        )
        future.add_done_callback(lambda done: self._answered(connection, done))

    def _answered(self, connection: _Connection, future: Future[Response]) -> None:
        # In the worker thread: hand the answer to the loop, which alone touches sockets.
        if future.cancelled():
            return  # the server is stopping: its connections are being closed anyway
        try:
            response = future.result()
        except Exception:
            log.exception("http request failed", extra={"client": connection.client})
            error = RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error")
            response = Response(error_response(error, self._server_name), close=True)
        with self._done_lock:
            self._done.append((connection, response))
        self._wake()

    def _finish_answers(self) -> None:
        while True:
            with self._done_lock:
                if not self._done:
                    return
                connection, response = self._done.popleft()
            if connection not in self._connections:
                continue
            connection.out.extend(memoryview(part) for part in (response.head, *response.body))
            connection.close_after_write = response.close
            connection.state = _State.WRITE
            connection.deadline = time.monotonic() + self._limits.write_stall_timeout
            self._on_event(connection, selectors.EVENT_WRITE)

    def _write(self, connection: _Connection) -> None:
        progressed = False
        while connection.out:
            part = connection.out[0]
            try:
                sent = connection.sock.send(part[: connection.send_bytes])
            except (BlockingIOError, ssl.SSLWantWriteError):
                break
            except ssl.SSLWantReadError:
                self._want(connection, selectors.EVENT_READ)
                return
            progressed = progressed or sent > 0
            if sent >= len(part):
                connection.out.popleft()
            else:
                connection.out[0] = part[sent:]
        if progressed:
            connection.deadline = time.monotonic() + self._limits.write_stall_timeout
        if connection.out:
            self._want(connection, selectors.EVENT_WRITE)
            return
        if connection.close_after_write:
            self._start_linger(connection)
            return
        # Keep-alive: wait for the next request, which may already be in the buffers.
        connection.state = _State.READ
        connection.idle = not connection.inbuf
        connection.deadline = time.monotonic() + (
            self._limits.idle_timeout if connection.idle else self._limits.read_header_timeout
        )
        self._read(connection)

    def _send_now(self, connection: _Connection, data: bytes) -> None:
        """A small interim answer (100 Continue), best effort: a client that waits for it
        sends its body after a second anyway."""
        with contextlib.suppress(BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            connection.sock.send(data)

    def _respond_and_close(self, connection: _Connection, data: bytes) -> None:
        connection.out.append(memoryview(data))
        connection.close_after_write = True
        connection.state = _State.WRITE
        connection.deadline = time.monotonic() + self._limits.write_stall_timeout
        self._write(connection)

    def _start_linger(self, connection: _Connection) -> None:
        """Close after a refusal without resetting the connection under the client's feet:
        closing with its request unread would send a reset that can discard our answer."""
        if isinstance(connection.sock, ssl.SSLSocket):
            self._close(connection)
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.state = _State.LINGER
        connection.deadline = time.monotonic() + _LINGER_SECONDS
        self._want(connection, selectors.EVENT_READ)
        self._linger(connection)

    def _linger(self, connection: _Connection) -> None:
        while True:
            try:
                chunk = connection.sock.recv(_RECV_BYTES)
            except BlockingIOError:
                return
            connection.lingered += len(chunk)
            if not chunk or connection.lingered > _LINGER_BYTES:
                self._close(connection)
                return

    # --- bookkeeping ------------------------------------------------------------------------

    def _want(self, connection: _Connection, events: int) -> None:
        if events == connection.events:
            return
        if connection.events == 0:
            self._selector.register(connection.sock, events, connection)
        elif events == 0:
            self._selector.unregister(connection.sock)
        else:
            self._selector.modify(connection.sock, events, connection)
        connection.events = events

    def _sweep(self, now: float) -> None:
        """Close every connection past its deadline, except those a worker is answering."""
        for connection in list(self._connections):
            if connection.state is not _State.BUSY and now >= connection.deadline:
                log.debug(
                    "http connection timed out",
                    extra={"client": connection.client, "state": connection.state.value},
                )
                self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if connection.events:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(connection.sock)
            connection.events = 0
        self._connections.discard(connection)
        connection.out.clear()
        try:
            connection.sock.close()
        except OSError as error:
            if error.errno != errno.EBADF:
                log.debug("http close failed", extra={"error": str(error)})
