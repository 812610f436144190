"""Benchmark: the exporter and the simulator as two OS processes, index mode, 10^4 to 10^6 things.

`python -m exporter` runs against `python -m iot_simulator` (quotas off, 1% of the fleet
starting disconnected and 0.5% flapping, the simulator's churn otherwise), both on
127.0.0.1, a fresh pair per run. That churn (sessions of 1 h, outages of 2 min on average)
keeps about 3% more of the fleet offline at any time, and ends most of a mass outage's
disconnects within minutes; `--steady` turns it off for all but the flapping share
(`--mean-session-seconds inf --mean-offline-seconds inf`), as exporter_fleet.py memory's
in-memory index behaves. The exporter discovers the fleet by its three thing types
in index mode with registry labels on (attributes site and firmware on iot_thing_info,
thing_type promoted), as `exporter_fleet.py memory` configures it, and its SearchIndex
budget at the config's highest (10,000/s). Per fleet size, the median of the runs:

- start-up: seconds from the exporter's process start until `/-/ready` answers 200, and
  until `iot_exporter_things_targeted` reaches N;
- after the first complete pass (every thing-type source counted a pass in
  `iot_exporter_source_passes_total`) and the render that follows it: `/metrics` size
  (plain), its sample lines, `iot_exporter_render_duration_seconds`, VmRSS of the exporter
  and VmRSS per thing, `iot_exporter_problem_things` and `..._left_out`;
- CPU per thing per pass: the exporter's utime + stime (/proc/PID/stat) from the end of
  the first pass to the end of the second, over N (so one pass, the renders made while it
  ran and the one after the previous pass);
- a mass outage: POST /_simulator/mass-outage {"fraction": F} in the gap after the second
  pass; after the next complete pass and its render, the page size, the listed and
  left-out things and that render's duration.

Completion is seen through a gzip scrape of which only the first gzip member (the
exporter's own families, which come first) is decompressed, four times a second; a render
counts as the last one once no other followed for 1 s + 5 x its duration.

    .venv/bin/python bench/exporter_simulated.py --things 10000
    .venv/bin/python bench/exporter_simulated.py --per-thing problems
    .venv/bin/python bench/exporter_simulated.py --things 100000 --per-thing all

Both children are `python -m ...` started in the current directory, so they import the
exporter and the simulator from it: run from a `git archive` of a commit to pin the code
under test while the working tree changes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench._common import (
    AWS_TEST_ENV,
    TYPES,
    load_average,
    machine,
    median,
    now_utc,
    rss_bytes,
    simulator_process,
    stop_process,
)

DISCONNECTED, FLAPPING = 0.01, 0.005
SEARCH_INDEX_BUDGET = 10_000  # the most the config allows
PROBE_PERIOD = 0.25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LARGE = 1_000_000  # from this size on, --runs-large runs
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)")


def interval_for(things: int, override: float | None) -> float:
    """poll.interval: room for a pass through the simulator on two shared cores.

    A million-thing pass took 161 s (exporter_fleet.py startup); 0.3 ms a thing leaves
    about half as much again, so passes do not overrun and each leaves a gap for the
    bench's measurements and the mass outage. Staleness stays at 3 intervals.
    """
    if override is not None:
        return override
    return float(max(15, math.ceil(things * 0.0003)))


# -- HTTP and /proc -------------------------------------------------------------------------


def http(url: str, *, gzip: bool = False, data: bytes | None = None) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except OSError:
        return 0, b""


def own_metrics(base: str) -> dict[str, float] | None:
    """The exporter's own samples: the first gzip member of /metrics, nothing else unpacked."""
    status, body = http(base + "/metrics", gzip=True)
    if status != 200:
        return None
    head = zlib.decompressobj(wbits=31).decompress(body).decode()
    samples: dict[str, float] = {}
    for line in head.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def passes_done(samples: dict[str, float]) -> int:
    """Complete passes of the fleet: the fewest any thing-type source has counted."""
    counts = [
        samples.get(f'iot_exporter_source_passes_total{{source="thing_type:{kind}"}}', 0.0)
        for kind in TYPES
    ]
    return int(min(counts))


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of a process (every thread), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS  # fields 14 and 15


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the exporter as a process ---------------------------------------------------------------


