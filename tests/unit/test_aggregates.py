"""Aggregates' pure parts: narrowing a query, reading statistics and buckets safely."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.sources.aggregates import buckets_of, counts_of, narrowed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("*", "connectivity.connected:false"),
        (" * ", "connectivity.connected:false"),
        (
            "thingGroupNames:a OR thingGroupNames:b",
            "(thingGroupNames:a OR thingGroupNames:b) AND connectivity.connected:false",
        ),
    ],
)
def test_narrowed(query: str, expected: str) -> None:
    assert narrowed(query, "connectivity.connected:false") == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"statistics": {"count": 10, "sum": 7}}, (7, 3)),
        ({"statistics": {"count": 10, "sum": 7.0}}, (7, 3)),
        ({"statistics": {"count": 0}}, (0, 0)),  # no thing has the field: no sum
        ({"statistics": {"count": 10, "sum": 11}}, None),
        ({"statistics": {"count": -1, "sum": 0}}, None),
        ({"statistics": {"count": True, "sum": 0}}, None),
        ({"statistics": "many"}, None),
        ({}, None),
    ],
)
def test_counts_of(answer: dict[str, Any], expected: tuple[int, int] | None) -> None:
    assert counts_of(answer) == expected


def test_buckets_of_skips_odd_buckets_and_keeps_at_most_the_limit() -> None:
    answer = {
        "buckets": [
            {"keyValue": "CONNECTION_LOST", "count": 5},
            {"keyValue": 7, "count": 1},
            {"keyValue": "AUTH_ERROR", "count": "2"},
            "junk",
            {"keyValue": "THROTTLED", "count": 2},
            {"keyValue": "NONE", "count": 1},
        ]
    }
    assert buckets_of(answer, 10) == {"CONNECTION_LOST": 5, "THROTTLED": 2, "NONE": 1}
    assert buckets_of(answer, 2) == {"CONNECTION_LOST": 5, "THROTTLED": 2}
    assert buckets_of({}, 10) == {}
