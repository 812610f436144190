"""The event source's own metrics (iot_exporter_events_*), registered only in event mode."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter.fleet.lifecycle import Malformed

# From well under a second (a healthy queue) to an hour (a backlog after an outage).
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class EventMetrics:
    """Counters of what the consumers did with each message; see docs/events.md."""

    def __init__(self, collectors: CollectorRegistry) -> None:
        self.received = Counter(
            "iot_exporter_events_received",
            "SQS messages the event source received (each delivery counts).",
            registry=collectors,
        )
        self.applied = Counter(
            "iot_exporter_events_applied",
            "Lifecycle events applied to a targeted thing.",
            registry=collectors,
        )
        self.duplicates = Counter(
            "iot_exporter_events_duplicates",
            "Repeated deliveries of an event, dropped by the dedupe set.",
            registry=collectors,
        )
        self.out_of_order = Counter(
            "iot_exporter_events_out_of_order",
            "Events older than the state they met: counted if new, not shown.",
            registry=collectors,
        )
        self.not_targeted = Counter(
            "iot_exporter_events_not_targeted",
            "Events whose client ID names no targeted thing, dropped.",
            registry=collectors,
        )
        self.other_shard = Counter(
            "iot_exporter_events_other_shard",
            "Sharded: events of things another shard owns (by name), counted and deleted.",
            registry=collectors,
        )
        self.malformed = Counter(
            "iot_exporter_events_malformed",
            "Messages that are no lifecycle event, by kind; each is deleted.",
            ["kind"],
            registry=collectors,
        )
        self.missed = Counter(
            "iot_exporter_events_missed",
            "Changes a poll saw that no event showed in time, counted by the polling rules.",
            registry=collectors,
        )
        self.lag = Histogram(
            "iot_exporter_events_lag_seconds",
            "Now minus the event's timestamp, when the event is applied.",
            buckets=LAG_BUCKETS,
            registry=collectors,
        )
        self.dedupe_keys = Gauge(
            "iot_exporter_events_dedupe_keys",
            "Keys the dedupe set holds now (at most events.dedupe_keys).",
            registry=collectors,
        )
        self.queue_messages = Gauge(
            "iot_exporter_events_queue_messages",
            "Messages on the queue by state (visible: waiting; in_flight: received, not yet "
            "deleted), as SQS approximates them at the source's last pass.",
            ["state"],
            registry=collectors,
        )
        for kind in Malformed:
            self.malformed.labels(kind.value)
