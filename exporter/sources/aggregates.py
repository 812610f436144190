"""Fleet aggregates: counts over a fleet-index query, a few calls per query per interval.

GetStatistics on `connectivity.connected` counts the matching things and, as the sum of a
Boolean field, the connected ones. GetBucketsAggregation then splits the disconnected ones
by AWS's reason, and the connected ones by each field the config names. The cost does not
grow with the fleet, which makes these the signal for fleets of millions.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.aws.calls import AwsCalls, CallFailed
from exporter.config.aggregates import AggregateQuerySettings
from exporter.fleet.aggregates import AggregateCounts
from exporter.names import INDEX_NAME
from exporter.sources.base import PassOutcome, Source, Updates, describe

NAME = "aggregates"
CONNECTED_FIELD = "connectivity.connected"
REASON_FIELD = "connectivity.disconnectReason"


def narrowed(query: str, clause: str) -> str:
    """`query` AND `clause`; the match-everything query needs no AND."""
    return clause if query.strip() == "*" else f"({query}) AND {clause}"


def buckets_of(response: Mapping[str, Any], limit: int) -> dict[str, int]:
    """keyValue -> count from a GetBucketsAggregation answer; odd buckets are left out."""
    found: dict[str, int] = {}
    for bucket in response.get("buckets") or ():
        if not isinstance(bucket, dict):
            continue
        key, count = bucket.get("keyValue"), bucket.get("count")
        if isinstance(key, str) and isinstance(count, int) and not isinstance(count, bool):
            found[sys.intern(key)] = max(count, 0)
        if len(found) >= limit:
            break
    return found


def counts_of(statistics: Mapping[str, Any]) -> tuple[int, int] | None:
    """(connected, disconnected) from GetStatistics on connectivity.connected, or None."""
    stats = statistics.get("statistics")
    if not isinstance(stats, dict):
        return None
    count, total = stats.get("count"), stats.get("sum")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return None
    if total is None:
        total = 0.0  # AWS leaves sum out when no matching thing has the field
    if not isinstance(total, int | float) or isinstance(total, bool) or not 0 <= total <= count:
        return None
    connected = round(total)
    return connected, count - connected


class AggregatesSource(Source):
    """Every aggregate query, once per aggregates.interval."""

    name = NAME
    where = "aggregates"

    def __init__(
        self,
        queries: Sequence[AggregateQuerySettings],
        calls: AwsCalls,
        *,
        interval: float,
    ) -> None:
        self.interval = interval
        self._queries = tuple(queries)
        self._calls = calls

    def run(self, updates: Updates) -> PassOutcome:
        results: list[AggregateCounts] = []
        problems: list[str] = []
        failures: list[tuple[str, str]] = []
        for index, query in enumerate(self._queries):
            try:
                results.append(self._count(query))
            except CallFailed as failure:
                problems.append(f"aggregates.queries[{index}] ({query.name}): {describe(failure)}")
                failures.append((failure.operation, failure.code))
        if results:
            updates.counted(self.name, results)
        return PassOutcome(
            ok=not problems,
            problem="; ".join(problems),
            things=len(results),
            failures=tuple(failures),
        )

    def _count(self, query: AggregateQuerySettings) -> AggregateCounts:
        statistics = self._calls.call(
            "GetStatistics",
            indexName=INDEX_NAME,
            queryString=query.query,
            aggregationField=CONNECTED_FIELD,
        )
        counts = counts_of(statistics)
        if counts is None:
            raise self._calls.refused("GetStatistics", "InvalidResponse")
        connected, disconnected = counts
        reasons = self._buckets(
            narrowed(query.query, f"{CONNECTED_FIELD}:false"), REASON_FIELD, query.max_buckets
        )
        by = {
            field: self._buckets(
                narrowed(query.query, f"{CONNECTED_FIELD}:true"), field, query.max_buckets
            )
            for field in query.by
        }
        return AggregateCounts(query.name, connected, disconnected, reasons, by)

    def _buckets(self, query: str, field: str, limit: int) -> dict[str, int]:
        response = self._calls.call(
            "GetBucketsAggregation",
            indexName=INDEX_NAME,
            queryString=query,
            aggregationField=field,
            bucketsAggregationType={"termsAggregation": {"maxBuckets": limit}},
        )
        return buckets_of(response, limit)
