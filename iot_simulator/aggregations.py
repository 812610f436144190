"""Fleet-index aggregation arithmetic: field types, GetStatistics' figures, terms buckets."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

FieldType = Literal["String", "Number", "Boolean"]

# The AWS_Things fields the simulator indexes, with the types AWS gives them. Registry
# attributes are strings; AWS aggregates one only once it is a custom field, which the
# simulator assumes every attribute is.
REGISTRY_FIELDS: Mapping[str, FieldType] = {
    "thingName": "String",
    "thingId": "String",
    "thingTypeName": "String",
    "thingGroupNames": "String",
    # Not searchable (AWS: "registry versions aren't searchable"), but GetStatistics
    # aggregates it when no aggregationField is given.
    "registry.version": "Number",
}
CONNECTIVITY_FIELDS: Mapping[str, FieldType] = {
    "connectivity.connected": "Boolean",
    "connectivity.timestamp": "Number",
    "connectivity.disconnectReason": "String",
    "connectivity.clientId": "String",
    "connectivity.keepAliveDuration": "Number",
    "connectivity.cleanSession": "Boolean",
    "connectivity.sessionExpiry": "Number",
}
ATTRIBUTE_PREFIX = "attributes."
# AWS: "If you don't specify an aggregation field, registry.version is used".
DEFAULT_STATISTICS_FIELD = "registry.version"
# botocore's model: maxBuckets "Default to 10" (its maximum, 10,000, is checked with the
# rest of the request against the model).
DEFAULT_MAX_BUCKETS = 10

Statistics = dict[str, int | float]


def field_type(field: str, *, connectivity: bool) -> FieldType | None:
    """The type of an aggregatable field, or None if the index has no such field.

    Connectivity fields exist only while connectivity indexing is on.
    """
    if field.startswith(ATTRIBUTE_PREFIX) and len(field) > len(ATTRIBUTE_PREFIX):
        return "String"
    if field in REGISTRY_FIELDS:
        return REGISTRY_FIELDS[field]
    if connectivity:
        return CONNECTIVITY_FIELDS.get(field)
    return None


def as_number(kind: FieldType, text: str) -> float | None:
    """A document value as GetStatistics counts it: true is 1 and false 0 on a Boolean field."""
    if kind == "Boolean":
        return 1.0 if text == "true" else 0.0
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def string_statistics(count: int) -> Statistics:
    """On a String field AWS returns the count alone: things that have the field."""
    return {"count": count}


def numeric_statistics(values: Sequence[float]) -> Statistics:
    """count, sum, average, minimum, maximum, sumOfSquares, variance and stdDeviation.

    The variance is the population variance, as Elasticsearch's extended stats (which the
    figures' names follow) computes it. It is taken around the mean in a second pass, so
    epoch-millisecond timestamps do not lose their digits to cancellation. With no values
    only the count and the two sums are defined; the rest are left out.
    """
    count = len(values)
    total = math.fsum(values)
    squares = math.fsum(v * v for v in values)
    if count == 0:
        return {"count": 0, "sum": 0.0, "sumOfSquares": 0.0}
    mean = total / count
    variance = math.fsum((v - mean) ** 2 for v in values) / count
    return {
        "count": count,
        "sum": total,
        "average": mean,
        "minimum": min(values),
        "maximum": max(values),
        "sumOfSquares": squares,
        "variance": variance,
        "stdDeviation": math.sqrt(variance),
    }


def terms_buckets(counts: Mapping[str, int], max_buckets: int) -> list[dict[str, str | int]]:
    """The ``max_buckets`` most frequent values, by count descending then value ascending."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"keyValue": key, "count": count} for key, count in ranked[:max_buckets]]
