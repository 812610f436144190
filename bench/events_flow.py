"""Lifecycle events end to end through moto's real SQS server on 127.0.0.1: events applied per
second by one exporter, the exporter's CPU per event against moto's CPU per message, and the
time from sending an event to its change showing in the served /metrics. Bounded in time.

moto_server runs as a subprocess (its CPU is read from /proc, not counted as ours). The
exporter is the real composition root (exporter.app.Exporter with the production SQS client,
its consumers, renderer and HTTP server) in this process; the IoT poll answers from memory
(every thing connected an hour ago, polled once: poll.interval is 1h), so what this process
spends in the measured windows is the event path.

- throughput: the queue is filled first (before the exporter exists), then the exporter
  drains it; rate and CPU are taken between 10% and 90% of the events applied, so start-up
  and the tail are left out.
- latency: one disconnect at a time for a thing; the clock runs from send_message to the
  thing's iot_thing_disconnects_total moving in a GET /metrics (polled every 5 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config as BotocoreConfig
from prometheus_client import CollectorRegistry

from bench._common import (
    cpu_seconds,
    load_average,
    machine,
    median,
    now_utc,
    percentile,
    serve,
    thing_names,
)
from exporter.app import Exporter
from exporter.config import Config, load_config

REGION = "eu-west-1"
TICK = os.sysconf("SC_CLK_TCK")
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "AKIDEXPORTERBENCH001"),
    ("AWS_SECRET_ACCESS_KEY", "exporter-bench-secret"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
):
    os.environ[_name] = _value


@dataclass(frozen=True, slots=True)
class Moto:
    url: str
    process: subprocess.Popen[bytes]

    def cpu(self) -> float:
        """moto_server's user + system CPU seconds so far, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


@contextmanager
def moto_server() -> Iterator[Moto]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield Moto(url, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def sqs_client(url: str) -> Any:
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=url,
        config=BotocoreConfig(retries={"max_attempts": 2}, max_pool_connections=16),
    )


class ConnectedAnHourAgo:
    """The IoT client: every thing connected an hour before the bench started."""

    class meta:  # noqa: N801 - mirrors botocore's client.meta
        region_name = REGION
        method_to_api_mapping = {"get_thing_connectivity_data": "GetThingConnectivityData"}

    def __init__(self) -> None:
        self._since = dt.datetime.fromtimestamp(time.time() - 3600, dt.UTC)

    def get_thing_connectivity_data(self, *, thingName: str) -> dict[str, Any]:  # noqa: N803
        return {"thingName": thingName, "connected": True, "timestamp": self._since}

    def close(self) -> None:
        pass


class Lifecycle:
    """Each thing's next event, alternately disconnect and connect, one session per connection."""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}

    def disconnected(self, thing: str) -> bool:
        """Whether the last event made for `thing` was a disconnect."""
        return self._count.get(thing, 0) % 2 == 1

    def next(self, thing: str) -> str:
        count = self._count.get(thing, 0)
        self._count[thing] = count + 1
        disconnect = count % 2 == 0
        session = count // 2 if disconnect else count // 2 + 1
        document: dict[str, Any] = {
            "clientId": thing,
            "timestamp": int(time.time() * 1000),
            "eventType": "disconnected" if disconnect else "connected",
            "sessionIdentifier": f"{thing}-{session}",
            "principalIdentifier": "bench",
            "versionNumber": count + 2,
        }
        if disconnect:
            document["disconnectReason"] = "CONNECTION_LOST"
        return json.dumps(document)


