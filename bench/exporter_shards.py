"""Benchmark: three shards of N/3 things each against one process of N, one simulator (issue 17).

One `python -m iot_simulator` per run (quotas off, 1% of the fleet disconnected and 0.5%
flapping, `--steady` by default: no other churn) serves, in turn:

(a) one `python -m exporter` without shard flags;
(b) three `python -m exporter --shard k --total-shards 3`, started together, with the same
    config file.

The config is exporter_simulated.py's: index mode, the simulator's three thing types,
registry labels on (site and firmware on iot_thing_info, thing_type promoted),
`budgets.SearchIndex: 10000` (the account's; each shard spends a third of it), and
`poll.interval` of max(15 s, 0.3 ms x N). For (a) and for (b):

- start-up: seconds from the processes' start until every `/-/ready` answers 200, and
  until `iot_exporter_things_targeted`, summed over the processes, reaches N;
- one full pass (every process's second, from the end of its first pass to the end of its
  second): the SearchIndex calls the simulator counted (its request counters read after
  every process ended pass 1 and again after every process ended pass 2, with no pass 3
  begun), and each process's utime + stime (/proc/PID/stat) over its own pass, as
  exporter_simulated.py measures it; each process's own `iot_exporter_api_requests_total`
  of SearchIndex splits the calls by shard;
- after the second pass and the render that follows it: each process's
  `iot_exporter_render_duration_seconds` and the bytes of a plain /metrics.

Then a restart: shard 1 is killed with SIGKILL and started again with the same flags (on
another port); the seconds from its new process's start until `/-/ready` is 200 and until
its `iot_exporter_things_targeted` is back to what it was before the kill (target: 10 s).

The report sets the shards against the one process, as medians over `--runs` of each
run's ratio: CPU of all shards (target at most 1.1x), SearchIndex calls (at most 1.05x),
and each shard's render duration and page size (about a third).

    .venv/bin/python bench/exporter_shards.py --tree /tmp/shardbench/tree
    .venv/bin/python bench/exporter_shards.py --things 150000 --runs 1 --tree DIR

`--tree DIR` starts every child in DIR (cwd and PYTHONPATH), so the exporter and the
simulator are imported from a `git archive` of the commit under test while the working
tree changes; without it, from the current directory. Everything listens on 127.0.0.1;
every child is ended when the bench ends, however it ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from bench._common import (
    AWS_TEST_ENV,
    TYPES,
    load_average,
    machine,
    median,
    now_utc,
    simulator_process,
    stop_process,
)
from bench.exporter_simulated import (
    DISCONNECTED,
    FLAPPING,
    PROBE_PERIOD,
    SEARCH_INDEX_BUDGET,
    Started,
    Watch,
    cpu_seconds_of,
    free_port,
    full_page,
    http,
    interval_for,
    log_problems,
    own_metrics,
    passes_done,
    simulator_args,
)
from bench.exporter_simulated import write_config as write_exporter_config

TOTAL_SHARDS = 3
RESTARTED = 1  # the shard killed and started again
RESTART_TARGET_S = 10.0
CPU_TARGET, CALLS_TARGET = 1.10, 1.05
START_PERIOD = 0.05  # probing while the processes start, as exporter_simulated.py does
SEARCH_INDEX = 'iot_exporter_api_requests_total{operation="SearchIndex"}'
TARGETED = "iot_exporter_things_targeted"
PASS_DURATION = "iot_exporter_source_last_pass_duration_seconds"


# -- the child processes ---------------------------------------------------------------------


class Children:
    """Starts the exporter processes and keeps every one, so each is ended however the
    bench ends."""

    def __init__(self, tmp: Path, tree: Path | None) -> None:
        self._tmp = tmp
        self._cwd = tree
        self._env = {**AWS_TEST_ENV, "PYTHONPATH": str(tree)} if tree is not None else AWS_TEST_ENV
        self._all: list[subprocess.Popen[bytes]] = []

    def start(self, config: Path, name: str, shard: int | None) -> Started:
        port = free_port()
        log = self._tmp / f"{name}.log"
        command = [sys.executable, "-m", "exporter", "--config.file", str(config),
                   "--web.listen-address", f"127.0.0.1:{port}"]  # fmt: skip
        if shard is not None:
            command += ["--shard", str(shard), "--total-shards", str(TOTAL_SHARDS)]
        with log.open("wb") as sink:
            started = time.perf_counter()
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=sink, env=self._env, cwd=self._cwd
            )
        self._all.append(process)
        return Started(process, f"http://127.0.0.1:{port}", log, started)

    @staticmethod
    def kill(exporter: Started) -> None:
        """SIGKILL, as a node or the OOM killer ends a pod: no clean shutdown."""
        exporter.process.kill()
        exporter.process.wait()

    def stop_all(self) -> None:
        for process in self._all:
            if process.poll() is None:
                process.terminate()
        for process in self._all:
            stop_process(process, timeout=30)
        self._all.clear()


@contextmanager
def children(tmp: Path, tree: Path | None) -> Iterator[Children]:
    group = Children(tmp, tree)
    try:
        yield group
    finally:
        group.stop_all()


def search_calls(sim_url: str) -> tuple[float, float, float]:
    """The simulator's counts so far: (SearchIndex calls, other IoT calls, failed calls)."""
    status, body = http(sim_url + "/_simulator/requests")
    if status != 200:
        raise RuntimeError(f"/_simulator/requests answered {status}")
    search = other = failed = 0.0
    for entry in json.loads(body)["requests"]:
        if entry["operation"] == "SearchIndex":
            search += entry["count"]
        else:
            other += entry["count"]
        if entry["outcome"] != "ok":
            failed += entry["count"]
    return search, other, failed


