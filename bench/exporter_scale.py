"""Benchmark: how poll-cycle time, CPU, render time and RSS grow with the number of things.

Each fleet size runs in a fresh process, so its RSS is its own. Two paths:

- `synthetic` (default): the real composition root fed by an in-memory IoT client
  (bench/_common.py: SyntheticIoT); it shows the exporter's own growth, without the SDK,
  at the config's highest budget (10,000/s), which then floors a cycle at N/10,000 s.
- `simulator`: real boto3 over HTTP to the simulator in a separate process, quotas off,
  budget 10,000/s; cycle time is then bounded by what boto3 and the simulator sustain
  together on this machine.

    .venv/bin/python bench/exporter_scale.py --things 1000,5000,10000,50000,100000
    .venv/bin/python bench/exporter_scale.py --path simulator --things 1000,5000,10000
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench._common import (
    SyntheticIoT,
    bench_client_factory,
    cpu_seconds,
    fleet_render_seconds,
    load_average,
    machine,
    median,
    now_utc,
    rss_bytes,
    simulator_process,
    write_config,
)
from exporter.app import Exporter
from exporter.config import Config, load_config


def measure(things: int, path_kind: str, cycles: int, concurrency: int) -> dict[str, Any]:
    """Child process: build, poll `cycles` times, render; return the figures."""
    gc.collect()
    rss0 = rss_bytes()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        synthetic = SyntheticIoT()
        if path_kind == "simulator":
            sim = stack.enter_context(
                simulator_process(["--things", str(things), "--no-quotas", "--seed", "1"])
            )
            url = sim.url
        else:
            url = "http://127.0.0.1:1"  # never contacted: the synthetic client answers

        def factory(config: Config) -> Any:
            return synthetic if path_kind == "synthetic" else bench_client_factory(config)

        config = tmp / "config.yaml"
        write_config(
            config, endpoint_url=url, things=things, budget=10_000,
            concurrency=concurrency, sites=50,
        )  # fmt: skip
        start = time.perf_counter()
        registry = CollectorRegistry()
        exporter = Exporter(lambda: load_config(config), factory, collectors=registry)
        startup = time.perf_counter() - start
        walls: list[float] = []
        cpus: list[float] = []
        for _ in range(cycles):
            synthetic.next_cycle()
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            exporter.run_pass("live")
            exporter.render_now()
            walls.append(time.perf_counter() - wall0)
            cpus.append(cpu_seconds() - cpu0)
        gc.collect()
        rss = rss_bytes() - rss0
        exporter.stop()
    render_text, render_gzip = fleet_render_seconds(things, cycles)
    steady = slice(1, None) if cycles > 1 else slice(None)
    return {
        "things": things,
        "startup_s": startup,
        "cycle_s": median(walls[steady]),
        "cycle_cpu_s": median(cpus[steady]),
        "render_s": render_text + render_gzip,
        "rss_mib": rss / 2**20,
        "rss_kib_per_thing": rss / things / 1024,
        "payload_mib": len(exporter.payload().plain) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--things", default="1000,5000,10000,50000,100000")
    parser.add_argument("--path", choices=("synthetic", "simulator"), default="synthetic")
    parser.add_argument("--cycles", type=int, default=3, help="cycles per size (first is warm-up)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.path, args.cycles, args.concurrency)))
        return
    print(f"# exporter_scale ({args.path})  {now_utc()}  {machine()}")
    print(
        "| things | start-up s | cycle s | cycle CPU s | CPU ms/thing | render s "
        "| /metrics MiB | RSS MiB | RSS KiB/thing |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(n) for n in args.things.split(",")):
        command = [
            sys.executable, __file__, "--child", str(size), "--path", args.path,
            "--cycles", str(args.cycles), "--concurrency", str(args.concurrency),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {r['things']:,} | {r['startup_s']:.2f} | {r['cycle_s']:.2f} "
            f"| {r['cycle_cpu_s']:.2f} | {1000 * r['cycle_cpu_s'] / r['things']:.3f} "
            f"| {r['render_s']:.2f} | {r['payload_mib']:.1f} | {r['rss_mib']:.0f} "
            f"| {r['rss_kib_per_thing']:.2f} |",
            flush=True,
        )
    print(f"load {load_average()}")


if __name__ == "__main__":
    main()
