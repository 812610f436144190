"""Benchmark: signed GetThingConnectivityData requests per second served, and server CPU each.

The simulator runs in this process; clients run in other processes and replay requests that
were SigV4-signed before the clock starts, over keep-alive connections, so neither signing nor
client work is counted as server CPU. The simulator verifies every signature (strict
credentials), as it would for a test that configures them.

    .venv/bin/python bench/simulator_throughput.py --runs 3 --seconds 5 --clients 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench._common import cpu_seconds
from exporter.simulator import Simulator, SimulatorConfig

ACCESS_KEY, SECRET = "AKIDBENCHMARK", "bench-secret"
REGION = "eu-west-1"
Prepared = tuple[str, str, dict[str, str], bytes]


@dataclass(frozen=True)
class RunResult:
    requests: int
    errors: int
    seconds: float
    server_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000.0 * self.server_cpu / max(1, self.requests)


def sign_requests(url: str, names: list[str]) -> list[Prepared]:
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "iot", REGION)
    prepared: list[Prepared] = []
    for name in names:
        path = f"/things/{name}/connectivity-data"
        request = AWSRequest(method="POST", url=url + path, data=b"{}")
        request.headers["Content-Type"] = "application/json"
        signer.add_auth(request)
        headers = {k: str(v) for k, v in request.headers.items()}
        prepared.append(("POST", path, headers, b"{}"))
    return prepared


def client(port: int, prepared: list[Prepared], seconds: float, go: EventType, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    go.wait()
    done = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        method, path, headers, body = prepared[done % len(prepared)]
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            errors += 1
        done += 1
    conn.close()
    out.put((done, errors))


def one_run(sim: Simulator, prepared: list[Prepared], clients: int, seconds: float) -> RunResult:
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=client, args=(sim.port, prepared, seconds, go, out))
        for _ in range(clients)
    ]
    for w in workers:
        w.start()
    time.sleep(1.0)  # let the spawned clients import and connect before the clock starts
    cpu0, t0 = cpu_seconds(), time.monotonic()
    go.set()
    results = [out.get() for _ in workers]
    t1, cpu1 = time.monotonic(), cpu_seconds()
    for w in workers:
        w.join()
    return RunResult(
        requests=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        seconds=t1 - t0,
        server_cpu=cpu1 - cpu0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--things", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    config = SimulatorConfig(
        things=args.things,
        seed=1,
        credentials={ACCESS_KEY: SECRET},
        rates={"GetThingConnectivityData": None},  # measure the server, not the quota
    )
    load_before = os.getloadavg()
    runs = []
    with Simulator(config) as sim:
        prepared = sign_requests(sim.url, sim.fleet.thing_names()[:200])
        for i in range(args.runs):
            result = one_run(sim, prepared, args.clients, args.seconds)
            runs.append(result)
            if not args.json:
                print(
                    f"run {i + 1}: {result.requests} requests in {result.seconds:.2f}s = "
                    f"{result.rps:.0f} req/s, server CPU {result.cpu_ms_per_request:.3f} ms/req, "
                    f"{result.errors} errors"
                )
        counts = sim.request_counts()
    summary = {
        "runs": args.runs,
        "clients": args.clients,
        "median_rps": round(statistics.median(r.rps for r in runs), 1),
        "median_server_cpu_ms_per_request": round(
            statistics.median(r.cpu_ms_per_request for r in runs), 4
        ),
        "errors": sum(r.errors for r in runs),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "served": {f"{op}/{outcome}": n for (op, outcome), n in sorted(counts.items())},
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