# -- one group of processes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Process:
    """One exporter process's figures."""

    things: float  # iot_exporter_things_targeted after the second pass
    ready_s: float  # from its own start
    cpu_s: float  # utime + stime from the end of its pass 1 to the end of its pass 2
    search_calls: float  # its own count of SearchIndex requests over that pass
    pass_s: float  # its pass 2: the longest of its sources' last pass durations
    renders: float  # renders between the ends of passes 1 and 2
    render_s: float  # the render after pass 2
    page_bytes: float  # a plain /metrics after pass 2


@dataclass(frozen=True, slots=True)
class Group:
    """One process, or the three shards: each process's figures and the fleet's."""

    processes: tuple[Process, ...]
    ready_s: float  # from the first start until every process answered 200
    targeted_s: float  # from the first start until the targeted things summed reach N
    search_calls: float  # SearchIndex calls the simulator counted over one pass of each
    other_calls: float  # its other IoT calls over that pass
    failed_calls: float
    clean: bool  # every process's pass 2 ended before any pass 3 could begin

    @property
    def cpu_s(self) -> float:
        return sum(p.cpu_s for p in self.processes)

    @property
    def page_bytes(self) -> float:
        return sum(p.page_bytes for p in self.processes)


@dataclass(frozen=True, slots=True)
class Restart:
    things: float
    ready_s: float
    targeted_s: float


def _check(group: Sequence[Started], deadline: float, what: str) -> None:
    for exporter in group:
        if exporter.process.poll() is not None:
            raise RuntimeError(f"an exporter ({exporter.base}) exited while waiting for {what}")
    if time.perf_counter() > deadline:
        raise TimeoutError(f"gave up waiting for {what}")


def start_up(
    group: Sequence[Started], things: float, deadline: float
) -> tuple[list[float], float, float]:
    """Seconds until each process's /-/ready answers 200 (from its own start), and from the
    first start until every one did and until their targeted things summed reach `things`."""
    first = min(exporter.started for exporter in group)
    ready = [math.nan] * len(group)
    last_ready = math.nan
    targeted = [0.0] * len(group)
    targeted_s = math.nan
    while math.isnan(last_ready) or math.isnan(targeted_s):
        _check(group, deadline, "start-up")
        for i, exporter in enumerate(group):
            if math.isnan(ready[i]) and http(exporter.base + "/-/ready")[0] == 200:
                ready[i] = time.perf_counter() - exporter.started
                if not any(math.isnan(r) for r in ready):
                    last_ready = time.perf_counter() - first
            if math.isnan(targeted_s):
                samples = own_metrics(exporter.base)
                if samples is not None:
                    targeted[i] = samples[TARGETED]
        if math.isnan(targeted_s) and sum(targeted) >= things:
            targeted_s = time.perf_counter() - first
        time.sleep(START_PERIOD)
    return ready, last_ready, targeted_s


