"""Who owns threads, as CONTRIBUTING says: every thread the exporter starts ends on its stop.

The app's stop event ends the render thread, the scheduler's jobs, the live poller's
workers and the event consumers; nothing the exporter started is left running.
"""

from __future__ import annotations

import threading

from tests.support.harness import HarnessFactory, quiet
from tests.support.promstack import wait_until
from tests.support.sqs import MotoServer, moto

__all__ = ["moto"]


def test_every_thread_the_exporter_starts_ends_when_it_stops(
    harness: HarnessFactory, moto: MotoServer
) -> None:
    before = set(threading.enumerate())
    queue = moto.queue("threads")
    h = harness(
        quiet(12, seed=97),
        things=[],
        sections={
            "discovery": {
                "interval": "1s",
                "thing_groups": [{"name": "group-1", "recursive": True}],
            },
            "aggregates": {"interval": "1s", "queries": [{"name": "all"}]},
            "events": {
                "queue_url": queue,
                "endpoint_url": moto.url,
                "consumers": 2,
                "wait_time": "1s",
            },
        },
        interval="1s",
    )
    h.exporter.start()

    def all_running() -> set[str] | None:
        names = {thread.name for thread in set(threading.enumerate()) - before}
        wanted = {"render", "events-0", "events-1"}
        return names if wanted <= names and any(n.startswith("poll-") for n in names) else None

    started = wait_until(all_running, timeout=20, what="render, consumer and poller threads")
    assert started
    h.exporter.stop()

    def exporters_threads() -> list[str]:
        # The simulator serves each of boto3's pooled connections on a thread of its own.
        new = set(threading.enumerate()) - before
        return sorted(t.name for t in new if t.is_alive() and not t.name.startswith("simulator-"))

    def leftovers() -> bool | None:
        return True if not exporters_threads() else None

    wait_until(
        leftovers,
        timeout=15,
        what="every thread the exporter started to end",
        diagnostics=lambda: str(exporters_threads()),
    )