def write_config(
    path: Path, url: str, things: int, interval: float, *, per_thing: str, rollup_by: list[str]
) -> None:
    metrics: dict[str, Any] = {"per_thing": per_thing}
    if rollup_by:
        metrics["rollup_by"] = rollup_by
    document = {
        "aws": {"region": "eu-west-1", "endpoint_url": url, "read_timeout": "30s"},
        "poll": {"mode": "index", "interval": f"{interval:g}s"},
        "discovery": {"thing_types": list(TYPES), "max_things": things},
        "registry": {"attributes": ["site", "firmware"], "promote": ["thing_type"]},
        "labels": {"env": "bench"},
        "budgets": {"SearchIndex": SEARCH_INDEX_BUDGET},
        "metrics": metrics,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@dataclass(frozen=True, slots=True)
class Started:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    started: float  # perf_counter just before the process was made


@contextmanager
def exporter_process(config: Path, log: Path) -> Iterator[Started]:
    port = free_port()
    with log.open("wb") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config),
             "--web.listen-address", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=sink, env=AWS_TEST_ENV,
        )  # fmt: skip
    try:
        yield Started(process, f"http://127.0.0.1:{port}", log, started)
    finally:
        stop_process(process, timeout=30)


def log_problems(log: Path) -> list[str]:
    """The exporter's warning and error lines, each distinct message once with its count."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "level=warn" in line or "level=error" in line or "Traceback" in line:
            match = re.search(r'msg=("[^"]*"|\S+)', line)
            key = match.group(1) if match else line[:160]
            counts[key] = counts.get(key, 0) + 1
    return [f"{n} x {msg}" for msg, n in counts.items()]


class Watch:
    """Polls the exporter's own metrics until a condition holds, failing if it exits."""

    def __init__(self, exporter: Started, deadline: float) -> None:
        self.exporter = exporter
        self.deadline = deadline

    def until(
        self, condition: Callable[[dict[str, float]], bool], what: str, period: float = PROBE_PERIOD
    ) -> dict[str, float]:
        while True:
            self._alive(what)
            samples = own_metrics(self.exporter.base)
            if samples is not None and condition(samples):
                return samples
            time.sleep(period)

    def settled(self) -> dict[str, float]:
        """Samples once the render after the last change is done: none for 1 s + 5x its cost."""
        samples = self.until(lambda s: True, "the exporter to answer")
        renders, quiet_since = samples["iot_exporter_renders_total"], time.perf_counter()
        while True:
            time.sleep(PROBE_PERIOD)
            self._alive("the render after the pass")
            now = own_metrics(self.exporter.base)
            if now is None:
                continue
            samples = now
            if samples["iot_exporter_renders_total"] != renders:
                renders, quiet_since = samples["iot_exporter_renders_total"], time.perf_counter()
                continue
            quiet = 1.0 + 5 * samples["iot_exporter_render_duration_seconds"]
            if time.perf_counter() - quiet_since >= quiet:
                return samples

    def _alive(self, what: str) -> None:
        if self.exporter.process.poll() is not None:
            raise RuntimeError(f"the exporter exited while waiting for {what}")
        if time.perf_counter() > self.deadline:
            raise TimeoutError(f"gave up waiting for {what}")