def at_pass_end(
    group: Sequence[Started], passes: int, deadline: float
) -> list[tuple[float, dict[str, float]]]:
    """Waits until every process has ended `passes` passes; for each, its CPU seconds and
    its samples when the bench first saw that pass ended."""
    seen: list[tuple[float, dict[str, float]] | None] = [None] * len(group)
    while True:
        for i, exporter in enumerate(group):
            if seen[i] is not None:
                continue
            samples = own_metrics(exporter.base)
            if samples is not None and passes_done(samples) >= passes:
                seen[i] = (cpu_seconds_of(exporter.process.pid), samples)
        done = [entry for entry in seen if entry is not None]
        if len(done) == len(group):
            return done
        _check(group, deadline, f"pass {passes}")
        time.sleep(PROBE_PERIOD)


def measure(
    group: Sequence[Started], sim_url: str, things: int, interval: float, deadline: float
) -> Group:
    ready, last_ready, targeted_s = start_up(group, things, deadline)
    first = at_pass_end(group, 1, deadline)
    search0, other0, failed0 = search_calls(sim_url)
    second = at_pass_end(group, 2, deadline)
    search1, other1, failed1 = search_calls(sim_url)
    # The scheduler starts after the process, so no pass 3 began before this.
    clean = time.perf_counter() < min(e.started for e in group) + 2 * interval and all(
        passes_done(samples) == 2 for _, samples in second
    )
    processes: list[Process] = []
    for i, exporter in enumerate(group):
        settled = Watch(exporter, deadline).settled()
        page_bytes, _ = full_page(exporter.base)
        (cpu0, samples0), (cpu1, samples1) = first[i], second[i]
        processes.append(
            Process(
                things=settled[TARGETED],
                ready_s=ready[i],
                cpu_s=cpu1 - cpu0,
                search_calls=samples1.get(SEARCH_INDEX, 0.0) - samples0.get(SEARCH_INDEX, 0.0),
                pass_s=max(samples1[f'{PASS_DURATION}{{source="thing_type:{t}"}}'] for t in TYPES),
                renders=samples1["iot_exporter_renders_total"]
                - samples0["iot_exporter_renders_total"],
                render_s=settled["iot_exporter_render_duration_seconds"],
                page_bytes=float(page_bytes),
            )
        )
    return Group(
        processes=tuple(processes),
        ready_s=last_ready,
        targeted_s=targeted_s,
        search_calls=search1 - search0,
        other_calls=other1 - other0,
        failed_calls=failed1 - failed0,
        clean=clean,
    )


def restart(
    procs: Children, group: list[Started], config: Path, name: str, deadline: float
) -> Restart:
    """Kill -9 shard RESTARTED, start it again, time it back to ready and to its things."""
    samples = own_metrics(group[RESTARTED].base)
    if samples is None:
        raise RuntimeError(f"shard {RESTARTED} did not answer before the kill")
    before = samples[TARGETED]
    procs.kill(group[RESTARTED])
    again = procs.start(config, name, RESTARTED)
    group[RESTARTED] = again
    ready_s = targeted_s = math.nan
    while math.isnan(ready_s) or math.isnan(targeted_s):
        _check([again], deadline, f"shard {RESTARTED} after its restart")
        if math.isnan(ready_s) and http(again.base + "/-/ready")[0] == 200:
            ready_s = time.perf_counter() - again.started
        if math.isnan(targeted_s):
            now = own_metrics(again.base)
            if now is not None and now[TARGETED] >= before:
                targeted_s = time.perf_counter() - again.started
        time.sleep(START_PERIOD)
    return Restart(things=before, ready_s=ready_s, targeted_s=targeted_s)


@dataclass(frozen=True, slots=True)
class Run:
    one: Group
    shards: Group
    restart: Restart


