"""The poller's pure parts: odd answers fail rather than become state; bugs fail one thing."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, cast

import pytest
from prometheus_client import CollectorRegistry

from exporter.fleet import Outcome
from exporter.poller import MAX_CLOCK_SKEW_SECONDS, Poller, parse_response
from exporter.ratelimit import RateLimiter
from exporter.telemetry import ExporterMetrics

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

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

    def get_thing_connectivity_data(self, thingName: str) -> dict[str, Any]:  # noqa: N803
        return {"connected": True, "timestamp": NOW - 1}


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
    poller = Poller(
        cast("IoTClient", _ConnectedIoT()),
        _FailingFirstLimiter(),
        ExporterMetrics(CollectorRegistry()),
        concurrency=1,  # one worker: had it died, no thing after the first would be polled
        max_retries=0,
        stop=threading.Event(),
        clock=lambda: NOW,
    )
    names = [f"thing-{i}" for i in range(5)]
    with caplog.at_level(logging.ERROR, logger="exporter.poller"):
        observations = poller.poll(names)
    assert sorted(o.thing_name for o in observations) == names
    failed = [o for o in observations if o.outcome is not Outcome.OK]
    assert [(o.thing_name, o.error_code) for o in failed] == [
        ("thing-0", "InternalError"),
        ("thing-1", "InternalError"),
    ]
    assert len([r for r in caplog.records if "unexpected error" in r.getMessage()]) == 1
