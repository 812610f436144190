"""Fleet aggregates: one fleet-index query's counts at one instant, as the state keeps them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AggregateCounts:
    """One aggregate query's counts from the fleet index at one instant."""

    name: str
    connected: int
    disconnected: int
    # Disconnected things by AWS's reason (the index drops the reason after about an hour,
    # so these may sum to less than `disconnected`).
    disconnected_by_reason: Mapping[str, int] = field(default_factory=dict)
    # Connected things by each `by` field, then by the field's value.
    connected_by: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
