"""Benchmark: poll-cycle throughput against the budget, throttles, and exporter CPU per API call.

The simulator runs in its own process (its CPU is not counted), with 20 ms added latency and
its default 350 TPS GetThingConnectivityData quota on, so any overshoot shows as throttles.
The exporter (composition root, production client, poller, rate limiter, fleet, render) runs
in this process; CPU is this process's user+system time across each whole cycle.

    .venv/bin/python bench/exporter_poll.py                      # 10,000 things, 3 cycles
    .venv/bin/python bench/exporter_poll.py calls --calls 2000   # per-call CPU, config A/B
    .venv/bin/python bench/exporter_poll.py gaps                 # what runs between calls
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.config import Config as BotocoreConfig
from prometheus_client import CollectorRegistry

from bench._common import (
    BENCH_CREDENTIALS,
    cpu_seconds,
    fleet_render_seconds,
    load_average,
    machine,
    median,
    now_utc,
    simulator_process,
    spread,
    thing_names,
)
from exporter.app import Exporter
from exporter.aws.clients import client_config, make_iot_client, make_session
from exporter.config import Config, load_config
from exporter.config.aws import AwsSettings
from exporter.names import POLL_OPERATION

# -- client variants (for the A/B mode; the cycle mode uses the production client) ----------

ClientMaker = Callable[[AwsSettings, int], Any]


def _client(settings: AwsSettings, config: BotocoreConfig, *, epoch: bool = True) -> Any:
    session = make_session(settings, static_credentials=BENCH_CREDENTIALS, epoch_timestamps=epoch)
    return session.client("iot", endpoint_url=settings.endpoint_url, config=config)


def _overlay(*, epoch: bool = True, **options: Any) -> ClientMaker:
    def make(settings: AwsSettings, pool: int) -> Any:
        config = client_config(settings, pool).merge(BotocoreConfig(**options))
        return _client(settings, config, epoch=epoch)

    return make


def _production(settings: AwsSettings, pool: int) -> Any:
    return make_iot_client(settings, pool, static_credentials=BENCH_CREDENTIALS)


def _plain(settings: AwsSettings, pool: int) -> Any:
    # What a first implementation would write: defaults, except botocore's own retries off.
    config = BotocoreConfig(retries={"total_max_attempts": 1}, max_pool_connections=pool)
    return _client(settings, config, epoch=False)


VARIANTS: dict[str, ClientMaker] = {
    "plain": _plain,
    "production": _production,
    # Each of these is the production client with one thing changed.
    "datetime-timestamps": _overlay(epoch=False),
    "legacy-retries": _overlay(retries={"total_max_attempts": 1, "mode": "legacy"}),
    "validate-params": _overlay(parameter_validation=True),
    "checksums-default": _overlay(
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    ),
    "account-id-disabled": _overlay(account_id_endpoint_mode="disabled"),
    "no-keepalive": _overlay(tcp_keepalive=False),
    "no-host-prefix": _overlay(inject_host_prefix=False),
}


# -- cycle mode -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CycleResult:
    calls: int
    throttles: int
    seconds: float
    cpu: float

    def rate_fraction(self, budget: float) -> float:
        return self.calls / self.seconds / budget

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000.0 * self.cpu / max(1, self.calls)


def _counter(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _sim_throttles(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_simulator/requests", timeout=5) as response:
        body = json.load(response)
    return sum(
        int(row["count"])
        for row in body["requests"]
        if row["operation"] == POLL_OPERATION and row["outcome"] == "ThrottlingException"
    )


def run_cycles(args: argparse.Namespace) -> None:
    sim_args = ["--things", str(args.things), "--latency", str(args.latency), "--seed", "1"]
    print(f"# exporter_poll cycle  {now_utc()}  {machine()}")
    print(
        f"# things={args.things} budget={args.budget}/s concurrency={args.concurrency} "
        f"latency={args.latency}s simulator quota=350/s (default, on)"
    )
    with simulator_process(sim_args) as sim, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        document = {
            "aws": {"region": "eu-west-1", "endpoint_url": sim.url},
            "poll": {
                "interval": "1h",  # cycles are driven by hand; the scheduler is not started
                "max_requests_per_second": args.budget,
                "concurrency": args.concurrency,
            },
            "labels": {"env": "bench"},
            "things": thing_names(args.things),
        }
        path.write_text(yaml.safe_dump(document))
        registry = CollectorRegistry()
        clients: list[Any] = []

        def factory(config: Config) -> Any:
            client = VARIANTS[args.variant](config.aws, config.poll.concurrency)
            clients.append(client)
            return client

        exporter = Exporter(lambda: load_config(path), factory, collectors=registry)
        # Start-up excluded: open the pool's connections and warm botocore's lazy caches.
        for name in thing_names(min(args.things, args.concurrency * 4)):
            clients[0].get_thing_connectivity_data(thingName=name)
        time.sleep(1.5)  # let the simulator's token bucket refill after the warm-up
        results: list[CycleResult] = []
        for run in range(1, args.runs + 1):
            calls0 = _counter(registry, "iot_exporter_api_requests_total", operation=POLL_OPERATION)
            throttles0 = _sim_throttles(sim.url)
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            exporter.run_pass("live")
            exporter.render_now()
            wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
            calls = _counter(registry, "iot_exporter_api_requests_total", operation=POLL_OPERATION)
            result = CycleResult(
                calls=int(calls - calls0),
                throttles=_sim_throttles(sim.url) - throttles0,
                seconds=wall,
                cpu=cpu,
            )
            results.append(result)
            print(
                f"run {run}: {result.calls} calls in {wall:.2f}s = "
                f"{result.rate_fraction(args.budget):.3f} of budget, "
                f"throttles {result.throttles}, CPU {result.cpu_ms_per_call:.3f} ms/call, "
                f"load {load_average()}"
            )
            time.sleep(1.5)
        exporter.stop()
    # The fleet's render is part of each cycle; timed alone on an equal synthetic fleet.
    text, compress = fleet_render_seconds(args.things)
    print(
        f"of which rendering the fleet once per cycle: ~{1000 * (text + compress):.0f} ms "
        f"= {1000 * (text + compress) / args.things:.3f} ms/call"
    )
    fractions = [r.rate_fraction(args.budget) for r in results]
    cpu_ms = [r.cpu_ms_per_call for r in results]
    print(
        f"median of {len(results)}: rate {median(fractions):.3f} of budget "
        f"({spread(fractions)}), throttles {sum(r.throttles for r in results)} total, "
        f"CPU {median(cpu_ms):.3f} ms/call ({spread(cpu_ms)})"
    )


# -- calls mode: sequential per-call CPU, variants interleaved so drift hits all alike ---------


def run_calls(args: argparse.Namespace) -> None:
    names = thing_names(min(args.calls, 10_000))
    print(f"# exporter_poll calls  {now_utc()}  {machine()}")
    print(f"# {args.calls} sequential calls per round, {args.rounds} rounds, no quota, no latency")
    with simulator_process(["--things", str(len(names)), "--no-quotas"]) as sim:
        settings = AwsSettings(region="eu-west-1", endpoint_url=sim.url)
        chosen = args.variants.split(",") if args.variants else list(VARIANTS)
        clients = {name: VARIANTS[name](settings, 4) for name in chosen}
        for client in clients.values():
            for name in names[:100]:
                client.get_thing_connectivity_data(thingName=name)
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for variant, client in clients.items():
                start = cpu_seconds()
                for i in range(args.calls):
                    client.get_thing_connectivity_data(thingName=names[i % len(names)])
                samples[variant].append(1000.0 * (cpu_seconds() - start) / args.calls)
        if args.profile:
            # Sequential calls in this thread, so cProfile sees all of botocore's work.
            profiler = cProfile.Profile()
            client = clients[chosen[0]]
            profiler.enable()
            for i in range(args.calls):
                client.get_thing_connectivity_data(thingName=names[i % len(names)])
            profiler.disable()
    print(f"load {load_average()}")
    for variant, values in samples.items():
        print(f"{variant:22s} median {median(values):.3f} ms/call  ({spread(values)})")
    if args.profile:
        print(f"# cProfile of {chosen[0]} (wall time; socket waits show as recv_into)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


# -- gaps mode: the same sequential calls with something between them -----------------------

# What happens between two calls: nothing (back to back), an idle sleep, or other Python
# work in the same thread. Only the calls' own CPU is counted (thread time around each
# call), so a busy gap's spinning does not add to the figure.
GAP_KINDS = ("sleep", "busy")


def _gap(kind: str, seconds: float) -> None:
    if kind == "sleep":
        time.sleep(seconds)
        return
    deadline, scratch = time.perf_counter() + seconds, list[str]()
    while time.perf_counter() < deadline:
        # Ordinary interpreter work, nothing to do with AWS, in a bounded amount of memory
        # so that long gaps differ from short ones in duration only.
        scratch.append(str(len(scratch)))
        if len(scratch) >= 1000:
            scratch.clear()


def _calls_with_gaps(
    client: Any, names: list[str], calls: int, *, kind: str, gap: float, burst: int
) -> float:
    """ms of this thread's CPU per call, for `burst` calls back to back then burst x gap."""
    spent = 0.0
    for i in range(calls):
        if gap and i % burst == 0:
            _gap(kind, gap * burst)
        start = time.thread_time()
        client.get_thing_connectivity_data(thingName=names[i % len(names)])
        spent += time.thread_time() - start
    return 1000.0 * spent / calls


