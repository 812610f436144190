"""The fleet's shared state: where every source's updates meet, under one lock.

The rules are elsewhere and pure (targets.py for which things are watched, connectivity.py
for what their observations mean); this module only serialises the sources' threads onto
them, refuses names AWS could not have issued, and tells the renderer when something
changed. Everything outside the core reads and changes the state through these methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import BatchSummary, FleetState, Observation, ThingState
from exporter.fleet.rollups import Rollups, RollupSpec, Segment
from exporter.fleet.shards import Shard
from exporter.fleet.targets import STATIC_SOURCE, Found, SourceCount, SourceSlot, Targets
from exporter.names import is_thing_name

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class _Aggregate:
    counts: AggregateCounts
    at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a rendering reads. Valid only inside `SharedState.read`'s callback, which holds
    the lock: the targets and the fleet are the live objects, not copies, so a render of
    100,000 things copies nothing."""

    version: int
    now: float  # the state's clock, read under the lock
    targets: Targets
    fleet: FleetState
    aggregates: Mapping[str, AggregateCounts]  # those counted within the max age asked for
    left: Sequence[str]  # things that left since the last snapshot


class SharedState:
    """Targets, connectivity and aggregates, changed only through these methods.

    Every change bumps `version` and wakes whoever waits in `wait_for_change` (the
    renderer), so rendering follows changes rather than a clock.
    """

    def __init__(
        self,
        known_reasons: Iterable[str],
        *,
        clock: Callable[[], float],
        shard: Shard | None = None,
    ) -> None:
        self._lock = threading.RLock()
        # Things another shard owns never become targets here.
        self._shard = shard or Shard()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._targets = Targets(())
        self._targets.on_change = self._retargeted
        self._known_reasons = tuple(known_reasons)
        self._fleet = FleetState(self._known_reasons)
        self._aggregates: dict[str, _Aggregate] = {}
        self._clock = clock
        self._joined_live: list[str] = []
        self._left: list[str] = []
        self._retargets = 0  # things whose sources or info changed (see _retargeted)

    # -- Updates (sources/base.py) -----------------------------------------------------------

    def observed(self, batch: Sequence[Observation]) -> BatchSummary:
        with self._lock:
            summary = self._fleet.apply(batch, self._targets.__contains__)
            if summary.observed:
                self._bump()
            return summary

    def connect_failed(self, failures: Sequence[tuple[str | None, str]], at: float) -> int:
        with self._lock:
            counted = self._fleet.connect_failed(failures, at, self._targets.__contains__)
            if failures:
                self._bump()
            return counted

    def found(self, source: str, things: Sequence[Found]) -> list[str]:
        """Some of the things `source` names; return the names refused because AWS could not
        have issued them (they never become targets, so never reach /metrics)."""
        with self._lock:
            if not self._targets.names_source(source):
                return []  # a reload removed the source while its pass ran
            targeted = self._targets.things
            # Only a name new to the targets is checked: every target passed this check once.
            invalid = [
                t.name for t in things if t.name not in targeted and not is_thing_name(t.name)
            ]
            if invalid:
                refused = set(invalid)
                things = [thing for thing in things if thing.name not in refused]
            if not self._shard.whole and self._targets.slot(source).by_name:
                # (A source reading the index asks only for this shard's thingIds.)
                owns = self._shard.owns
                things = [t for t in things if t.name in targeted or owns(t.name)]
            retargets = self._retargets
            joined = self._targets.extend(source, things)
            if joined and self._live_source(source):
                self._joined_live.extend(joined)
            if joined or self._retargets != retargets:
                self._bump()
            return invalid

    def settled(self, source: str, names: Collection[str]) -> None:
        with self._lock:
            if self._targets.names_source(source):  # else a reload removed it mid-pass
                self._settle(source, names)

    def counted(self, source: str, counts: Sequence[AggregateCounts]) -> None:
        with self._lock:
            now = self._clock()
            for item in counts:
                self._aggregates[item.name] = _Aggregate(item, now)
            self._bump()

    def live_names(self) -> list[str]:
        with self._lock:
            return list(self._targets.live_names())

    # -- for the composition root --------------------------------------------------------

    def configure(
        self,
        slots: Sequence[SourceSlot],
        static: Sequence[str],
        *,
        events: bool,
        aggregates: Collection[str],
        rollups: RollupSpec | None = None,
    ) -> list[str]:
        """Take a config's target sources, static list, mode, aggregate queries and rollups
        (at start and on reload). Things that only removed sources, or the static list's
        removed names, named leave, and are returned; aggregates no longer configured are
        forgotten."""
        with self._lock:
            left = self._targets.reconfigure(slots)
            self._forget(left)
            # Lifecycle events configured: polls defer their counts to the events.
            self._fleet.events = events
            if static:
                # As a pass of the static list would: names it adds join the live poller's.
                self.found(STATIC_SOURCE, [Found(name) for name in static])
                left += self._settle(STATIC_SOURCE, frozenset(static))
            for name in [name for name in self._aggregates if name not in aggregates]:
                del self._aggregates[name]
            self._count_by(rollups or RollupSpec())
            self._bump()
            return left

    def _count_by(self, spec: RollupSpec) -> None:
        """Count the fleet by `spec`'s segments, keeping what still holds from before.

        Recounting walks the fleet, so it happens only when the segments could differ: new
        labels, or thing-group sources that moved (their bits index the groups).
        """
        current = self._fleet.rollups
        groups = self._targets.groups()
        if current is not None and current.spec == spec and current.groups == groups:
            return
        if current is not None and current.spec.info_labels != spec.info_labels:
            # Registry info holds the attributes in the old config's order: it would read
            # as the wrong labels until each thing's next pass brings it anew.
            self._targets.forget_info()
        fresh = Rollups(
            spec, self._targets.things, known_reasons=self._known_reasons, groups=groups
        )
        if current is not None and current.spec.labels == spec.labels:
            # The same series: their counters go on, and their segments stay in order.
            fresh.adopt(current)
        fresh.count_all(self._fleet.things)
        self._fleet.rollups = fresh

    def begin(self, source: str) -> None:
        """A target source's pass starts: its cap's refusals are counted afresh, so a failed
        pass (which never settles) does not add its refusals to the next one's."""
        with self._lock:
            if self._targets.names_source(source):
                self._targets.begin(source)

    def take_joined_live(self) -> list[str]:
        """Live-mode things that joined since the last call, to be polled without waiting."""
        with self._lock:
            joined, self._joined_live = self._joined_live, []
            return [name for name in joined if name in self._targets]

    def targeted(self) -> int:
        """How many things some source names."""
        with self._lock:
            return len(self._targets)

    def counts(self) -> dict[str, SourceCount]:
        """Every configured target source's count, read at one instant."""
        with self._lock:
            return {slot.name: self._targets.count(slot.name) for slot in self._targets.slots}

    @property
    def version(self) -> int:
        return self._version

    # -- for the renderer ----------------------------------------------------------------

    def read(self, reader: Callable[[Snapshot], R], *, aggregate_max_age: float) -> R:
        """Call `reader` on a snapshot, under the lock; sources wait meanwhile.

        Aggregates counted longer than `aggregate_max_age` ago are withdrawn, not shown.
        """
        with self._lock:
            now = self._clock()
            left, self._left = self._left, []
            aggregates = {
                name: item.counts
                for name, item in self._aggregates.items()
                if now - item.at <= aggregate_max_age
            }
            snapshot = Snapshot(self._version, now, self._targets, self._fleet, aggregates, left)
            return reader(snapshot)

    def wait_for_change(self, version: int, timeout: float | None) -> int:
        """Block until `version` is not the current one (or timeout); return the current one."""
        with self._changed:
            if self._version == version:
                self._changed.wait(timeout)
            return self._version

    def poke(self) -> None:
        """Wake the renderer without a change (to stop it, or when time alone matters)."""
        with self._changed:
            self._changed.notify_all()

    # -- for tests and benchmarks --------------------------------------------------------

    def things(self) -> dict[str, ThingState]:
        """A copy of every thing's state now."""
        with self._lock:
            return dict(self._fleet.things)

    def fleet_disconnects(self) -> dict[str, int]:
        """A copy of the fleet-wide disconnect counters now."""
        with self._lock:
            return dict(self._fleet.fleet_disconnects)

    def segments(self) -> dict[tuple[str, ...], Segment]:
        """A copy of the rollups' segments now, by their label values in rollup_by's order."""
        with self._lock:
            rollups = self._fleet.rollups
            if rollups is None:
                return {}
            return {
                segment.key: replace(segment, disconnects=dict(segment.disconnects))
                for segment in rollups.segments
            }

    def _settle(self, source: str, names: Collection[str]) -> list[str]:
        before = self._targets.count(source).things
        left = self._targets.settle(source, names)
        self._forget(left)
        if left or self._targets.count(source).things != before:
            self._bump()  # also covers things that only left this source (retargeted)
        return left

    def _forget(self, left: list[str]) -> None:
        self._fleet.forget(left)
        self._left.extend(left)

    def _retargeted(self, name: str) -> None:
        rollups = self._fleet.rollups
        if rollups is not None:
            rollups.retargeted(name, self._fleet.things.get(name))
        # A thing's groups or registry info changed: its labels and segment did.
        self._retargets += 1

    def _live_source(self, source: str) -> bool:
        return any(slot.name == source and slot.live for slot in self._targets.slots)

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()
