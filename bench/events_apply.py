"""Lifecycle events: CPU per event on the apply path, and the dedupe set's memory after 10^6
events. Bounded in time; talks only to 127.0.0.1.

The events alternate connects and disconnects per thing, each a new session, the client ID
the thing's name; --thing-name-share of them also carry thingName (the exclusive thing
association). --dedupe-events 0 leaves the dedupe part out; --profile N prints a cProfile
of the apply path, its top N entries by own time."""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import threading
import time
import tracemalloc
from typing import Any

from prometheus_client import CollectorRegistry

from bench._common import cpu_seconds, load_average, machine, now_utc, thing_names
from exporter.aws.calls import AwsCalls
from exporter.aws.clients import known_disconnect_reasons
from exporter.aws.pacing import RateLimiters
from exporter.config.budgets import DEFAULT_BUDGETS
from exporter.config.events import EventsSettings
from exporter.exposition.event_metrics import EventMetrics
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.fleet.lifecycle import Dedupe
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import STATIC_SOURCE, SourceSlot
from exporter.sources.base import EventWiring
from exporter.sources.events import EventSource

T0_MS = 1_700_000_000_000


class NullSqs:
    """An SQS client stand-in that deletes instantly, to time the apply path alone."""

    class meta:  # noqa: N801 - mirrors botocore's client.meta
        method_to_api_mapping = {"delete_message_batch": "DeleteMessageBatch"}

    def delete_message_batch(self, **_: Any) -> dict[str, Any]:
        return {"Successful": [], "Failed": []}


def bodies(count: int, things: list[str], thing_name_share: float = 0.0) -> list[dict[str, Any]]:
    """`count` messages: each thing's connects and disconnects in turn, a new session each;
    an evenly spread `thing_name_share` of them carry thingName too."""
    out = []
    every = round(1 / thing_name_share) if thing_name_share > 0 else 0
    for index in range(count):
        name = things[index % len(things)]
        round_, connected = divmod(index // len(things), 2)
        document: dict[str, Any] = {
            "clientId": name,
            "timestamp": T0_MS + index,
            "eventType": "disconnected" if connected else "connected",
            "sessionIdentifier": f"{name}-{round_}",
            "principalIdentifier": "p",
            "versionNumber": round_ + 1,
        }
        if connected:
            document["disconnectReason"] = "CONNECTION_LOST"
        if every and index % every == 0:
            document["thingName"] = name
        out.append({"Body": json.dumps(document), "ReceiptHandle": str(index)})
    return out


def state_for(things: list[str]) -> SharedState:
    state = SharedState(known_disconnect_reasons(), clock=time.time)
    slots = [SourceSlot(STATIC_SOURCE, live=False, max_things=None)]
    state.configure(slots, things, events=True, aggregates=())
    return state


def apply_path(events: int, things: int, thing_name_share: float, profile: int) -> None:
    names = thing_names(things)
    messages = bodies(events, names, thing_name_share)
    named = sum('"thingName"' in message["Body"] for message in messages)
    registry = CollectorRegistry()
    stop = threading.Event()
    calls = AwsCalls(
        NullSqs(),
        RateLimiters({"DeleteMessageBatch": 1e9}),
        ExporterMetrics(registry),
        max_retries=0,
        stop=stop,
    )
    settings = EventsSettings(queue_url="http://127.0.0.1:1/q")
    source = EventSource(
        settings, EventWiring(calls, EventMetrics(registry), threading.Event()), stop=stop
    )
    state = state_for(names)
    profiler = cProfile.Profile() if profile else None
    gc.collect()
    cpu, wall = cpu_seconds(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for start in range(0, len(messages), 10):
        source.handle(messages[start : start + 10], state)
    if profiler is not None:
        profiler.disable()
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    applied = registry.get_sample_value("iot_exporter_events_applied_total")
    print(
        f"apply path: {events} events over {things} things, batches of 10,"
        f" {named / events:.0%} with thingName" + (" (under cProfile)" if profiler else "")
    )
    print(
        f"  applied {applied:.0f}; {events / wall:,.0f} events/s on one thread;"
        f" CPU {cpu / events * 1000:.4f} ms per event (parse, dedupe, fleet, metrics, delete call)"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)


def dedupe_memory(events: int, capacity: int) -> None:
    gc.collect()
    tracemalloc.start()
    dedupe = Dedupe(capacity)
    for index in range(events):
        dedupe.first((f"thing-{index % 100_000}", f"session-{index}", bool(index & 1)))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"dedupe: {events:,} events into a set of {capacity:,} keys: holds {len(dedupe):,};"
        f" {current / 1e6:.1f} MB now, {peak / 1e6:.1f} MB at peak"
        f" ({current / len(dedupe):.0f} B per key)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--things", type=int, default=10_000)
    parser.add_argument(
        "--thing-name-share",
        type=float,
        default=0.25,
        metavar="F",
        help="share of events with thingName: one in round(1/F); 0 for none (default 0.25)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile the apply path; top N"
    )
    parser.add_argument(
        "--dedupe-events", type=int, default=1_000_000, help="0: skip the dedupe memory part"
    )
    parser.add_argument("--dedupe-keys", type=int, default=100_000)
    args = parser.parse_args()
    if not 0 <= args.thing_name_share <= 1:
        parser.error("--thing-name-share must be between 0 and 1")
    print(f"{now_utc()} {machine()} load {load_average()}")
    print(f"budgets: ReceiveMessage {DEFAULT_BUDGETS['ReceiveMessage']}/s by default")
    apply_path(args.events, args.things, args.thing_name_share, args.profile)
    if args.dedupe_events > 0:
        dedupe_memory(args.dedupe_events, args.dedupe_keys)
        dedupe_memory(args.dedupe_events, args.dedupe_events)


if __name__ == "__main__":
    main()
