"""The fleet index (AWS_Things): documents as of now minus the lag, searched and aggregated."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from iot_simulator.aggregations import (
    ATTRIBUTE_PREFIX,
    FieldType,
    Statistics,
    as_number,
    numeric_statistics,
    string_statistics,
    terms_buckets,
)
from iot_simulator.clock import Clock
from iot_simulator.config import index_setting_problems
from iot_simulator.model import Fleet, RegistryEntry, ThingSnapshot, session_expiry
from iot_simulator.query import And, Expr, MatchAll, conjuncts, fields

_NONE: tuple[str, ...] = ()
Getter = Callable[[ThingSnapshot], Sequence[str]]


def _one(value: str | None) -> Sequence[str]:
    return _NONE if value is None else (value,)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# The fields a registry entry holds for good; a query on them alone can reject a thing
# before its snapshot is made.
_ENTRY_GETTERS: Mapping[str, Callable[[RegistryEntry], Sequence[str]]] = {
    "thingName": lambda s: (s.name,),
    "thingId": lambda s: (s.thing_id,),
    "thingTypeName": lambda s: _one(s.type_name),
}
# Each indexed field's values in a document, as strings (see query.Document).
_REGISTRY_GETTERS: Mapping[str, Getter] = {
    **_ENTRY_GETTERS,
    "thingGroupNames": lambda s: s.groups,
    "registry.version": lambda s: (str(s.version),),
}
# Session fields exist while the thing is connected; the reason only while it is not.
_CONNECTIVITY_GETTERS: Mapping[str, Getter] = {
    "connectivity.connected": lambda s: (_bool(s.connected),),
    "connectivity.timestamp": lambda s: _NONE if s.timestamp_ms is None else (str(s.timestamp_ms),),
    "connectivity.disconnectReason": lambda s: _NONE if s.connected else _one(s.reason),
    "connectivity.clientId": lambda s: (s.client_id,) if s.connected else _NONE,
    "connectivity.keepAliveDuration": lambda s: (str(s.keep_alive),) if s.connected else _NONE,
    "connectivity.cleanSession": lambda s: (_bool(s.clean_session),) if s.connected else _NONE,
    "connectivity.sessionExpiry": (
        lambda s: (str(session_expiry(s.clean_session)),) if s.connected else _NONE
    ),
}


def field_values(snapshot: ThingSnapshot, field: str, *, connectivity: bool) -> Sequence[str]:
    """The values ``field`` has in the thing's index document (empty if it has none)."""
    if field.startswith(ATTRIBUTE_PREFIX):
        return _one(snapshot.attributes.get(field[len(ATTRIBUTE_PREFIX) :]))
    getter = _REGISTRY_GETTERS.get(field)
    if getter is None and connectivity:
        getter = _CONNECTIVITY_GETTERS.get(field)
    return _NONE if getter is None else getter(snapshot)


def _entry_field(field: str) -> bool:
    return field in _ENTRY_GETTERS or field.startswith(ATTRIBUTE_PREFIX)


