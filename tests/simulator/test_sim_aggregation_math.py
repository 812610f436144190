"""Fleet-index aggregation arithmetic, table-driven: field types, statistics, buckets."""

from __future__ import annotations

import math

import pytest

from iot_simulator.aggregations import (
    FieldType,
    as_number,
    field_type,
    numeric_statistics,
    string_statistics,
    terms_buckets,
)


@pytest.mark.parametrize(
    ("field", "connectivity", "expected"),
    [
        ("thingName", True, "String"),
        ("thingGroupNames", True, "String"),
        ("thingTypeName", False, "String"),
        ("registry.version", True, "Number"),
        ("attributes.site", True, "String"),
        ("attributes.", True, None),
        ("connectivity.connected", True, "Boolean"),
        ("connectivity.connected", False, None),  # not indexed with connectivity off
        ("connectivity.timestamp", True, "Number"),
        ("connectivity.disconnectReason", True, "String"),
        ("connectivity.keepAliveDuration", True, "Number"),
        ("connectivity.cleanSession", True, "Boolean"),
        ("shadow.reported.x", True, None),
        ("nonsense", True, None),
    ],
)
def test_field_types(field: str, connectivity: bool, expected: FieldType | None) -> None:
    assert field_type(field, connectivity=connectivity) == expected


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("Boolean", "true", 1.0),
        ("Boolean", "false", 0.0),
        ("Number", "1700000000123", 1700000000123.0),
        ("Number", "2.5", 2.5),
        ("Number", "n/a", None),
        ("Number", "nan", None),
        ("Number", "inf", None),
    ],
)
def test_as_number(kind: FieldType, text: str, expected: float | None) -> None:
    assert as_number(kind, text) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {"count": 0, "sum": 0.0, "sumOfSquares": 0.0}),
        (
            [1.0, 1.0, 0.0, 1.0],  # a Boolean field: 3 of 4 true
            {
                "count": 4,
                "sum": 3.0,
                "average": 0.75,
                "minimum": 0.0,
                "maximum": 1.0,
                "sumOfSquares": 3.0,
                "variance": 0.1875,
                "stdDeviation": math.sqrt(0.1875),
            },
        ),
        (
            [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0],
            {
                "count": 8,
                "sum": 40.0,
                "average": 5.0,
                "minimum": 2.0,
                "maximum": 9.0,
                "sumOfSquares": 232.0,
                "variance": 4.0,  # the population variance
                "stdDeviation": 2.0,
            },
        ),
        (
            [7.0],
            {
                "count": 1,
                "sum": 7.0,
                "average": 7.0,
                "minimum": 7.0,
                "maximum": 7.0,
                "sumOfSquares": 49.0,
                "variance": 0.0,
                "stdDeviation": 0.0,
            },
        ),
    ],
)
def test_numeric_statistics(values: list[float], expected: dict[str, float]) -> None:
    assert numeric_statistics(values) == expected


def test_variance_of_epoch_milliseconds_keeps_its_digits() -> None:
    # sumOfSquares/n - mean^2 would cancel every significant digit here.
    base = 1_700_000_000_000.0
    stats = numeric_statistics([base, base + 2.0])
    assert stats["variance"] == 1.0
    assert stats["stdDeviation"] == 1.0


def test_string_statistics_is_the_count_alone() -> None:
    assert string_statistics(12) == {"count": 12}


@pytest.mark.parametrize(
    ("counts", "max_buckets", "expected"),
    [
        ({}, 10, []),
        ({"a": 1, "b": 3, "c": 2}, 10, [("b", 3), ("c", 2), ("a", 1)]),
        ({"a": 1, "b": 3, "c": 2}, 2, [("b", 3), ("c", 2)]),
        ({"z": 2, "a": 2, "m": 5}, 10, [("m", 5), ("a", 2), ("z", 2)]),  # ties by value
        ({"true": 7, "false": 3}, 1, [("true", 7)]),
    ],
)
def test_terms_buckets(
    counts: dict[str, int], max_buckets: int, expected: list[tuple[str, int]]
) -> None:
    assert terms_buckets(counts, max_buckets) == [
        {"keyValue": key, "count": count} for key, count in expected
    ]
