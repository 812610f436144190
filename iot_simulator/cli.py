"""Command line: ``python -m iot_simulator`` runs a simulator until interrupted."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from iot_simulator.clock import Clock, ManualClock
from iot_simulator.config import SimulatorConfig
from iot_simulator.faults import MALFORMED, OUTAGES, FaultConfig, parse_assignments
from iot_simulator.instance import Simulator

_D = SimulatorConfig()
# Fields whose flag's value needs converting first; each other field has a flag of its name.
_CONVERTED_FIELDS = frozenset({"thing_types", "reason_weights", "rates", "credentials"})
_PLAIN_FIELDS = tuple(
    f.name for f in dataclasses.fields(SimulatorConfig) if f.name not in _CONVERTED_FIELDS
)


def _pairs(items: Sequence[str] | None, what: str) -> dict[str, float] | None:
    return None if items is None else parse_assignments(items, what)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m iot_simulator",
        description=(
            "A simulated AWS IoT endpoint (REST-JSON, as botocore's model describes it) plus STS "
            "AssumeRole. Prints its URL on the first line of stdout, then serves until SIGINT or "
            "SIGTERM. Admin endpoints live under <url>/_simulator/."
        ),
    )
    server = p.add_argument_group("server")
    server.add_argument("--host", help=f"address to listen on (default {_D.host})")
    server.add_argument("--port", type=int, help="port; 0 picks a free one (default 0)")
    server.add_argument("--region", help=f"region in ARNs and signatures (default {_D.region})")
    server.add_argument("--account-id", help=f"account in ARNs (default {_D.account_id})")
    server.add_argument(
        "--max-body-bytes", type=int, help="larger request bodies get 413 (default 1 MiB)"
    )
    fleet = p.add_argument_group("fleet")
    fleet.add_argument("--demo", action="store_true", help="start from the demo preset")
    fleet.add_argument("--things", type=int, help=f"number of things (default {_D.things})")
    fleet.add_argument("--seed", type=int, help="seed of the random process (default 0)")
    fleet.add_argument(
        "--thing-name-prefix", help=f"names are PREFIX00001... (default {_D.thing_name_prefix!r})"
    )
    fleet.add_argument(
        "--mean-session-seconds",
        type=float,
        help=f"mean connected period (default {_D.mean_session_seconds}; inf: stay connected)",
    )
    fleet.add_argument(
        "--mean-offline-seconds",
        type=float,
        help=f"mean offline period (default {_D.mean_offline_seconds}; inf: stay offline)",
    )
    fleet.add_argument(
        "--no-churn",
        dest="churn",
        action="store_false",
        default=None,
        help="no random process: things change only when told to",
    )
    fleet.add_argument(
        "--reason-weight",
        action="append",
        metavar="REASON=WEIGHT",
        help="disconnect reason mix (repeat; default: every DisconnectReasonValue)",
    )
    fleet.add_argument(
        "--never-connected-fraction",
        type=float,
        help="share of things that never connect (default 0.02)",
    )
    fleet.add_argument(
        "--duplicate-clientid-things",
        type=int,
        help="things whose client id is shared, so they keep reconnecting (default 1)",
    )
    fleet.add_argument(
        "--disconnected-fraction",
        type=float,
        help="share of things that start disconnected, then follow the process (default 0)",
    )
    fleet.add_argument(
        "--flapping-fraction",
        type=float,
        help="share of things with short sessions and outages (the flapping means; default 0)",
    )
    fleet.add_argument(
        "--flapping-mean-session-seconds",
        type=float,
        help=f"a flapping thing's mean session (default {_D.flapping_mean_session_seconds})",
    )
    fleet.add_argument(
        "--flapping-mean-offline-seconds",
        type=float,
        help=f"a flapping thing's mean outage (default {_D.flapping_mean_offline_seconds})",
    )
    fleet.add_argument("--thing-types", help="comma-separated (default sensor,gateway,controller)")
    fleet.add_argument("--top-groups", type=int, help="top-level thing groups (default 2)")
    fleet.add_argument("--subgroups-per-group", type=int, help="children of each (default 2)")
    fleet.add_argument(
        "--no-connectivity-indexing",
        dest="connectivity_indexing",
        action="store_false",
        default=None,
        help="thingConnectivityIndexingMode OFF: GetThingConnectivityData fails",
    )
    fleet.add_argument(
        "--search-index-lag-seconds",
        type=float,
        help="the fleet index (SearchIndex, GetStatistics, GetBucketsAggregation) shows the "
        "fleet as it was this long ago (default 0; change it via PUT /_simulator/index)",
    )
    fleet.add_argument(
        "--index-disconnect-details-retention-seconds",
        type=float,
        help="the index drops a disconnected thing's timestamp and reason after this long, "
        f"as AWS documents it may (default {_D.index_disconnect_details_retention_seconds:g}; "
        "inf keeps them)",
    )
    fleet.add_argument(
        "--manual-clock",
        type=float,
        metavar="EPOCH",
        help="manual clock starting at EPOCH; advance via POST /_simulator/clock/advance",
    )
    quotas = p.add_argument_group("quotas and credentials")
    quotas.add_argument(
        "--rate",
        action="append",
        metavar="OPERATION=RPS",
        help="requests per second for an operation (repeat; 0 = unlimited)",
    )
    quotas.add_argument(
        "--no-quotas",
        dest="quotas",
        action="store_false",
        default=None,
        help="no rate limits at all",
    )
    quotas.add_argument(
        "--burst-seconds", type=float, help="bucket capacity = rate x this (default 1)"
    )
    quotas.add_argument(
        "--credentials",
        action="append",
        metavar="ACCESS_KEY:SECRET",
        help="verify signatures against these keys (repeat); default: accept any signature",
    )
    quotas.add_argument(
        "--sts-max-session-duration",
        type=int,
        help="the role's MaxSessionDuration: a longer DurationSeconds is refused (default 43200)",
    )
    quotas.add_argument(
        "--sts-duration-override-seconds",
        type=float,
        help="issued credentials expire after this long, whatever was asked",
    )
    quotas.add_argument("--sts-external-id", help="AssumeRole requires this ExternalId")
    faults = p.add_argument_group("faults (change them later via /_simulator/faults)")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added per response")
    faults.add_argument("--jitter", type=float, default=0.0, help="uniform extra 0..J seconds")
    faults.add_argument(
        "--error-rate",
        action="append",
        metavar="CODE=P",
        help="answer that modelled error with probability P (repeat)",
    )
    faults.add_argument("--outage", choices=OUTAGES, help="refuse or reset connections")
    faults.add_argument(
        "--outage-seconds", type=float, help="end the outage by itself after this long"
    )
    faults.add_argument(
        "--slow-rate", type=float, default=0.0, help="share of responses held back --slow-seconds"
    )
    faults.add_argument(
        "--slow-seconds", type=float, default=0.0, help="hold-back, to outlast read timeouts"
    )
    faults.add_argument(
        "--malformed-rate", type=float, default=0.0, help="share of responses with a bad body"
    )
    faults.add_argument(
        "--malformed",
        choices=MALFORMED,
        default="truncated",
        help="truncated JSON, wrong_types, or an html 502 page (default truncated)",
    )
    faults.add_argument("--fault-operations", help="comma-separated: faults hit only these")
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator settings the flags ask for (unset flags keep the preset's values)."""
    given: dict[str, object] = {}
    for name in _PLAIN_FIELDS:
        value = getattr(args, name)
        if value is not None:
            given[name] = value
    if args.thing_types is not None:
        given["thing_types"] = tuple(t for t in args.thing_types.split(",") if t)
    if args.reason_weight is not None:
        given["reason_weights"] = _pairs(args.reason_weight, "--reason-weight")
    if args.rate is not None:
        rates = _pairs(args.rate, "--rate") or {}
        given["rates"] = {op: (rate or None) for op, rate in rates.items()}
    if args.credentials is not None:
        creds = {}
        for item in args.credentials:
            key, sep, secret = item.partition(":")
            if not sep or not key or not secret:
                raise ValueError(f"--credentials must look like ACCESS_KEY:SECRET, got {item!r}")
            creds[key] = secret
        given["credentials"] = creds
    base = SimulatorConfig.demo() if args.demo else SimulatorConfig()
    return base.replace(**given)


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    operations = None
    if args.fault_operations:
        operations = frozenset(o for o in args.fault_operations.split(",") if o)
    return FaultConfig(
        latency=args.latency,
        jitter=args.jitter,
        error_rates=_pairs(args.error_rate, "--error-rate") or {},
        outage=args.outage,
        outage_seconds=args.outage_seconds,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        malformed_rate=args.malformed_rate,
        malformed=args.malformed,
        operations=operations,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        faults = faults_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    clock: Clock | None = ManualClock(args.manual_clock) if args.manual_clock is not None else None
    sim = Simulator(config, clock=clock, faults=faults)
    # Things are drawn when first looked at; a server draws them all before it serves, so
    # its first polls cost what later ones do (about 20 s at 1,000,000 things).
    sim.fleet.catch_up()

    def stop(signum: int, frame: FrameType | None) -> None:
        sim.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim.start()
    print(sim.url, flush=True)
    print(
        f"simulating {config.things} things (seed {config.seed}); admin: {sim.url}/_simulator/",
        file=sys.stderr,
        flush=True,
    )
    while not sim.wait(timeout=0.5):
        pass
    return 0
