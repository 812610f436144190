"""Scrapes stay fast while hundreds of idle, silent and trickling connections are held open."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from exporter.web.limits import HttpLimits
from exporter.web.server import ExporterHTTPServer
from tests.support.endpoints import fixed_endpoints, serving
from tests.support.flood import Flood
from tests.support.promstack import wait_until

BODY = b"".join(b'flood_series{i="%d"} 1\n' % i for i in range(50_000))  # about 1.2 MB


@pytest.fixture
def server() -> Iterator[ExporterHTTPServer]:
    # A short header deadline, so the trickling connections are cut while the test runs.
    with serving(fixed_endpoints(BODY), limits=HttpLimits(read_header_timeout=1.0)) as srv:
        yield srv


def scrape(server: ExporterHTTPServer, gzip: bool) -> float:
    """One scrape on a new connection with a 1 s limit, as a tight Prometheus would; seconds."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(*server.server_address, timeout=1.0)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if gzip else {})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert len(body) > 1000
    finally:
        conn.close()
    return time.monotonic() - started


def test_scrapes_stay_fast_under_a_connection_flood(server: ExporterHTTPServer) -> None:
    baseline = statistics.median(scrape(server, gzip=True) for _ in range(5))
    threads_before = threading.active_count()
    with Flood(server.server_address, silent=150, idle=150, trickle=150) as flood:
        wait_until(
            lambda: server.open_connections >= 450 or None,
            timeout=10,
            what="the flood's 450 connections to be open",
        )
        latencies = [scrape(server, gzip=i % 2 == 0) for i in range(40)]
        threads = threading.active_count() - threads_before - 1  # less the flood's own thread
        wait_until(
            lambda: flood.reopened > 0 or None,
            timeout=10,
            what="the header deadline to cut a trickling connection",
        )
    print(
        f"\nbaseline {baseline * 1000:.1f} ms; under 450 held connections: median"
        f" {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms;"
        f" {threads} extra threads"
    )
    assert max(latencies) < 0.5
    assert threads <= 8  # the worker pool at most: never a thread per connection
