"""Restart as availability: `kill -9` of a shard in the middle of an event stream loses no
event, because SQS redelivers every message the killed process had not deleted."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from exporter.fleet.shards import owner
from iot_simulator import ManualClock, Simulator, SimulatorConfig
from iot_simulator.topic_rule import TopicRule
from tests.support.exporter_process import ExporterProcess
from tests.support.harness import Samples, parse_samples, series, value
from tests.support.promstack import http_get, wait_until
from tests.support.sqs import MotoServer
from tests.support.stack import AWS_TEST_ENV, write_exporter_config

pytestmark = pytest.mark.slow

TOTAL, SHARD = 3, 1
VISIBILITY_S = 2


def scrape(exporter: ExporterProcess) -> Samples:
    status, body = http_get(exporter.url + "/metrics")
    assert status == 200
    return parse_samples(body)


def disconnects(samples: Samples) -> Counter[tuple[str, str]]:
    return Counter(
        {
            (dict(labels)["thing_name"], dict(labels)["reason"]): int(v)
            for labels, v in series(samples, "iot_thing_disconnects_total").items()
            if v
        }
    )


def left_on_queue(moto: MotoServer, url: str, killed_at: float) -> dict[str, dict[str, Any]]:
    """Every message still on the queue, by ID, read by the test without deleting it and
    made visible again at once for the next consumer.

    The killed process's in-flight messages come back once their visibility times out, so
    the queue is read until it answers empty after that.
    """
    client = moto.client()
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []

    def all_read() -> bool | None:
        response = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120
        )
        messages = response.get("Messages", [])
        for message in messages:
            seen[message["MessageId"]] = json.loads(message["Body"])
            handles.append(message["ReceiptHandle"])
        returned = time.monotonic() > killed_at + VISIBILITY_S + 1
        return True if returned and not messages else None

    wait_until(all_read, timeout=90, what="the test to read the messages left")
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + 10])
        ]
        client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return seen


def test_kill_9_of_a_shard_mid_stream_loses_no_event(tmp_path: Path) -> None:
    clock = ManualClock(start=time.time() - 3600)
    sim_config = SimulatorConfig(
        things=12, seed=17, quotas=False, never_connected_fraction=0,
        duplicate_clientid_things=0, mean_session_seconds=240.0, mean_offline_seconds=20.0,
    )  # fmt: skip
    with ExitStack() as stack:
        moto = stack.enter_context(MotoServer())
        urls = [moto.queue(f"lifecycle-{k}", visibility_timeout=VISIBILITY_S) for k in range(3)]
        sim = stack.enter_context(Simulator(sim_config, clock=clock))
        names = sim.fleet.thing_names()
        mine = {name for name in names if owner(name, TOTAL) == SHARD}
        events = {
            "queue_url": urls[0].removesuffix("-0") + "-{shard}",
            "endpoint_url": moto.url,
            "visibility_timeout": f"{VISIBILITY_S}s",
            "wait_time": "1s",
        }
        path = write_exporter_config(
            tmp_path / "exporter.yaml", endpoint_url=sim.url, things=names, interval="10m",
            sections={"events": events},
        )  # fmt: skip
        # An hour of sessions of minutes waits on the queues before the shard starts, so
        # that it is killed with most of the stream still to come.
        rule = TopicRule(sim.fleet, moto.client(), urls, clock=clock.now, seed=5)
        clock.advance(3600)
        rule.publish()
        stream = len(rule.published)
        assert stream > 200

        flags = ["--shard", str(SHARD), "--total-shards", str(TOTAL)]
        first = stack.enter_context(ExporterProcess(path, env=AWS_TEST_ENV, extra_args=flags))

        def some_received() -> bool | None:
            received = value(scrape(first), "iot_exporter_events_received_total") or 0
            return True if received >= 20 else None

        wait_until(some_received, timeout=60, what="the first process to receive some events")
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert first.wait(10) == -signal.SIGKILL
        left = left_on_queue(moto, urls[SHARD], killed_at)
        assert 0 < len(left) < stream  # killed in the middle of the stream

        second = stack.enter_context(ExporterProcess(path, env=AWS_TEST_ENV, extra_args=flags))

        def drained() -> bool | None:
            received = value(scrape(second), "iot_exporter_events_received_total") or 0
            return True if received >= len(left) and moto.depth(urls[SHARD]) == (0, 0) else None

        wait_until(drained, timeout=120, what="the restarted shard to drain its queue")
        # Every message the killed process had not deleted reached the new one and counts:
        # its things' disconnects exactly, the other shards' events under their own label.
        ours = [doc for doc in left.values() if doc["clientId"] in mine]
        expected = Counter(
            (doc["clientId"], doc["disconnectReason"])
            for doc in ours
            if doc["eventType"] == "disconnected"
        )
        assert expected  # the comparison means something
        shown: list[Samples] = []

        def counted() -> bool | None:
            # The page is rendered after the state changes, so it may trail the queue.
            shown.append(scrape(second))
            return True if disconnects(shown[-1]) == expected else None

        wait_until(
            counted,
            timeout=30,
            what="the restarted shard to show every disconnect left on its queue",
            diagnostics=lambda: f"shown {disconnects(shown[-1])}\nexpected {expected}",
        )
        other = value(shown[-1], "iot_exporter_events_other_shard_total")
        assert other == len(left) - len(ours)