class _EntryDocument(Mapping[str, Sequence[str]]):
    """A registry entry's lasting fields as a query.Document (see _entry_field)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: RegistryEntry) -> None:
        self._entry = entry

    def _values(self, field: str) -> Sequence[str]:
        if field.startswith(ATTRIBUTE_PREFIX):
            return _one(self._entry.attributes.get(field[len(ATTRIBUTE_PREFIX) :]))
        return _ENTRY_GETTERS[field](self._entry)

    def __getitem__(self, field: str) -> Sequence[str]:
        values = self._values(field)
        if not values:
            raise KeyError(field)
        return values

    def get(self, field: str, default: Any = None) -> Any:
        return self._values(field) or default

    def __iter__(self) -> Iterator[str]:
        attributes = (f"{ATTRIBUTE_PREFIX}{k}" for k in self._entry.attributes)
        return (f for f in [*_ENTRY_GETTERS, *attributes] if self.get(f))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _split(expr: Expr) -> tuple[Callable[[RegistryEntry], bool] | None, Expr]:
    """The query as (a test of the registry entry alone, or None; what is left to test on the
    snapshot). Both must hold, so the scan makes snapshots only of the entries that pass."""
    parts = conjuncts(expr)
    lasting = tuple(p for p in parts if all(_entry_field(f) for f in fields(p)))
    if not lasting:
        return None, expr
    rest = tuple(p for p in parts if p not in lasting)
    entry_expr = lasting[0] if len(lasting) == 1 else And(lasting)
    remaining: Expr = MatchAll() if not rest else rest[0] if len(rest) == 1 else And(rest)
    return (lambda entry: entry_expr.matches(_EntryDocument(entry))), remaining


class SnapshotDocument(Mapping[str, Sequence[str]]):
    """A snapshot as a query.Document whose fields are computed when a query asks for them.

    A query names a field or two; building all of a document for each of 100,000 things
    would cost more than the query.
    """

    __slots__ = ("_connectivity", "_snapshot")

    def __init__(self, snapshot: ThingSnapshot, *, connectivity: bool) -> None:
        self._snapshot = snapshot
        self._connectivity = connectivity

    def __getitem__(self, field: str) -> Sequence[str]:
        values = field_values(self._snapshot, field, connectivity=self._connectivity)
        if not values:
            raise KeyError(field)
        return values

    def get(self, field: str, default: Any = None) -> Any:
        values = field_values(self._snapshot, field, connectivity=self._connectivity)
        return values or default

    def __iter__(self) -> Iterator[str]:
        fields = [*_REGISTRY_GETTERS, *(f"attributes.{k}" for k in self._snapshot.attributes)]
        if self._connectivity:
            fields.extend(_CONNECTIVITY_GETTERS)
        return (f for f in fields if self.get(f))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def forget_disconnect_details(
    snapshot: ThingSnapshot, as_of_ms: int, retention_ms: float
) -> ThingSnapshot:
    """AWS's documented gap: a thing disconnected for ``retention_ms`` loses its timestamp and
    reason from the index, keeping ``connected=false``."""
    if snapshot.connected or snapshot.timestamp_ms is None:
        return snapshot
    if as_of_ms - snapshot.timestamp_ms < retention_ms:
        return snapshot
    return snapshot._replace(timestamp_ms=None, reason=None)


def search_document(snapshot: ThingSnapshot, *, connectivity: bool) -> dict[str, Any]:
    """The thing as SearchIndex returns it (a ThingDocument; None values are left out)."""
    doc: dict[str, Any] = {
        "thingName": snapshot.name,
        "thingId": snapshot.thing_id,
        "thingTypeName": snapshot.type_name,
        "thingGroupNames": list(snapshot.groups) or None,
        "attributes": dict(snapshot.attributes) or None,
    }
    if connectivity:
        state: dict[str, Any] = {
            "connected": snapshot.connected,
            "timestamp": snapshot.timestamp_ms,
        }
        if snapshot.connected:
            state.update(
                clientId=snapshot.client_id,
                keepAliveDuration=snapshot.keep_alive,
                cleanSession=snapshot.clean_session,
                sessionExpiry=session_expiry(snapshot.clean_session),
            )
        else:
            state["disconnectReason"] = snapshot.reason
        doc["connectivity"] = state
    return doc


class FleetIndex:
    """The AWS_Things index over a fleet: what SearchIndex, GetStatistics and
    GetBucketsAggregation see. Thread-safe; its two settings change at run time.

    A document shows the thing's connectivity and group memberships as of now minus the
    lag, with the disconnect details AWS drops after about an hour dropped. The registry
    (which things exist, their type and attributes) is not lagged.
    """

    def __init__(
        self,
        fleet: Fleet,
        clock: Clock,
        *,
        connectivity: bool,
        lag_seconds: float = 0.0,
        disconnect_details_retention_seconds: float = 3600.0,
    ) -> None:
        self._fleet = fleet
        self._clock = clock
        self.connectivity = connectivity
        self._lock = threading.Lock()
        self._lag = 0.0
        self._retention = 3600.0
        self.configure(
            lag_seconds=lag_seconds,
            disconnect_details_retention_seconds=disconnect_details_retention_seconds,
        )

    # ----- settings -----------------------------------------------------------------------

    def configure(
        self,
        *,
        lag_seconds: float | None = None,
        disconnect_details_retention_seconds: float | None = None,
    ) -> None:
        """Change either setting from now on (ValueError, changing nothing, if one is bad)."""
        with self._lock:
            lag = self._lag if lag_seconds is None else float(lag_seconds)
            retention = (
                self._retention
                if disconnect_details_retention_seconds is None
                else float(disconnect_details_retention_seconds)
            )
            problems = index_setting_problems(lag, retention)
            if problems:
                raise ValueError("; ".join(problems))
            self._lag, self._retention = lag, retention

    @property
    def lag_seconds(self) -> float:
        with self._lock:
            return self._lag

    @property
    def disconnect_details_retention_seconds(self) -> float:
        with self._lock:
            return self._retention

    # ----- documents ----------------------------------------------------------------------

    def snapshots(
        self,
        *,
        after: str | None = None,
        registered: Callable[[RegistryEntry], bool] | None = None,
    ) -> Iterator[ThingSnapshot]:
        """Every indexed thing now, in name order after ``after`` (see Fleet.snapshots)."""
        with self._lock:
            lag, retention_ms = self._lag, self._retention * 1000.0
        as_of = self._clock.now() - lag
        as_of_ms = math.floor(as_of * 1000.0)
        for snapshot in self._fleet.snapshots(as_of, after=after, registered=registered):
            yield forget_disconnect_details(snapshot, as_of_ms, retention_ms)

    def matching(self, expr: Expr, *, after: str | None = None) -> Iterator[ThingSnapshot]:
        """The things whose document matches ``expr``, in name order after ``after``."""
        registered, expr = _split(expr)
        snapshots = self.snapshots(after=after, registered=registered)
        if isinstance(expr, MatchAll):
            return snapshots
        connectivity = self.connectivity
        return (
            s for s in snapshots if expr.matches(SnapshotDocument(s, connectivity=connectivity))
        )

    # ----- aggregations -------------------------------------------------------------------

    def statistics(self, expr: Expr, field: str, kind: FieldType) -> Statistics:
        """GetStatistics over the matching things that have ``field``."""
        connectivity = self.connectivity
        if kind == "String":
            return string_statistics(
                sum(
                    1
                    for s in self.matching(expr)
                    if field_values(s, field, connectivity=connectivity)
                )
            )
        numbers: list[float] = []
        for snapshot in self.matching(expr):
            for text in field_values(snapshot, field, connectivity=connectivity):
                number = as_number(kind, text)
                if number is not None:
                    numbers.append(number)
        return numeric_statistics(numbers)

    def buckets(
        self, expr: Expr, field: str, max_buckets: int
    ) -> tuple[int, list[dict[str, str | int]]]:
        """GetBucketsAggregation: (things matching, buckets of the values of ``field``)."""
        connectivity = self.connectivity
        total = 0
        counts: Counter[str] = Counter()
        for snapshot in self.matching(expr):
            total += 1
            # A list field counts a thing once in each of its distinct values.
            counts.update(set(field_values(snapshot, field, connectivity=connectivity)))
        return total, terms_buckets(counts, max_buckets)
