"""A stand-in for the fleet's shared state that records what a source reports."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import BatchSummary, Observation, Outcome
from exporter.fleet.targets import Found
from exporter.names import is_thing_name


@dataclass
class RecordingUpdates:
    """Implements sources.base.Updates by keeping every call, in order."""

    live: list[str] = field(default_factory=list)
    batches: list[list[Observation]] = field(default_factory=list)
    pages: list[tuple[str, list[Found]]] = field(default_factory=list)
    settlements: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    aggregates: list[tuple[str, list[AggregateCounts]]] = field(default_factory=list)
    connect_failures: list[tuple[str | None, str]] = field(default_factory=list)

    def observed(self, batch: Sequence[Observation]) -> BatchSummary:
        self.batches.append(list(batch))
        succeeded = sum(1 for o in batch if o.outcome is Outcome.OK)
        codes: dict[str, int] = {}
        for o in batch:
            if o.error_code is not None:
                codes[o.error_code] = codes.get(o.error_code, 0) + 1
        return BatchSummary(
            observed=len(batch),
            succeeded=succeeded,
            failed=len(batch) - succeeded,
            error_codes=codes,
        )

    def connect_failed(self, failures: Sequence[tuple[str | None, str]], at: float) -> int:
        self.connect_failures.extend(failures)
        return sum(1 for name, _ in failures if name is not None)

    def found(self, source: str, things: Sequence[Found]) -> list[str]:
        """Records the page; refuses, as the shared state does, names AWS could not issue."""
        self.pages.append((source, list(things)))
        return [thing.name for thing in things if not is_thing_name(thing.name)]

    def settled(self, source: str, names: Collection[str]) -> None:
        self.settlements.append((source, frozenset(names)))

    def counted(self, source: str, counts: Sequence[AggregateCounts]) -> None:
        self.aggregates.append((source, list(counts)))

    def live_names(self) -> list[str]:
        return list(self.live)

    @property
    def observations(self) -> list[Observation]:
        return [o for batch in self.batches for o in batch]

    @property
    def found_things(self) -> list[Found]:
        return [item for _, page in self.pages for item in page]
