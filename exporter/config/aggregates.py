"""aggregates: fleet-wide counts from the index, each query costing a few calls per interval."""

import re
from typing import Annotated

from exporter.config.fields import (
    Interval,
    QueryString,
    SourceName,
    Text,
    integer_in,
    item_itself,
    list_of,
    matching,
    raw_key,
    unique_by,
)
from exporter.config.yamlfile import StrictSection

DEFAULT_AGGREGATES_INTERVAL = 60.0
DEFAULT_MAX_BUCKETS = 100
MAX_BUCKETS = 10_000  # GetBucketsAggregation's own limit
_AGGREGATION_FIELD_RE = re.compile(
    r"thingTypeName|thingGroupNames|attributes\.[a-zA-Z0-9_.,@/:#-]{1,128}"
)
AggregationField = Annotated[
    Text,
    matching(
        _AGGREGATION_FIELD_RE,
        "expected thingTypeName, thingGroupNames or attributes.NAME, got {got}",
    ),
]


class AggregateQuerySettings(StrictSection):
    """aggregates.queries[]: counts over the things a fleet-index query matches."""

    name: SourceName
    query: QueryString = "*"
    by: Annotated[
        tuple[AggregationField, ...],
        unique_by(item_itself, "field"),
        list_of("fields such as thingTypeName or attributes.site"),
    ] = ()
    # Most buckets (reasons, or values of a `by` field) kept per field: an attribute with a
    # value per thing must not become a series per thing.
    max_buckets: Annotated[int, integer_in(1, MAX_BUCKETS)] = DEFAULT_MAX_BUCKETS


class AggregatesSettings(StrictSection):
    """Fleet-wide counts from the index, each query costing a few calls per interval."""

    interval: Interval = DEFAULT_AGGREGATES_INTERVAL
    queries: Annotated[
        tuple[AggregateQuerySettings, ...],
        unique_by(raw_key("name", plain=False), "aggregate name"),
        list_of("aggregate queries (mappings with name and query)"),
    ] = ()
