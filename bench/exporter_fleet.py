"""Benchmark: fleets of 100,000 things (issue 9): index mode, start-up, render and memory.

Modes (each prints a Markdown table, the machine and the load average):

- `index`: one exporter process in index mode against the simulator in its own process
  (quotas off), then in live mode over a sample of the same fleet, side by side in one
  run: SearchIndex calls per cycle, cycle time at the stated budget, and this process's
  CPU per thing per cycle (getrusage, every thread). The live sample is capped (default
  5,000 things) because live mode costs a call per thing; CPU per thing is the figure
  compared.
- `startup`: the exporter as a process (`python -m exporter`), with N things listed in
  YAML, then discovered through the index: seconds until it listens, until /metrics
  answers, and (discovered) until every thing is targeted.
- `memory`: RSS per thing in a fresh process per size, with registry labels on (thing
  type, two attributes, one promoted), after three index passes and a render, on an
  in-memory SearchIndex stand-in; also the render time of that fleet.

    .venv/bin/python bench/exporter_fleet.py index --things 100000 --budget 100
    .venv/bin/python bench/exporter_fleet.py startup --things 1000,10000,100000
    .venv/bin/python bench/exporter_fleet.py memory --things 1000,10000,100000
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from bench._common import (
    AWS_TEST_ENV,
    REASONS,
    TYPES,
    bench_client_factory,
    cpu_seconds,
    load_average,
    machine,
    median,
    now_utc,
    rss_bytes,
    simulator_process,
    thing_names,
)
from exporter.app import Exporter
from exporter.config import Config, load_config


def _requests(url: str) -> dict[tuple[str, str], int]:
    with urllib.request.urlopen(f"{url}/_simulator/requests", timeout=30) as response:
        body = json.load(response)
    return {(row["operation"], row["outcome"]): int(row["count"]) for row in body["requests"]}


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_simulator/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=30).close()


def _config(path: Path, url: str, **sections: Any) -> None:
    document = {
        "aws": {"region": "eu-west-1", "endpoint_url": url, "read_timeout": "30s"},
        "poll": {"interval": "1h", "concurrency": 16, "max_requests_per_second": 10_000},
        **sections,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# -- index mode vs live mode -----------------------------------------------------------------


def run_index(args: argparse.Namespace) -> None:
    things, budget, sample = args.things, args.budget, min(args.live_sample, args.things)
    print(f"# exporter_fleet index  {now_utc()}  {machine()}")
    sim_args = ["--things", str(things), "--no-quotas", "--seed", "1", "--no-churn"]
    with simulator_process(sim_args) as sim, tempfile.TemporaryDirectory() as tmp:
        index_config = Path(tmp) / "index.yaml"
        _config(
            index_config,
            sim.url,
            poll={"mode": "index", "interval": "1h"},
            discovery={"thing_types": list(TYPES), "max_things": things},
            budgets={"SearchIndex": budget},
        )
        live_config = Path(tmp) / "live.yaml"
        _config(
            live_config,
            sim.url,
            poll={"interval": "1h", "concurrency": 16, "max_requests_per_second": 10_000},
            things=thing_names(sample),
        )
        rows = []
        for label, path, count in (
            ("index", index_config, things),
            ("live", live_config, sample),
        ):
            exporter = Exporter(lambda p=path: load_config(p), bench_client_factory)  # type: ignore[misc]
            exporter.run_all()  # warm-up: client, caches, discovery
            walls, cpus, calls = [], [], []
            for _ in range(args.cycles):
                _reset(sim.url)
                cpu0, wall0 = cpu_seconds(), time.perf_counter()
                exporter.run_all()
                walls.append(time.perf_counter() - wall0)
                cpus.append(cpu_seconds() - cpu0)
                calls.append(sum(_requests(sim.url).values()))
            exporter.stop()
            rows.append((label, count, median(calls), median(walls), median(cpus)))
    print(f"SearchIndex budget {budget}/s (index); live: budget 10,000/s, concurrency 16")
    print("| mode | things | calls per cycle | cycle s | CPU s per cycle | CPU us per thing |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, count, calls_, wall, cpu in rows:
        print(
            f"| {label} | {count:,} | {calls_:,.0f} | {wall:.1f} | {cpu:.2f} "
            f"| {1e6 * cpu / count:.1f} |"
        )
    index_per, live_per = rows[0][4] / rows[0][1], rows[1][4] / rows[1][1]
    print(f"live / index CPU per thing: {live_per / index_per:.1f}x")
    print(f"load {load_average()}")


# -- start-up -------------------------------------------------------------------------------


def _start(config: Path) -> tuple[subprocess.Popen[str], Callable[[], str | None]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config.file", str(config),
         "--web.listen-address", "127.0.0.1:0", "--log.level", "info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=AWS_TEST_ENV,
    )  # fmt: skip
    address: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"msg=listening address=(\S+)", line)
            if match:
                address.append(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    return process, lambda: address[0] if address else None


def _metric(url: str, name: str) -> float | None:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _startup_once(config: Path, expect: int | None) -> tuple[float, float, float | None]:
    start = time.perf_counter()
    process, address = _start(config)
    try:
        while address() is None:
            if process.poll() is not None:
                raise RuntimeError("the exporter exited")
            time.sleep(0.01)
        listening = time.perf_counter() - start
        url = f"http://{address()}"
        while _metric(url, "iot_exporter_things_targeted") is None:
            time.sleep(0.01)
        serving = time.perf_counter() - start
        targeted = None
        if expect is not None:
            while (_metric(url, "iot_exporter_things_targeted") or 0) < expect:
                time.sleep(0.05)
            targeted = time.perf_counter() - start
        return listening, serving, targeted
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_startup(args: argparse.Namespace) -> None:
    print(f"# exporter_fleet startup  {now_utc()}  {machine()}")
    print(
        "| things | listed in YAML: listening s | serving s | discovered: listening s "
        "| serving s | all targeted s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(n) for n in args.things.split(",")):
        sim_args = ["--things", str(size), "--no-quotas", "--seed", "1", "--no-churn"]
        with simulator_process(sim_args) as sim, tempfile.TemporaryDirectory() as tmp:
            listed = Path(tmp) / "listed.yaml"
            _config(listed, sim.url, things=thing_names(size))
            discovered = Path(tmp) / "discovered.yaml"
            _config(
                discovered,
                sim.url,
                poll={"mode": "index", "interval": "1h"},
                discovery={"thing_types": list(TYPES), "max_things": size},
                budgets={"SearchIndex": args.budget},
            )
            a = [_startup_once(listed, None) for _ in range(args.runs)]
            b = [_startup_once(discovered, size) for _ in range(args.runs)]
        print(
            f"| {size:,} | {median([r[0] for r in a]):.2f} | {median([r[1] for r in a]):.2f} "
            f"| {median([r[0] for r in b]):.2f} | {median([r[1] for r in b]):.2f} "
            f"| {median([r[2] or 0.0 for r in b]):.2f} |",
            flush=True,
        )
    print(f"discovered: index mode, SearchIndex budget {args.budget}/s; medians of {args.runs}")
    print(f"load {load_average()}")


# -- memory and render ----------------------------------------------------------------------


class SyntheticIndex:
    """SearchIndex in memory: pages of 100 thing documents with registry and connectivity.

    A share of the things is disconnected, another share flaps (its timestamp moves every
    pass while it stays connected: a disconnect and reconnect between two passes), and
    from `outage_cycle` on a mass outage disconnects `outage` of the rest.
    """

    def __init__(
        self,
        names: list[str],
        *,
        disconnected: float = 0.1,
        flapping: float = 0.05,
        outage: float = 0.0,
        outage_cycle: int = 3,
    ) -> None:
        self.meta = SimpleNamespace(
            region_name="eu-west-1",
            endpoint_url=None,
            method_to_api_mapping={"search_index": "SearchIndex"},
        )
        self._names = names
        self._down_every = _every(disconnected)
        self._flap_every = _every(flapping)
        self._outage_every = _every(outage)
        self._outage_cycle = outage_cycle
        self.cycle = 0

    def search_index(self, **params: Any) -> dict[str, Any]:
        start = int(params.get("nextToken") or 0)
        size = params.get("maxResults", 100)
        page = self._names[start : start + size]
        things = [self._document(start + i, name) for i, name in enumerate(page)]
        following = start + size
        answer: dict[str, Any] = {"things": things}
        if following < len(self._names):
            answer["nextToken"] = str(following)
        return answer

    def _document(self, index: int, name: str) -> dict[str, Any]:
        down = self._down_every and index % self._down_every == 0
        flaps = self._flap_every and index % self._flap_every == 1
        out = (
            self._outage_every
            and self.cycle >= self._outage_cycle
            and index % self._outage_every == self._outage_every - 1
        )
        connected = not (down or out)
        moved = self.cycle if flaps else (self._outage_cycle if out else 0)
        timestamp = 1_700_000_000_000 + index * 1000 + moved * 60_000
        connectivity: dict[str, Any] = {"connected": connected, "timestamp": timestamp}
        if not connected:
            connectivity["disconnectReason"] = REASONS[index % len(REASONS)]
        return {
            "thingName": name,
            "thingTypeName": TYPES[index % 3],
            "attributes": {"site": f"plant-{index % 50}", "firmware": f"1.{index % 4}.0"},
            "connectivity": connectivity,
        }


def _every(share: float) -> int:
    """One thing in this many has the property (0: none)."""
    return round(1 / share) if share > 0 else 0


def measure_memory(things: int, args: argparse.Namespace) -> dict[str, Any]:
    """Child process: index mode with registry labels over an in-memory index."""
    gc.collect()
    rss0 = rss_bytes()
    names = thing_names(things)
    client = SyntheticIndex(
        names, disconnected=args.disconnected, flapping=args.flapping, outage=args.outage
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        _config(
            path,
            "http://127.0.0.1:1",
            poll={"mode": "index", "interval": "1h"},
            discovery={"queries": ["thingName:*"], "max_things": things},
            registry={"attributes": ["site", "firmware"], "promote": ["thing_type"]},
            labels={"env": "bench"},
            # The in-memory index answers at once; pacing its pages at the default 10/s
            # would add 100 s a pass at 100,000 things and measure nothing.
            budgets={"SearchIndex": 10_000},
            metrics={"per_thing": args.per_thing, "rollup_by": _labels(args.rollup_by)},
        )

        def factory(config: Config) -> Any:
            return client

        collectors = CollectorRegistry()
        exporter = Exporter(lambda: load_config(path), factory, collectors=collectors)
        pass_cpu = []
        for cycle in range(3):
            client.cycle = cycle
            cpu = cpu_seconds()
            exporter.run_all()
            pass_cpu.append(cpu_seconds() - cpu)
        renders = []
        for _ in range(3):
            exporter.render_now()
            renders.append(_render_seconds(collectors))
        gc.collect()
        rss = rss_bytes() - rss0
        page = exporter.payload().plain
        payload = len(page)
        result: dict[str, Any] = {
            "series": sum(1 for line in page.splitlines() if not line.startswith(b"#")),
            "things": things,
            "rss_mib": rss / 2**20,
            "rss_kib_per_thing": rss / things / 1024,
            "render_s": median(renders),
            "payload_mib": payload / 2**20,
            "pass_cpu_us_per_thing": median(pass_cpu) / things * 1e6,
            "listed": collectors.get_sample_value("iot_exporter_problem_things"),
        }
        if args.outage:
            client.cycle = 3
            exporter.run_all()
            exporter.render_now()
            result["outage_render_s"] = _render_seconds(collectors)
            result["outage_payload_mib"] = len(exporter.payload().plain) / 2**20
            result["outage_left_out"] = collectors.get_sample_value(
                "iot_exporter_problem_things_left_out"
            )
        exporter.stop()
    return result


def _render_seconds(collectors: CollectorRegistry) -> float:
    """The last rendering's duration as the exporter measures it: from reading the state to
    the new page in place (a garbage collection it defers runs after; see renderer.py)."""
    value = collectors.get_sample_value("iot_exporter_render_duration_seconds")
    assert value is not None
    return value


def _labels(text: str) -> list[str]:
    return [label for label in text.split(",") if label]


def run_memory(args: argparse.Namespace) -> None:
    print(f"# exporter_fleet memory  {now_utc()}  {machine()}")
    print(
        "registry labels on: thing_type and two attributes on iot_thing_info, one promoted;"
        f" per_thing: {args.per_thing}; rollup_by: [{args.rollup_by}];"
        f" disconnected {args.disconnected:.1%},"
        f" flapping {args.flapping:.1%}, mass outage {args.outage:.0%}"
    )
    print(
        "| things | RSS MiB | RSS KiB/thing | render s (text + gzip) | /metrics MiB | series"
        " | pass CPU us/thing | listed | after outage: render s, MiB, left out |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(n) for n in args.things.split(",")):
        command = [sys.executable, __file__, "memory", "--child", str(size)]
        command += ["--per-thing", args.per_thing, "--disconnected", str(args.disconnected)]
        command += ["--flapping", str(args.flapping), "--outage", str(args.outage)]
        command += ["--rollup-by", args.rollup_by]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        outage = ""
        if "outage_render_s" in r:
            outage = f"{r['outage_render_s']:.2f}, {r['outage_payload_mib']:.2f}, "
            outage += f"{r['outage_left_out']:,.0f}"
        print(
            f"| {r['things']:,} | {r['rss_mib']:.0f} | {r['rss_kib_per_thing']:.2f} "
            f"| {r['render_s']:.3f} | {r['payload_mib']:.2f} | {r['series']:,} "
            f"| {r['pass_cpu_us_per_thing']:.1f} "
            f"| {r['listed']:,.0f} | {outage} |",
            flush=True,
        )
    print(f"load {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    index = modes.add_parser("index", help="index mode against live mode, one run")
    index.add_argument("--things", type=int, default=100_000)
    index.add_argument("--budget", type=float, default=100.0, help="SearchIndex requests/s")
    index.add_argument("--live-sample", type=int, default=5_000)
    index.add_argument("--cycles", type=int, default=3)
    startup = modes.add_parser("startup", help="process start to listening and serving")
    startup.add_argument("--things", default="1000,10000,100000")
    startup.add_argument("--budget", type=float, default=100.0, help="SearchIndex requests/s")
    startup.add_argument("--runs", type=int, default=3)
    memory = modes.add_parser("memory", help="RSS per thing and render time")
    memory.add_argument("--things", default="1000,10000,100000")
    memory.add_argument("--child", type=int, help=argparse.SUPPRESS)
    memory.add_argument("--per-thing", choices=("all", "problems", "none"), default="all")
    memory.add_argument("--disconnected", type=float, default=0.1, help="share disconnected")
    memory.add_argument("--flapping", type=float, default=0.05, help="share flapping")
    memory.add_argument("--outage", type=float, default=0.0, help="share a 4th pass disconnects")
    memory.add_argument(
        "--rollup-by", default="", help="metrics.rollup_by, comma-separated (thing_type,site)"
    )
    args = parser.parse_args()
    if args.mode == "index":
        run_index(args)
    elif args.mode == "startup":
        run_startup(args)
    elif args.child is not None:
        print(json.dumps(measure_memory(args.child, args)))
    else:
        run_memory(args)


if __name__ == "__main__":
    main()
