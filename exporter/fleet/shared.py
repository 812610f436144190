"""The fleet's shared state: where every source's updates meet, under one lock.

The rules are elsewhere and pure (targets.py for which things are watched, fleet.py for
what their observations mean); this module only serialises the sources' threads onto
them, and tells the renderer when something changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import BatchSummary, FleetState, Observation
from exporter.fleet.targets import Found, SourceCount, SourceSlot, Targets


@dataclass(frozen=True, slots=True)
class _Aggregate:
    counts: AggregateCounts
    at: float


class SharedState:
    """Targets, connectivity and aggregates, changed only through the Updates methods.

    Every change bumps `version` and wakes whoever waits in `wait_for_change` (the
    renderer), so rendering follows changes rather than a clock.
    """

    def __init__(
        self,
        slots: Sequence[SourceSlot],
        known_reasons: Iterable[str],
        *,
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self.version = 0
        self.targets = Targets(slots)
        self.fleet = FleetState(known_reasons)
        self._aggregates: dict[str, _Aggregate] = {}
        self._clock = clock
        self._joined_live: list[str] = []
        self._left: list[str] = []

    # -- Updates (sources/base.py) -----------------------------------------------------------

    def observed(self, batch: Sequence[Observation]) -> BatchSummary:
        with self.lock:
            summary = self.fleet.apply(batch, self.targets.__contains__)
            if summary.observed:
                self._bump()
            return summary

    def begin(self, source: str) -> None:
        """A target source's pass starts: its cap's refusals are counted afresh, so a failed
        pass (which never settles) does not add its refusals to the next one's."""
        with self.lock:
            self.targets.begin(source)

    def found(self, source: str, things: Sequence[Found]) -> None:
        with self.lock:
            joined = self.targets.extend(source, things)
            if joined:
                if self._live_source(source):
                    self._joined_live.extend(joined)
                self._bump()

    def settled(self, source: str, names: Collection[str]) -> None:
        with self.lock:
            before = self.targets.count(source).things
            left = self.targets.settle(source, names)
            self.fleet.forget(left)
            self._left.extend(left)
            if left or self.targets.count(source).things != before:
                self._bump()

    def counted(self, source: str, counts: Sequence[AggregateCounts]) -> None:
        with self.lock:
            now = self._clock()
            for item in counts:
                self._aggregates[item.name] = _Aggregate(item, now)
            self._bump()

    def live_names(self) -> list[str]:
        with self.lock:
            return list(self.targets.live_names())

    # -- for the composition root --------------------------------------------------------

    def take_joined_live(self) -> list[str]:
        """Live-mode things that joined since the last call, to be polled without waiting."""
        with self.lock:
            joined, self._joined_live = self._joined_live, []
            return [name for name in joined if name in self.targets]

    def take_left(self) -> list[str]:
        """Things that left since the last call (the renderer forgets their labels)."""
        with self.lock:
            left, self._left = self._left, []
            return left

    def reconfigure(self, slots: Sequence[SourceSlot]) -> list[str]:
        """New target sources (a reload): things only removed sources named leave."""
        with self.lock:
            left = self.targets.reconfigure(slots)
            self.fleet.forget(left)
            self._left.extend(left)
            self._bump()
            return left

    def keep_aggregates(self, names: Collection[str]) -> None:
        """Forget aggregates no longer configured."""
        with self.lock:
            for name in [name for name in self._aggregates if name not in names]:
                del self._aggregates[name]
            self._bump()

    def aggregates(self, now: float, max_age: float) -> dict[str, AggregateCounts]:
        """The aggregates counted within `max_age`; older counts are withdrawn, not shown."""
        with self.lock:
            return {
                name: item.counts
                for name, item in self._aggregates.items()
                if now - item.at <= max_age
            }

    def count(self, source: str) -> SourceCount:
        with self.lock:
            return self.targets.count(source)

    def wait_for_change(self, version: int, timeout: float | None) -> int:
        """Block until `version` is not the current one (or timeout); return the current one."""
        with self._changed:
            if self.version == version:
                self._changed.wait(timeout)
            return self.version

    def poke(self) -> None:
        """Wake the renderer without a change (to stop it, or when time alone matters)."""
        with self._changed:
            self._changed.notify_all()

    def _live_source(self, source: str) -> bool:
        return any(slot.name == source and slot.live for slot in self.targets.slots)

    def _bump(self) -> None:
        self.version += 1
        self._changed.notify_all()
