"""Shared benchmark helpers: a simulator in its own process, machine facts, RSS and statistics."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore
import yaml

from exporter.app import Exporter
from exporter.aws.clients import known_disconnect_reasons, make_iot_client
from exporter.config import Config
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.connectivity import FleetState
from exporter.fleet.targets import STATIC_SOURCE, Found, SourceSlot, Targets
from exporter.sources.live import parse_response
from exporter.web.payload import Payload
from exporter.web.server import Endpoints, ExporterHTTPServer

# The simulator accepts any signature unless told otherwise; these only have to exist.
BENCH_CREDENTIALS = ("AKIDEXPORTERBENCH001", "exporter-bench-secret")


@dataclass(frozen=True, slots=True)
class SimulatorProcess:
    url: str
    process: subprocess.Popen[str]


# The fleet the benches build: the simulator's thing types, and a client that never looks
# for real AWS credentials or config.
TYPES = ("sensor", "gateway", "controller")
AWS_TEST_ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def simulator_process(args: Sequence[str]) -> Iterator[SimulatorProcess]:
    """`python -m iot_simulator ARGS` on 127.0.0.1, so its CPU is not this process's."""
    command = [sys.executable, "-m", "iot_simulator", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"simulator did not start (first line {url!r})")
        yield SimulatorProcess(url=url, process=process)
    finally:
        stop_process(process, timeout=10)


def bench_client_factory(config: Config) -> Any:
    """The production client (exporter.aws.make_iot_client) with dummy static credentials."""
    return make_iot_client(
        config.aws, config.poll.concurrency, static_credentials=BENCH_CREDENTIALS
    )


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds() -> float:
    """User + system CPU of this whole process (every thread), from getrusage."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """One line naming the machine and the software versions the figures depend on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} x {model}; Python {platform.python_version()}; "
        f"boto3 {boto3.__version__}; botocore {botocore.__version__}"
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """min..max, so a reader sees the noise next to the median."""
    return f"{min(values):.3g}..{max(values):.3g}"


