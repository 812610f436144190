"""Rollups: exact counts of things by segment, kept current as observations arrive.

A segment is one combination of the values of `metrics.rollup_by`'s labels. A render of
a million things cannot afford to walk the fleet to count them, so the counts move with
each change instead: a thing's connectivity changing, a disconnect counted, a thing
joining, leaving or changing type, attributes or groups. A render then reads a few
hundred numbers. Pure logic: no clock, no threads; SharedState serialises the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.fleet.connectivity import UNOBSERVED_FLAP, ThingState, mismatched
from exporter.fleet.targets import RegistryInfo, Target
from exporter.names import ROLLUP_OTHER, THING_GROUP_LABEL

# The segment every segment over the cap is folded into: each rollup label takes this value.
OTHER = ROLLUP_OTHER
DEFAULT_MAX_SEGMENTS = 1_000

# A thing's place in the counts: unknown until its first successful observation, then
# disconnected (never connected, or after having connected) or connected; a connected
# thing also counts as MISMATCHED while its client ID is not its name.
UNKNOWN, NEVER_CONNECTED, DISCONNECTED, CONNECTED = 0, 1, 2, 3
MISMATCHED = 4  # a flag on CONNECTED


# A label's values for a thing, from its registry info, group bits and configured labels.
Getter = Callable[[RegistryInfo | None, int, Mapping[str, str] | None], list[str]]


def bucket(state: ThingState | None) -> int:
    """Where a thing's state counts: nowhere until it is known, then by its connectivity."""
    if state is None or state.last_success_at is None:
        return UNKNOWN
    if state.connected:
        return CONNECTED | MISMATCHED if mismatched(state) else CONNECTED
    return NEVER_CONNECTED if state.timestamp is None else DISCONNECTED


@dataclass(frozen=True, slots=True)
class RollupSpec:
    """What segments the fleet: the labels and where each thing's value of each comes from."""

    labels: tuple[str, ...] = ()  # metrics.rollup_by, as written
    # iot_thing_info's labels besides thing_name (thing_type, then registry.attributes'),
    # whose values a thing's RegistryInfo carries in that order.
    info_labels: tuple[str, ...] = ()
    # Configured labels: for every thing, and per thing (which win).
    static_labels: Mapping[str, str] = field(default_factory=dict)
    thing_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    max_segments: int = DEFAULT_MAX_SEGMENTS


@dataclass(slots=True)
class Segment:
    """One segment's things by connectivity, and the disconnects counted in it."""

    key: tuple[str, ...]
    disconnected: int = 0  # never connected included
    connected: int = 0
    never_connected: int = 0  # of the disconnected
    client_id_mismatch: int = 0  # of the connected: under a client ID not their name
    disconnects: dict[str, int] = field(default_factory=dict)


