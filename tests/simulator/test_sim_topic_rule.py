"""The simulator's topic rule: every generated lifecycle event is published exactly once."""

from __future__ import annotations

import json
from typing import Any

from iot_simulator import ManualClock, Simulator
from iot_simulator.topic_rule import TopicRule


class RecordingQueue:
    """Stands in for an SQS client: keeps every body the rule sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:  # noqa: N803
        self.bodies.extend(json.loads(entry["MessageBody"]) for entry in Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


def test_an_event_in_the_millisecond_of_the_last_publish_is_still_sent(
    sim: Simulator, clock: ManualClock
) -> None:
    queue = RecordingQueue()
    rule = TopicRule(sim.fleet, queue, "queue", clock=clock.now)
    thing = sim.fleet.thing_names()[0]
    clock.advance(1.0002)
    rule.publish()
    start = len(queue.bodies)
    sim.fleet.disconnect(thing, "CLIENT_ERROR")  # the same millisecond as that publish
    clock.advance(0.0004)
    sim.fleet.connect(thing)
    assert rule.publish() == 2
    assert rule.publish() == 0  # and each once
    sent = [(b["clientId"], b["eventType"]) for b in queue.bodies[start:]]
    assert sent == [(thing, "disconnected"), (thing, "connected")]
