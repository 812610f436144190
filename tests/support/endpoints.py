"""Endpoints that serve fixed bytes, for tests of the HTTP server on its own."""

from __future__ import annotations

from exporter.exposition import Payload
from exporter.server import Endpoints, ReloadResult


def fixed_endpoints(body: bytes, reload_message: str = "reloaded") -> Endpoints:
    """/metrics serves body (cached once, plain and gzip), always ready, reload succeeds."""
    payload = Payload.of(body)
    return Endpoints(
        "/metrics", lambda: payload, lambda: True, lambda: ReloadResult(True, reload_message)
    )
