"""Benchmark: memory over a long run: RSS and its slope, tracemalloc's top sites, reloads.

The real composition root (exporter.app.Exporter, with a config file on disk) is fed by the
in-memory synthetic IoT client (bench/_common.py: SyntheticIoT) on a manual clock, so
10,000 poll cycles take minutes. Each cycle is `run_pass("live")` then `render_now()`, as
the scheduler and renderer do. About 5% of things move each cycle (so disconnect counters
grow); every `--reload-every` cycles the config file is rewritten (in turn: unchanged,
labels changed, thing list changed, both) and reloaded, so things leave and join. The real
ExporterHTTPServer serves /metrics on 127.0.0.1 to a scraper subprocess that GETs it all
through the run, plain and gzip, over keep-alive connections it renews now and then.

Figures: RSS every `--sample-every` cycles, the least-squares slope after `--warmup`
cycles (target: under 1 MiB per 1,000 cycles), and with `--tracemalloc` the allocation
sites that grew most between the end of the warm-up and the end. Then, in fresh processes
with the production boto3 client factory: RSS over `--reloads` reloads that keep the AWS
settings (the client should be kept: issue 11's finding 8) and the clients created, against
`--contrast-reloads` reloads that change an AWS setting each time (a new client each).

    .venv/bin/python bench/exporter_soak.py
    .venv/bin/python bench/exporter_soak.py --tracemalloc --cycles 3000
"""

from __future__ import annotations

import argparse
import gc
import gzip
import http.client
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from bench._common import (
    SyntheticIoT,
    bench_client_factory,
    load_average,
    machine,
    median,
    now_utc,
    percentile,
    rss_bytes,
    serve,
    thing_names,
)
from exporter.app import Exporter
from exporter.config import Config, load_config
from exporter.web.payload import Payload
from iot_simulator.clock import ManualClock

MIB = 2**20
# Observations must be plausible against the clock: start it well after the synthetic
# client's timestamps (which begin at 1,700,000,000 and move 60 s per move).
CLOCK_START = 1_700_000_000.0 + 2 * 86_400
POLL_INTERVAL = 60.0
SITES = 50
# The scraper subprocess gives up after this long, whatever happens to its parent.
SCRAPER_MAX_SECONDS = 4 * 3600


# -- the config file and its revisions ---------------------------------------------------


