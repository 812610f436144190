"""The live poller: odd answers fail rather than become state; bugs fail one thing."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.aws.calls import AwsCalls
from exporter.aws.pacing import RateLimiter, RateLimiters
from exporter.exposition.self_metrics import ExporterMetrics
from exporter.fleet.connectivity import Outcome
from exporter.names import POLL_OPERATION
from exporter.sources.answers import MAX_CLOCK_SKEW_SECONDS
from exporter.sources.live import BATCH_SIZE, LivePoller, parse_response
from tests.support.updates import RecordingUpdates

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("response", "outcome", "timestamp", "reason"),
    [
        ({"connected": True, "timestamp": NOW - 5}, Outcome.OK, NOW - 5, None),
        (
            {"connected": True, "timestamp": dt.datetime.fromtimestamp(NOW - 5, dt.UTC)},
            Outcome.OK,
            NOW - 5,
            None,
        ),
        (
            {"connected": False, "timestamp": NOW - 5, "disconnectReason": "AUTH_ERROR"},
            Outcome.OK,
            NOW - 5,
            "AUTH_ERROR",
        ),
        ({"connected": False}, Outcome.OK, None, None),  # never connected
        (
            {"connected": False, "timestamp": NOW, "disconnectReason": "NEW_AWS_REASON_2030"},
            Outcome.OK,
            NOW,
            "NEW_AWS_REASON_2030",
        ),
        (
            {"connected": True, "timestamp": NOW + 3600},
            Outcome.OK,
            NOW + 3600,
            None,
        ),  # host clock behind AWS
        ({}, Outcome.ERROR, None, None),  # truncated body parses to nothing
        ({"connected": "yes"}, Outcome.ERROR, None, None),
        ({"connected": True, "timestamp": math.inf}, Outcome.ERROR, None, None),
        ({"connected": True, "timestamp": math.nan}, Outcome.ERROR, None, None),
        ({"connected": True, "timestamp": -1.0}, Outcome.ERROR, None, None),
        (
            {"connected": True, "timestamp": NOW + MAX_CLOCK_SKEW_SECONDS + 1},
            Outcome.ERROR,
            None,
            None,
        ),
        (
            {"connected": False, "timestamp": NOW, "disconnectReason": 'x"} 1\nevil{'},
            Outcome.OK,
            NOW,
            None,
        ),
        ({"connected": False, "timestamp": NOW, "disconnectReason": ""}, Outcome.OK, NOW, None),
        ({"connected": False, "timestamp": NOW, "disconnectReason": 7}, Outcome.OK, NOW, None),
    ],
)
def test_parse_response(
    response: dict[str, Any], outcome: Outcome, timestamp: float | None, reason: str | None
) -> None:
    observation = parse_response("t", response, NOW)
    assert observation.outcome is outcome
    if outcome is Outcome.ERROR:
        assert observation.error_code == "InvalidResponse"
        return
    assert observation.timestamp == (pytest.approx(timestamp) if timestamp is not None else None)
    assert observation.reason == reason
    assert observation.connected is response["connected"]


class _ConnectedIoT:
    """Answers every thing as connected; stands in for the client when the fault is elsewhere."""

    meta = SimpleNamespace(
        method_to_api_mapping={"get_thing_connectivity_data": POLL_OPERATION}, region_name="x"
    )

    def get_thing_connectivity_data(self, thingName: str) -> dict[str, Any]:  # noqa: N803
        return {"connected": True, "timestamp": NOW - 1}


def _poller(limiter: RateLimiter, concurrency: int = 1) -> LivePoller:
    budgets = RateLimiters({POLL_OPERATION: 10_000})
    budgets._limiters[POLL_OPERATION] = limiter
    stop = threading.Event()
    calls = AwsCalls(
        _ConnectedIoT(), budgets, ExporterMetrics(CollectorRegistry()), max_retries=0, stop=stop
    )
    return LivePoller(calls, interval=60, concurrency=concurrency, stop=stop, clock=lambda: NOW)


class _FailingFirstLimiter(RateLimiter):
    """A limiter with a bug that fires on the first two requests only."""

    def __init__(self) -> None:
        super().__init__(10_000)
        self.failures_left = 2

    def acquire(self) -> bool:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("limiter bug")
        return super().acquire()


def test_a_bug_outside_the_aws_call_fails_one_thing_not_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One worker: had it died, no thing after the first would be polled.
    poller = _poller(_FailingFirstLimiter(), concurrency=1)
    names = [f"thing-{i}" for i in range(5)]
    updates = RecordingUpdates(live=names)
    with caplog.at_level(logging.ERROR, logger="exporter.sources.live"):
        outcome = poller.run(updates)
    observations = updates.observations
    assert sorted(o.thing_name for o in observations) == names
    failed = [o for o in observations if o.outcome is not Outcome.OK]
    assert [(o.thing_name, o.error_code) for o in failed] == [
        ("thing-0", "InternalError"),
        ("thing-1", "InternalError"),
    ]
    assert len([r for r in caplog.records if "unexpected error" in r.getMessage()]) == 1
    assert outcome.ok
    assert outcome.summary.succeeded == 3


def test_observations_reach_the_fleet_in_batches_as_they_come() -> None:
    names = [f"thing-{i}" for i in range(2 * BATCH_SIZE + 5)]
    updates = RecordingUpdates(live=names)
    outcome = _poller(RateLimiter(10_000), concurrency=4).run(updates)
    assert [len(batch) for batch in updates.batches] == [BATCH_SIZE, BATCH_SIZE, 5]
    assert sorted(o.thing_name for o in updates.observations) == sorted(names)
    assert outcome.summary.observed == len(names)


def test_a_pass_with_nothing_to_poll_succeeds() -> None:
    updates = RecordingUpdates(live=[])
    outcome = _poller(RateLimiter(10_000)).run(updates)
    assert outcome.ok
    assert updates.batches == []