def one_run(size: int, args: argparse.Namespace, tmp: Path, run: int) -> tuple[Run, list[str]]:
    interval = interval_for(size, args.interval)
    problems: list[str] = []
    with simulator_process(simulator_args(size, steady=args.steady)) as sim:
        config = tmp / f"config-{run}.yaml"
        write_exporter_config(
            config, sim.url, size, interval, per_thing=args.per_thing, rollup_by=[]
        )
        with children(tmp, args.tree) as procs:
            alone = [procs.start(config, f"one-{run}", None)]
            one = measure(alone, sim.url, size, interval, time.perf_counter() + 10 * interval + 900)
            problems += [f"one process: {line}" for line in log_problems(alone[0].log)]
            procs.stop_all()
        with children(tmp, args.tree) as procs:
            group = [procs.start(config, f"shard{k}-{run}", k) for k in range(TOTAL_SHARDS)]
            deadline = time.perf_counter() + 10 * interval + 900
            shards = measure(group, sim.url, size, interval, deadline)
            killed = group[RESTARTED]
            again = restart(procs, group, config, f"shard{RESTARTED}-restart-{run}", deadline)
            for k, exporter in enumerate([*group, killed]):
                which = f"shard {k}" if k < TOTAL_SHARDS else f"shard {RESTARTED} before the kill"
                if k == RESTARTED:
                    which += " after the restart"
                problems += [f"{which}: {line}" for line in log_problems(exporter.log)]
    return Run(one, shards, again), problems


# -- the report ------------------------------------------------------------------------------


def shown(values: Sequence[float], digits: int, *, thousands: bool = False) -> str:
    """The median, and min..max where more than one run."""
    form = f",.{digits}f" if thousands else f".{digits}f"
    text = format(median(values), form)
    if len(values) > 1:
        text += f" ({format(min(values), form)}..{format(max(values), form)})"
    return text