def fill(client: Any, queue_url: str, bodies: list[str], threads: int) -> float:
    """Send `bodies` in batches of 10 from `threads` threads; return the wall seconds."""
    batches = [bodies[i : i + 10] for i in range(0, len(bodies), 10)]

    def send(batch: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
        failed = client.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"send failed: {failed[:1]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, batches))
    return time.perf_counter() - start


def write_config(path: Path, things: list[str], queue_url: str, moto_url: str, args: Any) -> None:
    document = {
        "aws": {"region": REGION, "endpoint_url": "http://127.0.0.1:1"},
        "poll": {"interval": "1h", "max_requests_per_second": 10_000, "concurrency": 8},
        "things": things,
        "events": {"queue_url": queue_url, "endpoint_url": moto_url, "consumers": args.consumers},
        "budgets": {"ReceiveMessage": 1_000, "DeleteMessageBatch": 1_000},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def applied(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("iot_exporter_events_applied_total") or 0.0


def throughput(exporter_registry: CollectorRegistry, moto: Moto, events: int) -> None:
    """Follow the drain: rate and CPU (ours, moto's) between 10% and 90% applied."""
    low, high = 0.1 * events, 0.9 * events
    marks: dict[str, tuple[float, float, float, float]] = {}
    deadline = time.monotonic() + 600
    while "high" not in marks:
        done = applied(exporter_registry)
        if "low" not in marks and done >= low:
            marks["low"] = (time.perf_counter(), cpu_seconds(), moto.cpu(), done)
        if "low" in marks and done >= high:
            marks["high"] = (time.perf_counter(), cpu_seconds(), moto.cpu(), done)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done:.0f} of {events} applied in 10 minutes")
        time.sleep(0.01)
    (w0, c0, m0, a0), (w1, c1, m1, a1) = marks["low"], marks["high"]
    count = a1 - a0
    print(
        f"throughput: {count:.0f} events applied in {w1 - w0:.2f} s = {count / (w1 - w0):,.0f}"
        f" events/s; exporter CPU {1000 * (c1 - c0) / count:.3f} ms/event"
        f" ({100 * (c1 - c0) / (w1 - w0):.0f}% of a core); moto CPU"
        f" {1000 * (m1 - m0) / count:.3f} ms/message ({100 * (m1 - m0) / (w1 - w0):.0f}% of a core)"
    )


def disconnects(port: int, thing: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        body = connection.getresponse().read()
    finally:
        connection.close()
    needle = f'thing_name="{thing}"'.encode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(b"iot_thing_disconnects_total{") and needle in line:
            total += float(line.rsplit(b" ", 1)[1])
    return total


def latency(
    client: Any,
    queue_url: str,
    port: int,
    *,
    things: list[str],
    lifecycle: Lifecycle,
    samples: int,
) -> None:
    seconds: list[float] = []
    for index in range(samples):
        thing = things[index % len(things)]
        if lifecycle.disconnected(thing):  # the fill left it disconnected: reconnect it first
            client.send_message(QueueUrl=queue_url, MessageBody=lifecycle.next(thing))
        before = disconnects(port, thing)
        start = time.perf_counter()
        client.send_message(QueueUrl=queue_url, MessageBody=lifecycle.next(thing))
        deadline = start + 30
        while disconnects(port, thing) == before:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{thing}: no change in /metrics 30 s after its disconnect")
            time.sleep(0.005)
        seconds.append(time.perf_counter() - start)
    print(
        f"latency, send to /metrics: {samples} disconnects: median {1000 * median(seconds):.0f} ms,"
        f" p99 {1000 * percentile(seconds, 0.99):.0f} ms, max {1000 * max(seconds):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--things", type=int, default=1_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    print(f"{now_utc()} {machine()} load {load_average()}")
    names = thing_names(args.things)
    lifecycle = Lifecycle()
    with moto_server() as moto, tempfile.TemporaryDirectory() as tmp:
        client = sqs_client(moto.url)
        queue_url = client.create_queue(
            QueueName="lifecycle", Attributes={"VisibilityTimeout": "60"}
        )["QueueUrl"]
        bodies = [lifecycle.next(names[i % len(names)]) for i in range(args.events)]
        moto_before = moto.cpu()
        wall = fill(client, queue_url, bodies, threads=4)
        print(
            f"fill: {args.events} messages in batches of 10 from 4 threads: {wall:.1f} s"
            f" ({args.events / wall:,.0f}/s); moto CPU"
            f" {1000 * (moto.cpu() - moto_before) / args.events:.3f} ms/message sent"
        )
        path = Path(tmp) / "config.yaml"
        write_config(path, names, queue_url, moto.url, args)
        registry = CollectorRegistry()
        iot = ConnectedAnHourAgo()

        def factory(_: Config) -> Any:
            return iot

        exporter = Exporter(lambda: load_config(path), factory, collectors=registry)
        server, port = serve(exporter)
        exporter.start()
        try:
            print(
                f"exporter: {args.things} things, {args.consumers} consumers,"
                f" ReceiveMessage and DeleteMessageBatch budgets 1,000/s"
            )
            throughput(registry, moto, args.events)
            deadline = time.monotonic() + 120
            while applied(registry) < args.events:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{applied(registry):.0f} of {args.events} applied")
                time.sleep(0.05)
            latency(
                client, queue_url, port, things=names, lifecycle=lifecycle, samples=args.samples
            )
            for name in ("received", "applied", "duplicates", "out_of_order", "not_targeted"):
                value = registry.get_sample_value(f"iot_exporter_events_{name}_total")
                print(f"  {name}: {value:.0f}")
            for operation in ("ReceiveMessage", "DeleteMessageBatch"):
                calls = (
                    registry.get_sample_value(
                        "iot_exporter_api_requests_total", {"operation": operation}
                    )
                    or 0.0
                )
                print(f"  {operation} calls: {calls:.0f}")
        finally:
            server.shutdown()
            server.server_close()
            exporter.stop()
    print(f"load {load_average()}")


if __name__ == "__main__":
    main()
