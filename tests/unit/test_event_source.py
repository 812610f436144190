"""The event source's requests: what each consumer asks SQS for."""

from __future__ import annotations

import json
import threading
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from exporter.aws.calls import AwsCalls
from exporter.config.events import EventsSettings
from exporter.exposition.event_metrics import EventMetrics
from exporter.sources.base import EventWiring
from exporter.sources.events import EventSource
from tests.support.updates import RecordingUpdates

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/iot-lifecycle"


class RecordingCalls:
    """Stands in for AwsCalls: records each request; the first receive stops the source."""

    def __init__(self, stop: threading.Event) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._stop = stop

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        self.requests.append((operation, params))
        if operation == "ReceiveMessage":
            self._stop.set()
        return {}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (EventsSettings(queue_url=QUEUE), {"WaitTimeSeconds": 20, "MaxNumberOfMessages": 10}),
        (
            EventsSettings(queue_url=QUEUE, wait_time=5.0, visibility_timeout=90.0),
            {"WaitTimeSeconds": 5, "MaxNumberOfMessages": 10, "VisibilityTimeout": 90},
        ),
    ],
    ids=["defaults", "configured"],
)
def test_a_consumer_long_polls_as_configured(
    settings: EventsSettings, expected: dict[str, Any]
) -> None:
    stop = threading.Event()
    calls = RecordingCalls(stop)
    wiring = EventWiring(
        cast(AwsCalls, calls), EventMetrics(CollectorRegistry()), threading.Event()
    )
    source = EventSource(settings, wiring, stop=stop)
    source.run(RecordingUpdates())
    assert source.join(5)
    receives = [params for operation, params in calls.requests if operation == "ReceiveMessage"]
    assert receives == [{"QueueUrl": QUEUE, **expected}]


def test_a_client_id_that_claims_no_valid_thing_name_is_reported() -> None:
    """The pass reports the names events claimed that AWS could not have issued."""
    stop = threading.Event()
    calls = RecordingCalls(stop)
    wiring = EventWiring(
        cast(AwsCalls, calls), EventMetrics(CollectorRegistry()), threading.Event()
    )
    source = EventSource(EventsSettings(queue_url=QUEUE), wiring, stop=stop)
    updates = RecordingUpdates()
    bodies = [
        {
            "clientId": client_id,
            "timestamp": 1_700_000_000_000,
            "eventType": "connected",
            "sessionIdentifier": f"s-{index}",
            "versionNumber": 1,
        }
        for index, client_id in enumerate(['pump"7', "pump-8", "a\nb"])
    ]
    source.handle(
        [{"Body": json.dumps(body), "ReceiptHandle": str(i)} for i, body in enumerate(bodies)],
        updates,
    )
    outcome = source.run(updates)
    assert outcome.invalid_names == ('pump"7', "a\nb")
    assert [o.thing_name for o in updates.observations] == ["pump-8"]
    assert source.join(5)