@dataclass
class Revisions:
    """The config file as an operator might edit it: labels and thing list change in turn.

    The pool holds 10% more names than are listed; a change of the list moves the window
    of left-out names by half its width, so about 5% of things leave and 5% join.
    """

    path: Path
    things: int
    concurrency: int
    read_timeout: float = 10.0
    labels_rev: int = 0
    list_rev: int = 0
    reloads: int = 0

    def __post_init__(self) -> None:
        self.pool = thing_names(self.things + max(self.things // 10, 1))

    def names(self) -> list[str]:
        spare = len(self.pool) - self.things
        start = (self.list_rev * max(spare // 2, 1)) % len(self.pool)
        left_out = {(start + i) % len(self.pool) for i in range(spare)}
        return [name for i, name in enumerate(self.pool) if i not in left_out]

    def document(self) -> dict[str, Any]:
        listed: list[dict[str, Any]] = []
        for name in self.names():
            index = int(name.rsplit("-", 1)[1])
            labels = {"site": f"plant-{(index + self.labels_rev) % SITES}"}
            if self.labels_rev % 3 == 1 and index % 10 == 0:
                labels["rack"] = f"r{index % 7}"  # a label name that comes and goes
            listed.append({"name": name, "labels": labels})
        return {
            "aws": {
                "region": "eu-west-1",
                "endpoint_url": "http://127.0.0.1:1",  # never contacted
                "read_timeout": f"{self.read_timeout:g}s",
            },
            "poll": {
                "interval": f"{POLL_INTERVAL:g}s",
                "max_requests_per_second": 10_000,
                "concurrency": self.concurrency,
            },
            "labels": {"env": "soak"},
            "things": listed,
        }

    def write(self) -> None:
        self.path.write_text(yaml.safe_dump(self.document(), sort_keys=False))

    def next(self, *, vary_aws: bool = False) -> str:
        """Edit the file for the next reload; return what changed."""
        self.reloads += 1
        kind = ("unchanged", "labels", "things", "labels+things")[self.reloads % 4]
        if "labels" in kind:
            self.labels_rev += 1
        if "things" in kind:
            self.list_rev += 1
        if vary_aws:
            self.read_timeout = 10.0 if self.read_timeout != 10.0 else 11.0
        self.write()
        return kind


class CountingFactory:
    """Wraps a client factory and counts the clients it makes."""

    def __init__(self, make: Callable[[Config], Any]) -> None:
        self._make = make
        self.made = 0

    def __call__(self, config: Config) -> Any:
        self.made += 1
        return self._make(config)


# -- the scraper (a subprocess) ------------------------------------------------------------


def scraper(port: int, interval: float, renew_every: int) -> None:
    """Child process: GET /metrics every `interval` s, plain and gzip in turn, until stdin
    closes; a new connection every `renew_every` requests. Prints its figures as JSON."""
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    deadline = time.monotonic() + SCRAPER_MAX_SECONDS
    latencies: dict[str, list[float]] = {"plain": [], "gzip": []}
    errors: list[str] = []
    conn: http.client.HTTPConnection | None = None
    count = 0
    while not done.is_set() and time.monotonic() < deadline:
        kind = "gzip" if count % 2 else "plain"
        headers = {"Accept-Encoding": "gzip"} if kind == "gzip" else {}
        if conn is None or count % renew_every == 0:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        count += 1
        start = time.perf_counter()
        try:
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200:
                errors.append(f"status {response.status}")
            else:
                text = gzip.decompress(body) if kind == "gzip" else body
                if not text.startswith(b"# HELP"):
                    errors.append(f"odd body {text[:40]!r}")
                latencies[kind].append(elapsed)
        except (OSError, http.client.HTTPException) as error:
            errors.append(repr(error))
            conn.close()
            conn = None
        done.wait(interval)
    result = {
        kind: {
            "scrapes": len(values),
            "median_ms": 1000 * median(values) if values else None,
            "p99_ms": 1000 * percentile(values, 0.99) if values else None,
            "max_ms": 1000 * max(values) if values else None,
        }
        for kind, values in latencies.items()
    }
    print(json.dumps({"latency": result, "errors": len(errors), "first_errors": errors[:5]}))


# -- the soak ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    cycle: int
    rss_mib: float
    traced_mib: float | None
    threads: int
    fds: int
    things: int
    disconnects: int
    fleet_disconnects: int


def slope_per_1000(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y against x, times 1,000."""
    n = len(points)
    if n < 2:
        return float("nan")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return 1000 * sxy / sxx


def sample(cycle: int, exporter: Exporter, traced: bool) -> Sample:
    states = exporter.state.things()
    things = len(states)
    disconnects = sum(sum(state.disconnects.values()) for state in states.values())
    fleet_disconnects = sum(exporter.state.fleet_disconnects().values())
    return Sample(
        cycle=cycle,
        rss_mib=rss_bytes() / MIB,
        traced_mib=tracemalloc.get_traced_memory()[0] / MIB if traced else None,
        threads=threading.active_count(),
        fds=len(os.listdir("/proc/self/fd")),
        things=things,
        disconnects=disconnects,
        fleet_disconnects=fleet_disconnects,
    )


def snapshot() -> tracemalloc.Snapshot:
    """What is still allocated: cyclic garbage is collected first, so it never counts."""
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__),
            tracemalloc.Filter(inclusive=False, filename_pattern="<frozen importlib._bootstrap>"),
            tracemalloc.Filter(inclusive=False, filename_pattern="<unknown>"),
        )
    )


def short(filename: str) -> str:
    """A path relative to the repository, site-packages or the standard library."""
    places = (
        ("", sysconfig.get_paths()["purelib"]),
        ("stdlib/", sysconfig.get_paths()["stdlib"]),
        ("", str(Path(__file__).resolve().parent.parent)),
    )
    for prefix, place in places:
        if filename.startswith(place + os.sep):
            return prefix + filename[len(place) + 1 :]
    return filename


def soak(args: argparse.Namespace) -> None:
    if args.tracemalloc:
        tracemalloc.start(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        revisions = Revisions(Path(tmp) / "config.yaml", args.things, args.concurrency)
        revisions.write()
        synthetic = SyntheticIoT()
        factory = CountingFactory(lambda config: synthetic)
        clock = ManualClock(CLOCK_START)
        path = revisions.path
        exporter = Exporter(
            lambda: load_config(path), factory, clock=clock.now, collectors=CollectorRegistry()
        )
        server, port = serve(exporter)
        scrape = ["--scraper", str(port), "--scrape-interval", str(args.scrape_interval)]
        scraper_process = subprocess.Popen(
            [sys.executable, __file__, *scrape],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        samples = [sample(0, exporter, args.tracemalloc)]
        reload_kinds: dict[str, int] = {}
        reload_failures = 0
        first: tracemalloc.Snapshot | None = None
        started = time.perf_counter()
        try:
            for cycle in range(1, args.cycles + 1):
                synthetic.next_cycle()
                clock.advance(POLL_INTERVAL)
                exporter.run_pass("live")
                exporter.render_now()
                if cycle % args.reload_every == 0:
                    kind = revisions.next()
                    reload_kinds[kind] = reload_kinds.get(kind, 0) + 1
                    if not exporter.reload().ok:
                        reload_failures += 1
                if cycle % args.sample_every == 0:
                    samples.append(sample(cycle, exporter, args.tracemalloc))
                    s = samples[-1]
                    print(
                        f"  cycle {cycle:,}: RSS {s.rss_mib:.1f} MiB, "
                        f"{time.perf_counter() - started:.0f} s, load {load_average()}",
                        file=sys.stderr,
                        flush=True,
                    )
                if args.tracemalloc and cycle == args.warmup:
                    first = snapshot()
            wall = time.perf_counter() - started
            last = snapshot() if args.tracemalloc else None
        finally:
            # Closing its stdin (communicate does) tells the scraper to finish and report.
            out, _ = scraper_process.communicate(timeout=60)
            server.shutdown()
            server.server_close()
            exporter.stop()
        scrapes = json.loads(out.strip().splitlines()[-1])
        payload = exporter.payload()
    report_soak(
        args,
        samples,
        wall=wall,
        scrapes=scrapes,
        reload_kinds=reload_kinds,
        reload_failures=reload_failures,
        clients=factory.made,
        payload=payload,
    )
    if first is not None and last is not None:
        report_tracemalloc(first, last, args)


def report_soak(
    args: argparse.Namespace,
    samples: Sequence[Sample],
    *,
    wall: float,
    scrapes: dict[str, Any],
    reload_kinds: dict[str, int],
    reload_failures: int,
    clients: int,
    payload: Payload,
) -> None:
    traced = args.tracemalloc
    print(
        f"\n## Soak: {args.cycles:,} cycles of {args.things:,} things, a reload every "
        f"{args.reload_every} cycles, tracemalloc {'on' if traced else 'off'}"
    )
    print(
        f"wall {wall:.0f} s ({1000 * wall / args.cycles:.1f} ms per cycle); "
        f"reloads {sum(reload_kinds.values())} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(reload_kinds.items()))}), "
        f"failed {reload_failures}; clients made {clients}"
    )
    print(
        f"/metrics at the end: {len(payload.plain) / MIB:.2f} MiB plain, "
        f"{len(payload.gzipped) / MIB:.3f} MiB gzip"
    )
    print("\n| cycle | RSS MiB |" + (" traced MiB |" if traced else "") + " threads | fds "
          "| things | their counters | fleet counters |")  # fmt: skip
    print("| ---: | ---: |" + (" ---: |" if traced else "") + " ---: | ---: | ---: | ---: | ---: |")
    for s in samples:
        traced_cell = f" {s.traced_mib:.1f} |" if s.traced_mib is not None else ""
        print(
            f"| {s.cycle:,} | {s.rss_mib:.1f} |{traced_cell} {s.threads} | {s.fds} "
            f"| {s.things:,} | {s.disconnects:,} | {s.fleet_disconnects:,} |"
        )
    after = [s for s in samples if s.cycle >= args.warmup]
    rss_slope = slope_per_1000([(s.cycle, s.rss_mib) for s in after])
    rss_after = [s.rss_mib for s in after]
    print(
        f"\nafter the warm-up ({args.warmup:,} cycles, {len(after)} samples): RSS "
        f"{min(rss_after):.1f}..{max(rss_after):.1f} MiB, slope {rss_slope:+.3f} MiB per 1,000 "
        f"cycles (target under 1): {'MET' if rss_slope < 1 else 'NOT MET'}"
    )
    if traced:
        traced_slope = slope_per_1000([(s.cycle, s.traced_mib or 0.0) for s in after])
        print(f"traced (Python allocations) slope {traced_slope:+.3f} MiB per 1,000 cycles")
    print(f"scrapes: {json.dumps(scrapes)}")


def report_tracemalloc(
    first: tracemalloc.Snapshot, last: tracemalloc.Snapshot, args: argparse.Namespace
) -> None:
    stats = sorted(last.compare_to(first, "lineno"), key=lambda s: s.size_diff, reverse=True)
    total = sum(s.size_diff for s in stats)
    print(
        f"\n## tracemalloc: cycle {args.warmup:,} against cycle {args.cycles:,}, "
        f"net {total / 1024:+.1f} KiB; the top {args.top} sites by growth"
    )
    print("| site | size diff KiB | count diff | size at end KiB |")
    print("| --- | ---: | ---: | ---: |")
    for stat in stats[: args.top]:
        frame = stat.traceback[0]
        print(
            f"| {short(frame.filename)}:{frame.lineno} | {stat.size_diff / 1024:+.1f} "
            f"| {stat.count_diff:+,} | {stat.size / 1024:.1f} |"
        )
    if args.frames > 1:
        chains = sorted(
            last.compare_to(first, "traceback"), key=lambda s: s.size_diff, reverse=True
        )
        print(f"\nthe top 3 call chains by growth ({args.frames} frames, innermost last):")
        for stat in chains[:3]:
            print(f"- {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+,} blocks")
            for line in stat.traceback.format():
                print(f"    {line}")


# -- reloads with the production client (finding 8), in fresh processes ---------------------


RELOAD_MARKS = (1, 2, 3, 5, 10, 25, 50, 100, 150, 200, 300, 500)


def reloads_child(count: int, things: int, vary_aws: bool) -> None:
    """Child process: `count` reloads with the production client factory; JSON figures."""
    with tempfile.TemporaryDirectory() as tmp:
        revisions = Revisions(Path(tmp) / "config.yaml", things, 16)
        revisions.write()
        factory = CountingFactory(bench_client_factory)
        path = revisions.path
        exporter = Exporter(lambda: load_config(path), factory, collectors=CollectorRegistry())
        gc.collect()
        rss = {0: rss_bytes() / MIB}
        started = time.perf_counter()
        for reload in range(1, count + 1):
            revisions.next(vary_aws=vary_aws)
            if not exporter.reload().ok:
                raise SystemExit(f"reload {reload} failed")
            if reload in RELOAD_MARKS or reload == count:
                gc.collect()
                rss[reload] = rss_bytes() / MIB
        wall = time.perf_counter() - started
        exporter.stop()
    print(json.dumps({"rss": rss, "clients": factory.made, "wall": wall}))


def reloads(args: argparse.Namespace) -> None:
    runs = [("AWS settings unchanged (client kept)", args.reloads, False)]
    if args.contrast_reloads:
        runs.append(("an AWS setting changed each time", args.contrast_reloads, True))
    print(
        f"\n## Reloads with the production boto3 client factory, {args.things:,} things "
        "(fresh process each; RSS after gc.collect())"
    )
    for title, count, vary in runs:
        command = [
            sys.executable, __file__, "--child-reloads", str(count),
            "--things", str(args.things),
        ] + (["--vary-aws"] if vary else [])  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rss = {int(k): v for k, v in r["rss"].items()}
        marks = " · ".join(f"{k}: {v:.1f}" for k, v in sorted(rss.items()))
        early = rss.get(3, rss[max(rss)])
        print(
            f"- {title}: {count} reloads in {r['wall']:.1f} s, clients created "
            f"{r['clients']} (1 at start-up); RSS MiB after reload n: {marks}; "
            f"last minus after reload 3: {rss[max(rss)] - early:+.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--reload-every", type=int, default=100)
    parser.add_argument("--sample-every", type=int, default=250, help="cycles between RSS samples")
    parser.add_argument("--warmup", type=int, default=1000, help="cycles left out of the slope")
    parser.add_argument("--concurrency", type=int, default=16, help="poller threads")
    parser.add_argument("--scrape-interval", type=float, default=0.05, help="s between scrapes")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace allocations (slower; RSS inflated)"
    )
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames per trace")
    parser.add_argument("--top", type=int, default=10, help="tracemalloc sites to list")
    parser.add_argument("--reloads", type=int, default=200, help="finding 8: kept-client reloads")
    parser.add_argument(
        "--contrast-reloads", type=int, default=50, help="reloads changing AWS settings (0: none)"
    )
    parser.add_argument("--no-soak", action="store_true", help="only the reload measurement")
    parser.add_argument("--scraper", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-reloads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--vary-aws", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scraper is not None:
        scraper(args.scraper, args.scrape_interval, renew_every=50)
        return
    if args.child_reloads is not None:
        reloads_child(args.child_reloads, args.things, args.vary_aws)
        return
    if args.warmup >= args.cycles and not args.no_soak:
        parser.error("--warmup must be less than --cycles")
    print(f"# exporter_soak  {now_utc()}  {machine()}")
    print(f"load {load_average()}", flush=True)
    if not args.no_soak:
        soak(args)
    if args.reloads:
        reloads(args)
    print(f"\nload {load_average()}")


if __name__ == "__main__":
    main()
