"""Which things are targeted: each target source's last good answer, merged, under a cap.

Pure logic: no boto3, no threads. A source reports the things it found page by page
(`extend`), then, once a pass has completed, the whole set it names (`settle`); a failed
pass never settles, so the source keeps its last good answer. A thing is targeted while
at least one source names it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

STATIC_SOURCE = "static"


@dataclass(frozen=True, slots=True)
class RegistryInfo:
    """What the registry says about a thing, for iot_thing_info: its type and chosen attributes."""

    thing_type: str  # "" for a thing without a type
    attributes: tuple[str, ...] = ()  # registry.attributes' values in order, "" where absent


@dataclass(frozen=True, slots=True)
class Found:
    """One thing a source named, with its registry info when the source's answer carries it."""

    name: str
    info: RegistryInfo | None = None


@dataclass(frozen=True, slots=True)
class SourceSlot:
    """What the target set knows of one target source."""

    name: str
    live: bool  # its things are polled with GetThingConnectivityData
    max_things: int | None  # None: no cap (the static list)
    group: str | None = None  # the thing group it lists, if it lists one
    # Sharded: its things are owned by their name's hash (the static list, registry
    # listings), or by their thingId, as the fleet-index queries select them.
    by_name: bool = True


@dataclass(slots=True)
class Target:
    """One targeted thing: which sources name it (a bit each) and its registry info."""

    sources: int
    info: RegistryInfo | None = None


@dataclass(frozen=True, slots=True)
class SourceCount:
    """How many things a source names, and how many its cap refused in its last pass."""

    things: int
    refused: int


class Targets:
    """Every targeted thing, merged from the sources' answers.

    Each source holds at most its max_things: once full, a thing it finds anew is refused
    (and counted) until others leave, so a query that matches too much can neither grow
    memory nor series without bound, and the things already shown stay shown.
    """

    def __init__(self, slots: Sequence[SourceSlot]) -> None:
        self.things: dict[str, Target] = {}
        # Told the name of a thing that stays targeted but whose sources or info changed
        # (the rollups move its count).
        self.on_change: Callable[[str], None] | None = None
        self._slots: tuple[SourceSlot, ...] = ()
        self._bits: dict[str, int] = {}
        self._live_mask = 0
        self._counts: dict[str, int] = {}
        self._refusing: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._sorted: list[str] | None = None
        self._live: list[str] | None = None
        self.reconfigure(slots)

    # -- the sources' reports ---------------------------------------------------------------

    def begin(self, source: str) -> None:
        """A pass starts: the cap's refusals are counted afresh."""
        self._refusing[source] = 0

    def extend(self, source: str, found: Iterable[Found]) -> list[str]:
        """Add what a source found; return the names that became targets."""
        bit = self._bits[source]
        cap = self.slot(source).max_things
        joined: list[str] = []
        things = self.things
        on_change = self.on_change
        for item in found:
            target = things.get(item.name)
            # A thing already targeted whose sources or info change moves in the rollups.
            existing = target is not None
            changed = False
            if target is None or not target.sources & bit:
                if cap is not None and self._counts[source] >= cap:
                    self._refusing[source] = self._refusing.get(source, 0) + 1
                    continue
                self._counts[source] += 1
                if target is None:
                    target = things[item.name] = Target(0)
                    joined.append(item.name)
                target.sources |= bit
                changed = existing
            if item.info is not None and item.info != target.info:
                target.info = item.info
                changed = existing
            if changed and on_change is not None:
                on_change(item.name)
        if joined:
            self._changed()
        elif self._live is not None and bit & self._live_mask:
            self._live = None  # a thing named by another source may have become live
        return joined

    def settle(self, source: str, names: Collection[str]) -> list[str]:
        """A completed pass named exactly `names`: the rest leave the source. Return the
        names that no source targets any more."""
        bit = self._bits[source]
        left: list[str] = []
        leaving_source = 0
        for name, target in self.things.items():
            if target.sources & bit and name not in names:
                target.sources &= ~bit
                leaving_source += 1
                if not target.sources:
                    left.append(name)
                elif self.on_change is not None:
                    self.on_change(name)
        for name in left:
            del self.things[name]
        self._counts[source] -= leaving_source
        self._refused[source] = self._refusing.pop(source, 0)
        if leaving_source:
            self._changed()
        return left

    # -- configuration ----------------------------------------------------------------------

    def reconfigure(self, slots: Sequence[SourceSlot]) -> list[str]:
        """Take a new list of sources (a reload); things only removed sources named leave.

        A source of the same name keeps what it found; its mode and cap may change.
        """
        names = [slot.name for slot in slots]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate source names in {names}")
        new_bits = {slot.name: 1 << index for index, slot in enumerate(slots)}
        remap = [(self._bits[name], bit) for name, bit in new_bits.items() if name in self._bits]
        left: list[str] = []
        for name, target in self.things.items():
            sources = 0
            for old, new in remap:
                if target.sources & old:
                    sources |= new
            target.sources = sources
            if not sources:
                left.append(name)
        for name in left:
            del self.things[name]
        self._slots = tuple(slots)
        self._bits = new_bits
        self._live_mask = sum(new_bits[slot.name] for slot in slots if slot.live)
        self._counts = {
            slot.name: sum(1 for t in self.things.values() if t.sources & new_bits[slot.name])
            for slot in slots
        }
        self._refused = {slot.name: self._refused.get(slot.name, 0) for slot in slots}
        self._refusing = {}
        self._changed()
        return left

    # -- what the rest of the exporter reads ------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self.things

    def __len__(self) -> int:
        return len(self.things)

    def sorted_names(self) -> list[str]:
        """Every targeted name in exposition order; kept between changes, not copied."""
        if self._sorted is None:
            self._sorted = sorted(self.things)
        return self._sorted

    def live_names(self) -> list[str]:
        """The things a live-mode source names: the live poller's list."""
        if self._live is None:
            mask = self._live_mask
            self._live = [name for name, t in self.things.items() if t.sources & mask]
        return self._live

    def names_source(self, source: str) -> bool:
        """Whether `source` is one of the configured target sources."""
        return source in self._bits

    def forget_info(self) -> None:
        """Drop every thing's registry info (the attributes read changed); the next pass of
        each source brings it again."""
        for target in self.things.values():
            target.info = None

    def groups(self) -> tuple[tuple[int, str], ...]:
        """(bit, thing group) of every source that lists a thing group, in slot order."""
        return tuple(
            (self._bits[slot.name], slot.group) for slot in self._slots if slot.group is not None
        )

    def count(self, source: str) -> SourceCount:
        return SourceCount(self._counts[source], self._refused.get(source, 0))

    @property
    def slots(self) -> tuple[SourceSlot, ...]:
        return self._slots

    def slot(self, source: str) -> SourceSlot:
        return self._slots[self._bits[source].bit_length() - 1]

    def _changed(self) -> None:
        self._sorted = None
        self._live = None