def thing_names(count: int, prefix: str = "thing-") -> list[str]:
    """The simulator's naming: thing-00001 ... (five digits, wider past 99,999)."""
    return [f"{prefix}{i:05d}" for i in range(1, count + 1)]


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def write_config(
    path: Path,
    *,
    endpoint_url: str,
    things: int,
    budget: float,
    concurrency: int,
    sites: int = 0,
) -> None:
    """A config like an operator's: a static label, and a `site` label per thing if sites > 0."""
    names = thing_names(things)
    listed: list[Any] = (
        [{"name": name, "labels": {"site": f"plant-{i % sites}"}} for i, name in enumerate(names)]
        if sites
        else names
    )
    document = {
        "aws": {"region": "eu-west-1", "endpoint_url": endpoint_url},
        "poll": {
            # Cycles are driven by hand; the scheduler is never started.
            "interval": "1h",
            "max_requests_per_second": budget,
            "concurrency": concurrency,
        },
        "labels": {"env": "bench"},
        "things": listed,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


REASONS = (
    "CONNECTION_LOST",
    "MQTT_KEEP_ALIVE_TIMEOUT",
    "CLIENT_INITIATED_DISCONNECT",
    "SERVER_INITIATED_DISCONNECT",
    "DUPLICATE_CLIENTID",
)


class SyntheticIoT:
    """Stands in for the IoT client in memory: answers shaped as boto3 parses them, no HTTP.

    For measuring everything but the SDK (sources, fleet, exposition, memory) at fleet sizes
    the simulator cannot serve quickly. Per cycle: about 90% of things connected, 8%
    disconnected with a reason, 2% never connected; each cycle about 5% of things get a
    newer timestamp, so after a few cycles a realistic fraction carries per-thing counters.

    With `sessions`, a connected thing's answer also carries the MQTT session fields AWS
    returns for it (issue 18), fixed per thing: clientId (the thing's name, for about 1%
    another), keepAliveDuration (30, 60, 300 or 1200 s), cleanSession, and sessionExpiry
    (0 for a clean session, else 3600 s, as the simulator sets them).
    """

    def __init__(self, start: float = 1_700_000_000.0, *, sessions: bool = False) -> None:
        # What the exporter reads of a boto3 client besides the call itself.
        self.meta = SimpleNamespace(
            region_name="eu-west-1",
            endpoint_url=None,
            method_to_api_mapping={"get_thing_connectivity_data": "GetThingConnectivityData"},
        )
        self.cycle = 0
        self._start = start
        self._sessions = sessions
        self._lock = threading.Lock()

    def next_cycle(self) -> None:
        with self._lock:
            self.cycle += 1

    def get_thing_connectivity_data(self, *, thingName: str) -> dict[str, Any]:  # noqa: N803
        key = zlib.crc32(thingName.encode())
        bucket = key % 100
        if bucket < 2:
            return {"thingName": thingName, "connected": False}
        # A thing "moves" in the cycles where its hash says so: that is its flap rate.
        moves = _moves(key, self.cycle)
        seconds = self._start + (key % 86_400) + 60.0 * moves
        answer: dict[str, Any] = {
            "thingName": thingName,
            "connected": bucket >= 10,
            "timestamp": dt.datetime.fromtimestamp(seconds, dt.UTC),
        }
        if bucket < 10:
            answer["disconnectReason"] = REASONS[key % len(REASONS)]
        elif self._sessions:
            answer.update(_session_fields(thingName, key))
        return answer

    def close(self) -> None:
        pass


KEEP_ALIVES = (30, 60, 300, 1200)


def _session_fields(name: str, key: int) -> dict[str, Any]:
    """A connected thing's session fields, from bits of its hash that the state does not use."""
    clean = bool((key >> 13) & 1)
    return {
        "clientId": name if (key >> 16) % 100 else f"{name}-client",
        "keepAliveDuration": KEEP_ALIVES[(key >> 11) % len(KEEP_ALIVES)],
        "cleanSession": clean,
        "sessionExpiry": 0 if clean else 3600,
    }


def _moves(key: int, cycle: int) -> int:
    """How many of cycles 1..cycle have c % 20 == (key >> 7) % 20, in closed form.

    The same count as summing over the cycles, without the cost that grows with the cycle
    number (a soak of 10,000 cycles would otherwise spend most of its time here).
    """
    phase = (key >> 7) % 20
    if phase == 0:
        return cycle // 20
    return 0 if cycle < phase else (cycle - phase) // 20 + 1


@dataclass(frozen=True, slots=True)
class SyntheticFleet:
    """A fleet fed from SyntheticIoT's answers, ready to render, and its thing names."""

    names: list[str]
    targets: Targets
    fleet: FleetState
    now: float


def synthetic_fleet(things: int, cycles: int = 3, *, sessions: bool = False) -> SyntheticFleet:
    """Targets and fleet state fed with `cycles` of parsed SyntheticIoT answers, the way
    exporter/app.py feeds them, outside the Exporter."""
    client = SyntheticIoT(sessions=sessions)
    fleet = FleetState(known_disconnect_reasons())
    names = thing_names(things)
    targets = Targets([SourceSlot(STATIC_SOURCE, live=True, max_things=None)])
    targets.extend(STATIC_SOURCE, [Found(name) for name in names])
    now = 1_700_000_000.0
    for _ in range(cycles):
        client.next_cycle()
        fleet.apply(
            parse_response(name, client.get_thing_connectivity_data(thingName=name), now)
            for name in names
        )
    return SyntheticFleet(names, targets, fleet, now)


def bench_shape(names: Sequence[str], **options: Any) -> Shape:
    """The benches' Shape: an `env` label for all, a `site` label per thing, and `options`
    (per_thing, session_details, ...) as Shape takes them."""
    return Shape(
        staleness=300.0,
        static_labels={"env": "bench"},
        thing_labels={name: {"site": f"plant-{i % 50}"} for i, name in enumerate(names)},
        label_names=("env", "site"),
        **options,
    )


def fleet_render_seconds(
    things: int, cycles: int = 3, repeats: int = 3, *, sessions: bool = False, **options: Any
) -> tuple[float, float]:
    """The cost of one rendering of the fleet: (exposition text s, gzip s), medians.

    `sessions` puts the session fields in the connected things' answers; `options` go to
    the Shape (session_details=True shows them). Timed alone, outside the Exporter.
    """
    built = synthetic_fleet(things, cycles, sessions=sessions)
    exposition = Exposition(bench_shape(built.names, **options))
    text: list[float] = []
    compress: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        plain = exposition.render(built.targets, built.fleet, {}, built.now).text
        middle = time.perf_counter()
        Payload.of(plain)
        text.append(middle - start)
        compress.append(time.perf_counter() - middle)
    return median(text), median(compress)


def serve(exporter: Exporter) -> tuple[ExporterHTTPServer, int]:
    """The exporter's /metrics on a free port of 127.0.0.1, served in a thread, and the port."""
    endpoints = Endpoints("/metrics", exporter.payload, exporter.ready, exporter.reload)
    server = ExporterHTTPServer(("127.0.0.1", 0), endpoints)
    server.serve_in_thread()
    return server, int(server.server_address[1])