def full_page(base: str) -> tuple[int, int]:
    """Bytes of a plain /metrics and its sample lines."""
    status, body = http(base + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    return len(body), samples


# -- one run --------------------------------------------------------------------------------


@dataclass
class Result:
    ready_s: float
    targeted_s: float
    page_bytes: float
    page_samples: float
    render_s: float
    rss_mib: float
    rss_kib_per_thing: float
    cpu_us_per_thing: float
    renders_in_pass: float
    pass_s: float  # wall time between the ends of passes 1 and 2
    listed: float
    left_out: float
    outage_disconnected: float
    outage_page_bytes: float
    outage_listed: float
    outage_left_out: float
    outage_render_s: float
    outage_rss_mib: float
    peak_rss_mib: float
    simulator_rss_mib: float
    overruns: float
    failures: float


def simulator_args(size: int, *, steady: bool) -> list[str]:
    """The simulated fleet every run reads: quotas off, the issue's shares disconnected and
    flapping, and with `steady` no other churn."""
    args = ["--things", str(size), "--no-quotas", "--seed", "1"]
    args += ["--disconnected-fraction", str(DISCONNECTED), "--flapping-fraction", str(FLAPPING)]
    if steady:
        args += ["--mean-session-seconds", "inf", "--mean-offline-seconds", "inf"]
    return args


def one_run(size: int, args: argparse.Namespace, tmp: Path, run: int) -> tuple[Result, list[str]]:
    interval = interval_for(size, args.interval)
    with simulator_process(simulator_args(size, steady=args.steady)) as sim:
        config = tmp / f"config-{size}-{run}.yaml"
        write_config(
            config, sim.url, size, interval, per_thing=args.per_thing, rollup_by=args.rollup_by
        )
        log = tmp / f"exporter-{size}-{run}.log"
        with exporter_process(config, log) as exporter:
            watch = Watch(exporter, time.perf_counter() + 10 * interval + 900)
            pid = exporter.process.pid
            ready_s = targeted_s = math.nan
            while math.isnan(ready_s) or math.isnan(targeted_s):
                if exporter.process.poll() is not None:
                    raise RuntimeError("the exporter exited during start-up")
                if math.isnan(ready_s) and http(exporter.base + "/-/ready")[0] == 200:
                    ready_s = time.perf_counter() - exporter.started
                if math.isnan(targeted_s):
                    samples = own_metrics(exporter.base)
                    if samples and samples["iot_exporter_things_targeted"] >= size:
                        targeted_s = time.perf_counter() - exporter.started
                time.sleep(0.05)
            first = watch.until(lambda s: passes_done(s) >= 1, "the first pass")
            cpu0, wall0 = cpu_seconds_of(pid), time.perf_counter()
            after_first = watch.settled()
            page_bytes, page_samples = full_page(exporter.base)
            rss = rss_bytes(pid)
            second = watch.until(lambda s: passes_done(s) >= 2, "the second pass")
            cpu1, wall1 = cpu_seconds_of(pid), time.perf_counter()
            body = json.dumps({"fraction": args.outage}).encode()
            status, answer = http(sim.url + "/_simulator/mass-outage", data=body)
            if status != 200:
                raise RuntimeError(f"mass outage: {status} {answer[:200]!r}")
            disconnected = json.loads(answer)["disconnected"]
            watch.until(lambda s: passes_done(s) >= 3, "the pass after the outage")
            after_outage = watch.settled()
            outage_bytes, _ = full_page(exporter.base)
            result = Result(
                ready_s=ready_s,
                targeted_s=targeted_s,
                page_bytes=page_bytes,
                page_samples=page_samples,
                render_s=after_first["iot_exporter_render_duration_seconds"],
                rss_mib=rss / 2**20,
                rss_kib_per_thing=rss / 1024 / size,
                cpu_us_per_thing=(cpu1 - cpu0) / size * 1e6,
                renders_in_pass=second["iot_exporter_renders_total"]
                - first["iot_exporter_renders_total"],
                pass_s=wall1 - wall0,
                listed=after_first["iot_exporter_problem_things"],
                left_out=after_first["iot_exporter_problem_things_left_out"],
                outage_disconnected=float(disconnected),
                outage_page_bytes=outage_bytes,
                outage_listed=after_outage["iot_exporter_problem_things"],
                outage_left_out=after_outage["iot_exporter_problem_things_left_out"],
                outage_render_s=after_outage["iot_exporter_render_duration_seconds"],
                outage_rss_mib=rss_bytes(pid) / 2**20,
                peak_rss_mib=peak_rss_bytes(pid) / 2**20,
                simulator_rss_mib=rss_bytes(sim.process.pid) / 2**20,
                overruns=after_outage.get("iot_exporter_poll_cycles_overrun_total", 0.0),
                failures=float(
                    sum(
                        value
                        for key, value in after_outage.items()
                        if key.startswith("iot_exporter_source_pass_failures_total")
                    )
                ),
            )
        return result, log_problems(log)


# -- the table ------------------------------------------------------------------------------


def medians(results: list[Result]) -> Result:
    values = {f.name: median([getattr(r, f.name) for r in results]) for f in fields(Result)}
    return Result(**values)


def spread(results: list[Result], name: str, digits: int) -> str:
    values = [getattr(r, name) for r in results]
    if len(values) < 2:
        return ""
    return f" ({min(values):.{digits}f}..{max(values):.{digits}f})"


def row(size: int, results: list[Result]) -> str:
    m = medians(results)
    mib = 2**20
    return (
        f"| {size:,} | {len(results)} | {m.ready_s:.2f}{spread(results, 'ready_s', 2)} "
        f"| {m.targeted_s:.2f}{spread(results, 'targeted_s', 2)} "
        f"| {m.page_bytes:,.0f} ({m.page_bytes / mib:.2f}) | {m.page_samples:,.0f} "
        f"| {m.render_s:.3f}{spread(results, 'render_s', 3)} | {m.rss_mib:.0f} "
        f"| {m.rss_kib_per_thing:.2f} "
        f"| {m.cpu_us_per_thing:.1f}{spread(results, 'cpu_us_per_thing', 1)} "
        f"| {m.renders_in_pass:.0f} | {m.listed:,.0f} | {m.left_out:,.0f} "
        f"| {m.outage_disconnected:,.0f} | {m.outage_page_bytes / mib:.2f} "
        f"| {m.outage_listed:,.0f} | {m.outage_left_out:,.0f} "
        f"| {m.outage_render_s:.3f}{spread(results, 'outage_render_s', 3)} |"
    )


HEADER = (
    "| things | runs | ready s | all targeted s | /metrics bytes (MiB) | samples | render s "
    "| RSS MiB | RSS KiB/thing | CPU us/thing/pass | renders in the pass | listed | left out "
    "| outage: disconnected | /metrics MiB | listed | left out | render s |\n"
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
    "| ---: | ---: | ---: | ---: | ---: | ---: |"
)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so every finally runs and the children are ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", default="10000,100000,1000000", help="fleet sizes")
    parser.add_argument("--per-thing", choices=("problems", "all", "none"), default="problems")
    parser.add_argument(
        "--rollup-by",
        default="",
        type=lambda text: [label for label in text.split(",") if label],
        help="LABEL,... passed as metrics.rollup_by (empty: the key is left out)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size below 1,000,000")
    parser.add_argument("--runs-large", type=int, default=1, help="runs at 1,000,000 and up")
    parser.add_argument("--outage", type=float, default=0.5, help="mass outage fraction")
    parser.add_argument("--interval", type=float, help="poll.interval, s (default: by size)")
    parser.add_argument(
        "--steady",
        action="store_true",
        help="no churn but the flapping share's: other things keep their state, so the fleet"
        " is 1%% disconnected and 0.5%% flapping exactly and a mass outage lasts",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    sizes = [int(n) for n in args.things.split(",")]
    print(f"# exporter_simulated  {now_utc()}  {machine()}", flush=True)
    print(
        f"index mode, thing types {','.join(TYPES)}, registry labels on (site, firmware;"
        f" thing_type promoted); per_thing: {args.per_thing};"
        f" rollup_by: {','.join(args.rollup_by) or '(not set)'};"
        f" SearchIndex budget {SEARCH_INDEX_BUDGET}/s; simulator: quotas off,"
        f" {DISCONNECTED:.1%} disconnected, {FLAPPING:.1%} flapping,"
        f" {'no other churn (--steady)' if args.steady else 'default churn'};"
        f" mass outage {args.outage:.0%}",
        flush=True,
    )
    print(f"exporter and simulator imported from {os.getcwd()}", flush=True)
    print(f"load {load_average()} at the start", flush=True)
    rows: list[str] = []
    fewer: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs = args.runs_large if size >= LARGE else args.runs
            results: list[Result] = []
            for run in range(runs):
                result, problems = one_run(size, args, Path(tmp), run)
                results.append(result)
                shown = {k: round(v, 4) for k, v in asdict(result).items()}
                interval = interval_for(size, args.interval)
                print(
                    f"run {run + 1}/{runs} at {size:,} (interval {interval:g} s,"
                    f" load {load_average()}): {json.dumps(shown)}",
                    flush=True,
                )
                for line in problems:
                    print(f"  exporter log: {line}", flush=True)
            rows.append(row(size, results))
            if runs < args.runs:
                fewer.append(f"{size:,}: {runs} run{'s' if runs > 1 else ''} (time)")
    print()
    print(HEADER)
    for line in rows:
        print(line)
    print(
        "medians (min..max where more than one run); CPU is the exporter's utime + stime from"
        " the end of pass 1 to the end of pass 2, over N; listed and left out after pass 1"
    )
    if fewer:
        print(f"fewer runs than --runs {args.runs} at {'; '.join(fewer)}")
    print(f"load {load_average()} at the end")


if __name__ == "__main__":
    main()