def run_gaps(args: argparse.Namespace) -> None:
    """Shows that a call's CPU depends on what ran just before it, not on idling alone."""
    names = thing_names(2000)
    gaps = [float(g) / 1000 for g in args.gaps.split(",")]
    bursts = [int(b) for b in args.bursts.split(",")]
    if min(bursts) < 1:
        raise SystemExit(f"--bursts: each burst is at least 1 call, got {args.bursts}")
    scenarios = [("back to back", 0.0, 1)] + [
        (kind, gap, burst) for gap in gaps if gap for kind in GAP_KINDS for burst in bursts
    ]
    print(f"# exporter_poll gaps  {now_utc()}  {machine()}")
    print(f"# {args.calls} sequential production-client calls per scenario, no quota, no latency")
    with simulator_process(["--things", str(len(names)), "--no-quotas"]) as sim:
        client = _production(AwsSettings(region="eu-west-1", endpoint_url=sim.url), 4)
        for name in names[:100]:
            client.get_thing_connectivity_data(thingName=name)
        samples: dict[tuple[str, float, int], list[float]] = {s: [] for s in scenarios}
        for _ in range(args.rounds):
            for kind, gap, burst in scenarios:
                samples[kind, gap, burst].append(
                    _calls_with_gaps(client, names, args.calls, kind=kind, gap=gap, burst=burst)
                )
    print(f"load {load_average()}")
    print(f"{'between calls':14s} {'gap':>8s} {'burst':>5s}  CPU per call (thread time)")
    for (kind, gap, burst), values in samples.items():
        print(
            f"{kind:14s} {1000 * gap:6.2f}ms {burst:5d}  "
            f"median {median(values):.3f} ms ({spread(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    parser.set_defaults(mode="cycle")
    _cycle_arguments(parser)
    _cycle_arguments(sub.add_parser("cycle", help="poll cycles within the budget (default)"))
    calls = sub.add_parser("calls", help="sequential per-call CPU of botocore config variants")
    calls.add_argument("--calls", type=int, default=2000, help="calls per variant per round")
    calls.add_argument("--rounds", type=int, default=5)
    calls.add_argument("--variants", default="", help=f"comma-separated of {','.join(VARIANTS)}")
    calls.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile the first variant; top N"
    )
    gaps = sub.add_parser("gaps", help="per-call CPU with idle or busy gaps between calls")
    gaps.add_argument("--gaps", default="2.86,20", help="milliseconds per call, comma-separated")
    gaps.add_argument(
        "--bursts", default="1,10,50", help="calls back to back between gaps, comma-separated"
    )
    gaps.add_argument("--calls", type=int, default=600)
    gaps.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "gaps":
        run_gaps(args)
    elif args.mode == "calls":
        run_calls(args)
    else:
        run_cycles(args)


def _cycle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--things", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=350.0, help="max_requests_per_second")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.02, help="simulator added latency (s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="production")


if __name__ == "__main__":
    main()
