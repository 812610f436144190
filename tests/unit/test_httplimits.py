"""Go durations as flags and exporter-toolkit write them, and rate_limit's token bucket."""

from __future__ import annotations

import pytest

from exporter.cli import build_parser
from exporter.config.durations import parse_go_duration
from exporter.web.limits import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT,
    RequestRateLimiter,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("10s", 10.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("100us", 0.0001),
        ("1h1m1s1ms", 3661.001),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "10", "1d", "s", "-1s", "1 s", "1s ", "1e3s", "\uff11s"]
)  # a fullwidth 1
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_go_duration(text)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("interval", "burst", "steps", "expected"),
    [
        # (advance before the request, in seconds) -> allowed?
        (1.0, 2, [0, 0, 0], [True, True, False]),
        (1.0, 2, [0, 0, 0, 0.5, 0.5, 0], [True, True, False, False, True, False]),
        (1.0, 2, [0, 0, 10, 0, 0], [True, True, True, True, False]),  # refills to burst only
        (1.0, 0, [0, 5, 60], [False, False, False]),  # toolkit: burst 0 refuses everything
        (0.25, 1, [0, 0.1, 0.15, 0], [True, False, True, False]),
    ],
)
def test_token_bucket(
    interval: float, burst: int, steps: list[float], expected: list[bool]
) -> None:
    clock = Clock()
    limiter = RequestRateLimiter(interval, burst, clock)
    seen = []
    for step in steps:
        clock.now += step
        seen.append(limiter.allow())
    assert seen == expected


def test_the_flags_default_to_the_limits_defaults() -> None:
    # The flags' defaults are written as --help shows them; they must mean the same values.
    args = build_parser().parse_args([])
    assert args.read_header_timeout == DEFAULT_READ_HEADER_TIMEOUT
    assert args.idle_timeout == DEFAULT_IDLE_TIMEOUT
    assert args.max_connections == DEFAULT_MAX_CONNECTIONS
