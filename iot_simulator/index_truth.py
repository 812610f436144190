"""What the fleet index should answer, worked out thing by thing from the fleet: the test oracle.

It shares only the query parser and the aggregation arithmetic (both table-tested) with the
index that serves requests. Documents are built whole from each thing's registry record,
one thing at a time, rather than from the index's bulk snapshots and lazy documents, so a
test comparing the two checks the serving path against a plain restatement of the rules:

- the index shows connectivity and group memberships as of ``at`` minus the index lag;
- a thing disconnected for the retention period has neither connectivity.timestamp nor
  connectivity.disconnectReason;
- only a client ID equal to the thing's name counts (see Fleet.set_client_id);
- the registry is not lagged: the things are those that existed at ``at``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from iot_simulator.aggregations import (
    DEFAULT_MAX_BUCKETS,
    DEFAULT_STATISTICS_FIELD,
    Statistics,
    as_number,
    field_type,
    numeric_statistics,
    string_statistics,
    terms_buckets,
)
from iot_simulator.clock import Clock
from iot_simulator.index import FleetIndex
from iot_simulator.model import Fleet, ThingRecord, UnknownThingError
from iot_simulator.query import parse

Flat = dict[str, list[str]]


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class IndexTruth:
    """Expected SearchIndex, GetStatistics and GetBucketsAggregation answers at an instant.

    ``at`` is when the question is asked (default: now; never the future). Things deleted
    before now are gone from the fleet, so an ``at`` before a deletion misses them.
    """

    def __init__(self, fleet: Fleet, index: FleetIndex, clock: Clock) -> None:
        self._fleet = fleet
        self._index = index
        self._clock = clock

    def _when(self, at: float | None) -> float:
        now = self._clock.now()
        if at is None:
            return now
        if at > now:
            raise ValueError(f"the index truth cannot tell the future ({at} > now {now})")
        return at

    def _record(self, name: str, at: float) -> ThingRecord | None:
        """The thing's record as the index shows it at ``at``; None if it did not exist then."""
        try:
            created = self._fleet.created_at(name)
            if created is not None and created > at:
                return None
            return self._fleet.record(name, at=at - self._index.lag_seconds)
        except UnknownThingError:
            return None

    def _visible(self, record: ThingRecord, at: float) -> tuple[bool, int | None, str | None]:
        connected, stamp, reason = record.connectivity
        as_of_ms = math.floor((at - self._index.lag_seconds) * 1000.0)
        retention_ms = self._index.disconnect_details_retention_seconds * 1000.0
        if not connected and stamp is not None and as_of_ms - stamp >= retention_ms:
            return False, None, None
        return connected, stamp, None if connected else reason

    def fields(self, name: str, *, at: float | None = None) -> Flat | None:
        """The thing's searchable fields (values as strings), or None if not indexed then."""
        when = self._when(at)
        record = self._record(name, when)
        if record is None:
            return None
        doc: Flat = {
            "thingName": [record.name],
            "thingId": [record.thing_id],
            "thingGroupNames": list(record.groups),
            "registry.version": [str(record.version)],
        }
        if record.type_name is not None:
            doc["thingTypeName"] = [record.type_name]
        for key, value in record.attributes.items():
            doc[f"attributes.{key}"] = [value]
        if self._index.connectivity:
            connected, stamp, reason = self._visible(record, when)
            doc["connectivity.connected"] = [_text(connected)]
            if stamp is not None:
                doc["connectivity.timestamp"] = [str(stamp)]
            if reason is not None:
                doc["connectivity.disconnectReason"] = [reason]
            if record.session is not None:
                session = record.session
                doc["connectivity.clientId"] = [session.client_id]
                doc["connectivity.keepAliveDuration"] = [str(session.keep_alive)]
                doc["connectivity.cleanSession"] = [_text(session.clean_session)]
                doc["connectivity.sessionExpiry"] = [str(session.session_expiry)]
        return {k: v for k, v in doc.items() if v}

    def document(self, name: str, *, at: float | None = None) -> dict[str, Any] | None:
        """The thing as SearchIndex would return it (None values left out, as boto3 does)."""
        when = self._when(at)
        record = self._record(name, when)
        if record is None:
            return None
        doc: dict[str, Any] = {"thingName": record.name, "thingId": record.thing_id}
        if record.type_name is not None:
            doc["thingTypeName"] = record.type_name
        if record.groups:
            doc["thingGroupNames"] = list(record.groups)
        if record.attributes:
            doc["attributes"] = dict(record.attributes)
        if self._index.connectivity:
            connected, stamp, reason = self._visible(record, when)
            state: dict[str, Any] = {"connected": connected}
            if stamp is not None:
                state["timestamp"] = stamp
            if reason is not None:
                state["disconnectReason"] = reason
            if record.session is not None:
                state["clientId"] = record.session.client_id
                state["keepAliveDuration"] = record.session.keep_alive
                state["cleanSession"] = record.session.clean_session
                state["sessionExpiry"] = record.session.session_expiry
            doc["connectivity"] = state
        return doc

    def _matching(self, query: str, at: float | None) -> list[Flat]:
        expr = parse(query)
        when = self._when(at)
        found = []
        for name in self._fleet.thing_names():
            doc = self.fields(name, at=when)
            if doc is not None and expr.matches(doc):
                found.append(doc)
        return found

    def search(self, query: str, *, at: float | None = None) -> list[str]:
        """Names of the things SearchIndex finds, in the order it pages them."""
        return [doc["thingName"][0] for doc in self._matching(query, at)]

    def statistics(
        self, query: str = "*", field: str | None = None, *, at: float | None = None
    ) -> Statistics:
        """GetStatistics' ``statistics`` for ``query`` over ``field`` (registry.version if None)."""
        field = field or DEFAULT_STATISTICS_FIELD
        kind = field_type(field, connectivity=self._index.connectivity)
        if kind is None:
            raise ValueError(f"{field} cannot be aggregated")
        having = [doc[field] for doc in self._matching(query, at) if field in doc]
        if kind == "String":
            return string_statistics(len(having))
        numbers = [as_number(kind, values[0]) for values in having]
        return numeric_statistics([n for n in numbers if n is not None])

    def buckets(
        self,
        query: str,
        field: str,
        *,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        at: float | None = None,
    ) -> dict[str, Any]:
        """GetBucketsAggregation's answer: ``{"totalCount": ..., "buckets": [...]}``."""
        if field_type(field, connectivity=self._index.connectivity) is None:
            raise ValueError(f"{field} cannot be aggregated")
        matching = self._matching(query, at)
        counts: Counter[str] = Counter()
        for doc in matching:
            counts.update(set(doc.get(field, ())))
        return {"totalCount": len(matching), "buckets": terms_buckets(counts, max_buckets)}