def table(size: int, runs: list[Run]) -> list[str]:
    lines = [
        "| processes | things | ready s | all targeted s | SearchIndex calls / pass "
        "| CPU s / pass | pass s | renders in the pass | render s | /metrics bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def process_row(label: str, ps: list[Process]) -> str:
        return (
            f"| {label} | {shown([p.things for p in ps], 0, thousands=True)} "
            f"| {shown([p.ready_s for p in ps], 2)} | "
            f"| {shown([p.search_calls for p in ps], 0, thousands=True)} "
            f"| {shown([p.cpu_s for p in ps], 2)} | {shown([p.pass_s for p in ps], 1)} "
            f"| {shown([p.renders for p in ps], 0)} | {shown([p.render_s for p in ps], 3)} "
            f"| {shown([p.page_bytes for p in ps], 0, thousands=True)} |"
        )

    def group_row(label: str, groups: list[Group]) -> str:
        return (
            f"| {label} | {size:,} | {shown([g.ready_s for g in groups], 2)} "
            f"| {shown([g.targeted_s for g in groups], 2)} "
            f"| {shown([g.search_calls for g in groups], 0, thousands=True)} "
            f"| {shown([g.cpu_s for g in groups], 2)} "
            f"| {shown([max(p.pass_s for p in g.processes) for g in groups], 1)} "
            f"| {shown([sum(p.renders for p in g.processes) for g in groups], 0)} "
            f"| {shown([max(p.render_s for p in g.processes) for g in groups], 3)} "
            f"| {shown([g.page_bytes for g in groups], 0, thousands=True)} |"
        )

    lines.append(group_row("one process", [r.one for r in runs]))
    for k in range(TOTAL_SHARDS):
        lines.append(process_row(f"shard {k}", [r.shards.processes[k] for r in runs]))
    lines.append(group_row("3 shards: sum (times, render: the last)", [r.shards for r in runs]))
    return lines


def ratios(runs: list[Run]) -> list[str]:
    def ratio(pick: Callable[[Run], float]) -> list[float]:
        return [pick(r) for r in runs]

    cpu = ratio(lambda r: r.shards.cpu_s / r.one.cpu_s)
    calls = ratio(lambda r: r.shards.search_calls / r.one.search_calls)
    render = ratio(
        lambda r: max(p.render_s for p in r.shards.processes) / r.one.processes[0].render_s
    )
    page = ratio(
        lambda r: max(p.page_bytes for p in r.shards.processes) / r.one.processes[0].page_bytes
    )
    ready = [r.restart.ready_s for r in runs]
    back = [r.restart.targeted_s for r in runs]
    things = median([r.restart.things for r in runs])

    def verdict(value: float, limit: float) -> str:
        return "yes" if value <= limit else "**no**"

    return [
        "| shards against one process | ratio | target | met |",
        "| --- | ---: | ---: | --- |",
        f"| CPU of one pass, sum of the 3 shards | {shown(cpu, 3)} | at most {CPU_TARGET:.2f}"
        f" | {verdict(median(cpu), CPU_TARGET)} |",
        f"| SearchIndex calls of one pass, 3 shards | {shown(calls, 3)} "
        f"| at most {CALLS_TARGET:.2f} | {verdict(median(calls), CALLS_TARGET)} |",
        f"| render duration, largest shard | {shown(render, 3)} | about 0.33 | |",
        f"| /metrics bytes, largest shard | {shown(page, 3)} | about 0.33 | |",
        f"| restart of shard {RESTARTED} ({things:,.0f} things): s to /-/ready 200"
        f" | {shown(ready, 2)} | at most {RESTART_TARGET_S:g} s"
        f" | {verdict(median(ready), RESTART_TARGET_S)} |",
        f"| restart of shard {RESTARTED}: s to its things targeted again | {shown(back, 2)}"
        f" | at most {RESTART_TARGET_S:g} s | {verdict(median(back), RESTART_TARGET_S)} |",
    ]


def _directory(text: str) -> Path:
    return Path(text).resolve()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so every finally runs and the children are ended


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--things", type=int, default=300_000, help="fleet size N")
    parser.add_argument("--per-thing", choices=("problems", "all", "none"), default="problems")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--interval", type=float, help="poll.interval, s (default: by size)")
    parser.add_argument(
        "--steady",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="no churn but the flapping share's (default; --no-steady: the simulator's churn)",
    )
    parser.add_argument(
        "--tree",
        type=_directory,
        help="start the simulator and the exporters in this directory (a git archive)",
    )
    args = parser.parse_args()
    if args.things % TOTAL_SHARDS:
        parser.error(f"--things must split into {TOTAL_SHARDS} shards")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    if args.tree is not None:
        # The simulator is started in the current directory (bench._common).
        os.chdir(args.tree)
        os.environ["PYTHONPATH"] = str(args.tree)
    size = args.things
    interval = interval_for(size, args.interval)
    print(f"# exporter_shards  {now_utc()}  {machine()}", flush=True)
    print(
        f"{size:,} things: one process, then {TOTAL_SHARDS} shards (--shard k"
        f" --total-shards {TOTAL_SHARDS}), against one simulator per run; index mode,"
        f" thing types {','.join(TYPES)}, registry labels on; per_thing: {args.per_thing};"
        f" SearchIndex budget {SEARCH_INDEX_BUDGET}/s; poll.interval {interval:g} s;"
        f" simulator: quotas off, {DISCONNECTED:.1%} disconnected, {FLAPPING:.1%} flapping,"
        f" {'no other churn (--steady)' if args.steady else 'default churn'}",
        flush=True,
    )
    print(f"exporter and simulator imported from {os.getcwd()}", flush=True)
    print(f"load {load_average()} at the start", flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            result, problems = one_run(size, args, Path(tmp), run)
            runs.append(result)
            print(
                f"run {run + 1}/{args.runs} ({now_utc()}, load {load_average()}):"
                f" {json.dumps(asdict(result))}",
                flush=True,
            )
            for group in (result.one, result.shards):
                if not group.clean:
                    print("  warning: a pass 3 may have begun before the count closed")
            for line in problems:
                print(f"  exporter log: {line}", flush=True)
    print()
    for line in table(size, runs):
        print(line)
    print()
    for line in ratios(runs):
        print(line)
    print(
        f"medians of {len(runs)} run{'s' if len(runs) > 1 else ''} (min..max where more"
        " than one); ratios are each run's shards over its one process"
    )
    print(f"load {load_average()} at the end")


if __name__ == "__main__":
    main()