class Rollups:
    """The fleet's things counted by segment.

    A thing in several thing groups counts once in each; every other label partitions the
    fleet. Segments are kept in the order they appear, up to `max_segments`; those after
    the cap are folded into one segment whose labels all read OTHER, so the counts still
    add up to the fleet. A segment, once shown, stays (at 0 when empty) until a reload
    changes the rollups, so its counter never vanishes under a query.
    """

    def __init__(
        self,
        spec: RollupSpec,
        targets: Mapping[str, Target],
        *,
        known_reasons: Iterable[str] = (),
        groups: Sequence[tuple[int, str]] = (),
    ) -> None:
        self.spec = spec
        self._targets = targets
        self._reasons = (*known_reasons, UNOBSERVED_FLAP)
        # (bit, thing group name) of each target source that lists a thing group.
        self.groups = tuple(groups)
        self.segments: list[Segment] = []
        self._index: dict[tuple[str, ...], int] = {}
        self._other: int | None = None
        self.dropped = 0  # distinct segments the cap folded into OTHER
        # Each counted thing's segments; things alike share one tuple (see `_memo`).
        self._of: dict[str, tuple[int, ...]] = {}
        self._memo: dict[tuple[RegistryInfo | None, int, int], tuple[int, ...]] = {}
        self._getters = [self._getter(label) for label in spec.labels]
        self._group_mask = sum(bit for bit, _ in self.groups)
        self._own_labels = any(
            label not in spec.info_labels and label != THING_GROUP_LABEL for label in spec.labels
        )
        # No labels: one segment, the whole fleet; no thing needs remembering.
        self._whole: tuple[int, ...] | None = (self._segment(()),) if not spec.labels else None

    # -- changes ---------------------------------------------------------------------------

    def observed(
        self, name: str, before: ThingState | None, after: ThingState, reason: str | None
    ) -> None:
        """A thing's state went from `before` to `after`, counting `reason` if not None."""
        old, new = bucket(before), bucket(after)
        if old == new and reason is None:
            return
        segments = self._segments_of(name)
        if not segments:
            return
        for index in segments:
            segment = self.segments[index]
            _move(segment, old, -1)
            _move(segment, new, 1)
            if reason is not None:
                segment.disconnects[reason] = segment.disconnects.get(reason, 0) + 1

    def retargeted(self, name: str, state: ThingState | None) -> None:
        """The thing's type, attributes or groups may have changed: move its count."""
        if self._whole is not None or name not in self._of:
            return  # counted nowhere yet: placed when first observed
        target = self._targets.get(name)
        if target is None:
            self.left(name, state)
            return
        old = self._of[name]
        new = self._place(name, target)
        if new == old:
            return
        where = bucket(state)
        for index in old:
            _move(self.segments[index], where, -1)
        for index in new:
            _move(self.segments[index], where, 1)

    def left(self, name: str, state: ThingState | None) -> None:
        """The thing is targeted no more: it leaves the counts (its disconnects stay)."""
        segments = self._whole if self._whole is not None else self._of.pop(name, ())
        where = bucket(state)
        for index in segments:
            _move(self.segments[index], where, -1)

    def count_all(self, things: Mapping[str, ThingState]) -> None:
        """Count every targeted thing's state (a new set of rollups starts from the fleet)."""
        for name, state in things.items():
            if name in self._targets:
                self.observed(name, None, state, None)

    def adopt(self, previous: Rollups) -> None:
        """Take over the segments of rollups by the same labels (a reload): in their order,
        under this cap, with their counters, so no counter resets or changes its place.

        A segment with neither things nor disconnects is left behind (its series read 0,
        so dropping them loses nothing); one the new cap folds gives its counts to OTHER.
        """
        for segment in previous.segments:
            if not (segment.connected or segment.disconnected or any(segment.disconnects.values())):
                continue
            if segment is previous.other:
                index = self._other_segment()
            else:
                index = self._segment(segment.key)
            merged = self.segments[index].disconnects
            for reason, count in segment.disconnects.items():
                merged[reason] = merged.get(reason, 0) + count

    @property
    def other(self) -> Segment | None:
        """The segment the cap folds the others into, once one was folded."""
        return None if self._other is None else self.segments[self._other]

    # -- placing a thing -------------------------------------------------------------------

    def _segments_of(self, name: str) -> tuple[int, ...]:
        if self._whole is not None:
            return self._whole
        segments = self._of.get(name)
        if segments is not None:
            return segments
        target = self._targets.get(name)
        return () if target is None else self._place(name, target)

    def _place(self, name: str, target: Target) -> tuple[int, ...]:
        groups = target.sources & self._group_mask
        own = self.spec.thing_labels.get(name) if self._own_labels else None
        # Keyed by identity: the static list shares one mapping among things labelled alike,
        # and the spec holds every mapping for as long as this memo lives.
        memo_key = (target.info, groups, id(own) if own is not None else 0)
        segments = self._memo.get(memo_key)
        if segments is None:
            segments = self._memo[memo_key] = self._segments_for(target.info, groups, own)
        self._of[name] = segments
        return segments

    def _segments_for(
        self, info: RegistryInfo | None, groups: int, own: Mapping[str, str] | None
    ) -> tuple[int, ...]:
        keys: list[tuple[str, ...]] = [()]
        for getter in self._getters:
            values = getter(info, groups, own)
            keys = [(*key, value) for key in keys for value in values]
        return tuple(sorted({self._segment(key) for key in keys}))

    def _getter(self, label: str) -> Getter:
        spec = self.spec
        if label == THING_GROUP_LABEL:
            return self._group_names
        if label in spec.info_labels:
            position = spec.info_labels.index(label)

            def from_info(
                info: RegistryInfo | None, groups: int, own: Mapping[str, str] | None
            ) -> list[str]:
                if info is None:
                    return [""]
                values = (info.thing_type, *info.attributes)
                return [values[position] if position < len(values) else ""]

            return from_info
        default = spec.static_labels.get(label, "")

        def configured(
            info: RegistryInfo | None, groups: int, own: Mapping[str, str] | None
        ) -> list[str]:
            return [own.get(label, default) if own is not None else default]

        return configured

    def _group_names(
        self, info: RegistryInfo | None, groups: int, own: Mapping[str, str] | None
    ) -> list[str]:
        # A thing in no configured thing group still counts, once, under "".
        return [name for bit, name in self.groups if groups & bit] or [""]

    def _segment(self, key: tuple[str, ...]) -> int:
        index = self._index.get(key)
        if index is not None:
            return index
        if len(self.segments) - (self._other is not None) >= self.spec.max_segments:
            self.dropped += 1
            index = self._index[key] = self._other_segment()
            return index
        index = self._index[key] = len(self.segments)
        # Every known reason from 0, so increase() sees a segment's first disconnect.
        self.segments.append(Segment(key, disconnects=dict.fromkeys(self._reasons, 0)))
        return index

    def _other_segment(self) -> int:
        if self._other is None:
            key = (OTHER,) * len(self.spec.labels)
            self._other = len(self.segments)
            self.segments.append(Segment(key, disconnects=dict.fromkeys(self._reasons, 0)))
        return self._other

    @property
    def shown(self) -> int:
        """Segments with their own series, not counting the one the cap folds the rest into."""
        return len(self.segments) - (self._other is not None)


def _move(segment: Segment, where: int, by: int) -> None:
    if where & MISMATCHED:
        segment.client_id_mismatch += by
        where &= ~MISMATCHED
    if where == CONNECTED:
        segment.connected += by
    elif where == DISCONNECTED:
        segment.disconnected += by
    elif where == NEVER_CONNECTED:
        segment.disconnected += by
        segment.never_connected += by
