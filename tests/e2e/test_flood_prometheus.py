"""A real Prometheus scrapes the exporter's server on time while a flood holds connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.web.server import ExporterHTTPServer
from tests.support.endpoints import fixed_endpoints, serving
from tests.support.flood import Flood
from tests.support.promstack import Prometheus, ScrapeTarget

JOB = "flood"
BODY = b"".join(b'flood_series{i="%d"} 1\n' % i for i in range(10_000))


@pytest.fixture
def server() -> Iterator[ExporterHTTPServer]:
    with serving(fixed_endpoints(BODY)) as srv:  # the default limits
        yield srv


@pytest.mark.slow
def test_prometheus_scrapes_on_time_through_a_flood(server: ExporterHTTPServer) -> None:
    # Longer than the 10 s header timeout: the trickling connections are cut and come back.
    with (
        Flood(server.server_address, silent=150, idle=150, trickle=150) as flood,
        Prometheus([ScrapeTarget(JOB, [server.address])]) as prometheus,
    ):
        prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
        # Past the first scrapes (which create the series) and one header timeout further.
        prometheus.wait_for(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 15', timeout=60)
        # Every scrape of the last 10 s succeeded, each well inside its 1 s timeout.
        assert prometheus.query(f'min_over_time(up{{job="{JOB}"}}[10s])')[0]["value"][1] == "1"
        slowest = float(
            prometheus.query(f'max_over_time(scrape_duration_seconds{{job="{JOB}"}}[10s])')[0][
                "value"
            ][1]
        )
        samples = prometheus.query(f'scrape_samples_scraped{{job="{JOB}"}}')[0]["value"][1]
        print(f"\nslowest scrape {slowest * 1000:.1f} ms; trickles reopened {flood.reopened}")
        assert slowest < 0.5
        assert samples == str(len(BODY.splitlines()))
        assert flood.reopened > 0  # the header deadline did cut the trickles
