"""Parsing GetThingConnectivityData answers: odd answers fail rather than become state."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from exporter.fleet import Outcome
from exporter.poller import MAX_CLOCK_SKEW_SECONDS, parse_response

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
