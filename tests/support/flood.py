"""Hostile connections held open against a server: silent, idle after a request, slowloris.

    with Flood(("127.0.0.1", port), silent=100, idle=100, trickle=100) as flood:
        ...  # scrape meanwhile; flood.reopened counts connections the server closed

A background thread sends one byte on each trickling connection every `trickle_interval`
seconds, never finishing the head, and reopens any connection the server closes, so the
pressure lasts as long as the block.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Self

from tests.support.promstack import StartStop

_TRICKLE = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: " + b"a" * 10_000


def _silent(sock: socket.socket) -> None:
    pass


def _idle(sock: socket.socket) -> None:
    sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: flood\r\n\r\n")
    sock.recv(65536)  # the answer; then the connection idles in keep-alive


class Flood(StartStop):
    def __init__(
        self,
        address: tuple[str, int],
        *,
        silent: int = 0,
        idle: int = 0,
        trickle: int = 0,
        trickle_interval: float = 0.2,
    ) -> None:
        self.address = address
        self.kinds: list[tuple[Callable[[socket.socket], None], int]] = [
            (_silent, silent),
            (_idle, idle),
        ]
        self.trickle_count = trickle
        self.trickle_interval = trickle_interval
        self.held: list[socket.socket] = []
        self.trickling: list[tuple[socket.socket, int]] = []
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="flood", daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return sock

    def start(self) -> Self:
        for begin, count in self.kinds:
            for _ in range(count):
                sock = self._open()
                self.held.append(sock)
                begin(sock)
        for _ in range(self.trickle_count):
            self.trickling.append((self._open(), 0))
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.trickle_interval):
            for i, (sock, sent) in enumerate(self.trickling):
                try:
                    sock.send(_TRICKLE[sent % len(_TRICKLE) : sent % len(_TRICKLE) + 1])
                    self.trickling[i] = (sock, sent + 1)
                except OSError:  # closed by the server: come back, as an attacker would
                    sock.close()
                    try:
                        self.trickling[i] = (self._open(), 0)
                        self.reopened += 1
                    except OSError:
                        pass

    def stop(self) -> None:
        """Close every connection (after a failed start too: those opened so far)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in [*self.held, *(s for s, _ in self.trickling)]:
            sock.close()
