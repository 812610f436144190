"""Benchmark: the simulator's signed requests per second and server CPU, or its fleet-index cost.

Default mode: the simulator runs in this process; clients run in other processes and replay
requests that were SigV4-signed before the clock starts, over keep-alive connections, so
neither signing nor client work is counted as server CPU. The simulator verifies every
signature (strict credentials), as it would for a test that configures them.

    .venv/bin/python bench/simulator_throughput.py --runs 3 --seconds 5 --clients 4

--index mode: the cost of the fleet index over a large fleet (default 100,000 things), as
the exporter's index mode uses it. Each request is SigV4-signed first, then timed through
the simulator's whole request pipeline (route, signature check, validation, operation,
JSON) without the socket: every SearchIndex page of a few queries, paged to the end with
nextToken, then GetStatistics and GetBucketsAggregation over every thing.

    .venv/bin/python bench/simulator_throughput.py --index --things 100000
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

from bench._common import cpu_seconds, machine, median, percentile
from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.protocol import HttpRequest

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


INDEX_QUERIES = (
    "thingTypeName:sensor",
    "thingGroupNames:(group-1-1 OR group-1-2 OR group-2-1)",
    "connectivity.connected:false",
)
INDEX_AGGREGATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("GetStatistics", {"queryString": "*"}),
    ("GetStatistics", {"queryString": "*", "aggregationField": "connectivity.connected"}),
    (
        "GetStatistics",
        {"queryString": "thingTypeName:sensor", "aggregationField": "connectivity.connected"},
    ),
    (
        "GetBucketsAggregation",
        {
            "queryString": "*",
            "aggregationField": "connectivity.disconnectReason",
            "bucketsAggregationType": {"termsAggregation": {"maxBuckets": 100}},
        },
    ),
    (
        "GetBucketsAggregation",
        {
            "queryString": "*",
            "aggregationField": "thingGroupNames",
            "bucketsAggregationType": {"termsAggregation": {"maxBuckets": 100}},
        },
    ),
)
_INDEX_PATHS = {
    "SearchIndex": "/indices/search",
    "GetStatistics": "/indices/statistics",
    "GetBucketsAggregation": "/indices/buckets",
}


class SignedCaller:
    """Signs one request, then times only the simulator's handling of it."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "iot", REGION)

    def call(self, operation: str, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
        path = _INDEX_PATHS[operation]
        body = json.dumps(params).encode()
        request = AWSRequest(method="POST", url="http://127.0.0.1" + path, data=body)
        request.headers["Content-Type"] = "application/json"
        self._signer.add_auth(request)
        headers = {k.lower(): str(v) for k, v in request.headers.items()}
        headers["host"] = "127.0.0.1"  # signed from the URL; an HTTP client would send it
        wire = HttpRequest("POST", path, "", headers, body)
        start = time.perf_counter()
        outcome = self._sim.service.handle(wire)
        elapsed = time.perf_counter() - start
        response = outcome.response
        if response is None or response.status != 200:
            raise RuntimeError(f"{operation} failed: {response}")
        return json.loads(response.body), elapsed


def page_through(caller: SignedCaller, query: str) -> tuple[int, list[float]]:
    """Every page of a SearchIndex query: (things found, seconds per page)."""
    found, seconds = 0, []
    params: dict[str, Any] = {"queryString": query, "maxResults": 100}
    while True:
        answer, elapsed = caller.call("SearchIndex", params)
        found += len(answer["things"])
        seconds.append(elapsed)
        if not answer.get("nextToken"):
            return found, seconds
        params = {**params, "nextToken": answer["nextToken"]}


def index_main(things: int, repeats: int, as_json: bool) -> None:
    config = SimulatorConfig(things=things, seed=1, credentials={ACCESS_KEY: SECRET}, quotas=False)
    clock = ManualClock(1_700_000_000.0)
    started = time.perf_counter()
    sim = Simulator(config, clock=clock)  # never started: requests go straight to the pipeline
    built = time.perf_counter() - started
    clock.advance(300)  # some churn since the start, so documents vary
    started = time.perf_counter()
    sim.fleet.catch_up()  # things are drawn when first looked at: not in the timed pages
    drawn = time.perf_counter() - started
    caller = SignedCaller(sim)
    results: dict[str, Any] = {
        "things": things,
        "fleet_build_seconds": round(built, 2),
        "fleet_draw_seconds": round(drawn, 2),
    }
    lines = [machine(), f"{things} things, fleet built in {built:.2f} s, drawn in {drawn:.2f} s"]
    for query in INDEX_QUERIES:
        caller.call("SearchIndex", {"queryString": query, "maxResults": 100})  # warm
        found, seconds = page_through(caller, query)
        tenth = max(1, len(seconds) // 10)
        figures = {
            "things": found,
            "pages": len(seconds),
            "median_ms": round(1000 * median(seconds), 3),
            "p99_ms": round(1000 * percentile(seconds, 0.99), 3),
            "first_tenth_median_ms": round(1000 * median(seconds[:tenth]), 3),
            "last_tenth_median_ms": round(1000 * median(seconds[-tenth:]), 3),
            "total_seconds": round(sum(seconds), 3),
        }
        results[f"SearchIndex {query}"] = figures
        lines.append(
            f"SearchIndex {query!r}: {found} things in {len(seconds)} pages of 100, "
            f"per page median {figures['median_ms']} ms (first tenth "
            f"{figures['first_tenth_median_ms']}, last tenth {figures['last_tenth_median_ms']}), "
            f"p99 {figures['p99_ms']} ms, all pages {figures['total_seconds']} s"
        )
    for operation, params in INDEX_AGGREGATIONS:
        timings = [caller.call(operation, params)[1] for _ in range(repeats)]
        label = f"{operation} {params['queryString']} {params.get('aggregationField', '')}"
        results[label.strip()] = {
            "median_seconds": round(median(timings), 4),
            "max_seconds": round(max(timings), 4),
        }
        lines.append(
            f"{label.strip()}: median {median(timings):.3f} s, max {max(timings):.3f} s "
            f"over {repeats} runs"
        )
    results["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    lines.append(f"load average {results['loadavg']}")
    print(json.dumps(results) if as_json else "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--things", type=int, default=None, help="fleet size (default 1000; 100000 with --index)"
    )
    parser.add_argument(
        "--index", action="store_true", help="time SearchIndex pages and the aggregations"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    if args.index:
        index_main(args.things or 100_000, max(1, args.runs), args.json)
        return
    args.things = args.things or 1000
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
