"""Benchmark: /metrics latency from another process, body sizes, render time and RSS per thing.

The exporter is the real composition root (config, sources, fleet state, exposition, server)
fed by an in-memory synthetic IoT client (bench/_common.py: SyntheticIoT), so fleets of
100,000 things fill in seconds; the SDK's cost is what bench/exporter_poll.py measures.
A client subprocess then scrapes over HTTP on 127.0.0.1, as Prometheus would, over one
keep-alive connection, with and without `Accept-Encoding: gzip`.

    .venv/bin/python bench/exporter_scrape.py --things 10000,100000 --scrapes 200
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench._common import (
    SyntheticIoT,
    fleet_render_seconds,
    load_average,
    machine,
    median,
    now_utc,
    percentile,
    rss_bytes,
    serve,
    write_config,
)
from exporter.app import Exporter
from exporter.config import Config, load_config


def scrape_client(port: int, scrapes: int, gzip: bool) -> None:
    """Child process: sequential GETs over one connection; prints latencies (s) as JSON."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    size = 0
    for i in range(scrapes + 3):
        start = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"status {response.status}")
        size = len(body)
        if i >= 3:  # the first few warm the connection and the server's thread
            latencies.append(elapsed)
    conn.close()
    print(json.dumps({"latencies": latencies, "bytes": size}))


def scrape(port: int, scrapes: int, gzip: bool) -> tuple[list[float], int]:
    command = [sys.executable, __file__, "client", str(port), str(scrapes)]
    if gzip:
        command.append("--gzip")
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout)
    return result["latencies"], result["bytes"]


def measure(things: int, scrapes: int, cycles: int) -> None:
    gc.collect()
    rss_before = rss_bytes()
    client = SyntheticIoT()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        write_config(
            path, endpoint_url="http://127.0.0.1:1", things=things, budget=10_000,
            concurrency=8, sites=50,
        )  # fmt: skip
        registry = CollectorRegistry()

        def factory(_: Config) -> Any:
            return client

        exporter = Exporter(lambda: load_config(path), factory, collectors=registry)
        cycle_seconds: list[float] = []
        for _ in range(cycles):
            client.next_cycle()
            start = time.perf_counter()
            exporter.run_pass("live")
            exporter.render_now()
            cycle_seconds.append(time.perf_counter() - start)
        gc.collect()
        rss_after = rss_bytes()
        render_text, render_gzip = fleet_render_seconds(things, cycles)
        server, port = serve(exporter)
        plain_lat, plain_bytes = scrape(port, scrapes, gzip=False)
        gzip_lat, gzip_bytes = scrape(port, scrapes, gzip=True)
        server.shutdown()
        server.server_close()
        exporter.stop()
    series = exporter.payload().plain.count(b"\n") - exporter.payload().plain.count(b"\n#")
    print(
        f"{things} things: {series} series; cycle (synthetic client, budget 10k/s) "
        f"{median(cycle_seconds[1:] or cycle_seconds):.2f} s; "
        f"render {1000 * render_text:.0f} ms text + {1000 * render_gzip:.0f} ms gzip "
        f"per cycle; RSS {(rss_after - rss_before) / 2**20:.1f} MiB = "
        f"{(rss_after - rss_before) / things / 1024:.2f} KiB/thing"
    )
    for label, lat, size in (
        ("plain", plain_lat, plain_bytes),
        ("gzip ", gzip_lat, gzip_bytes),
    ):
        print(
            f"  {label}: {size / 2**20:.2f} MiB body; {len(lat)} scrapes: median "
            f"{1000 * median(lat):.1f} ms, p99 {1000 * percentile(lat, 0.99):.1f} ms, "
            f"mean {1000 * statistics.fmean(lat):.1f} ms"
        )
    print(f"  load {load_average()}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client = argparse.ArgumentParser(description="scrape client (internal)")
        client.add_argument("mode")
        client.add_argument("port", type=int)
        client.add_argument("scrapes", type=int)
        client.add_argument("--gzip", action="store_true")
        args = client.parse_args()
        scrape_client(args.port, args.scrapes, args.gzip)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", default="10000,100000", help="comma-separated fleet sizes")
    parser.add_argument("--scrapes", type=int, default=200, help="GETs per encoding")
    parser.add_argument("--cycles", type=int, default=3, help="poll cycles before scraping")
    args = parser.parse_args()
    print(f"# exporter_scrape  {now_utc()}  {machine()}")
    for size in (int(n) for n in args.things.split(",")):
        # One fresh process per size, so RSS growth is this size's alone.
        if len(args.things.split(",")) > 1:
            subprocess.run(
                [sys.executable, __file__, "--things", str(size), "--scrapes",
                 str(args.scrapes), "--cycles", str(args.cycles), "--quiet-header"],
                check=True,
            )  # fmt: skip
        else:
            measure(size, args.scrapes, args.cycles)


if __name__ == "__main__":
    if "--quiet-header" in sys.argv:
        sys.argv.remove("--quiet-header")
        parsed = argparse.ArgumentParser()
        parsed.add_argument("--things", type=int)
        parsed.add_argument("--scrapes", type=int)
        parsed.add_argument("--cycles", type=int)
        ns = parsed.parse_args()
        measure(ns.things, ns.scrapes, ns.cycles)
    else:
        main()
