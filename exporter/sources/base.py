"""What a source is: a job that runs in passes and reports what it learns through Updates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from exporter.aws.calls import CallFailed
from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import BatchSummary, Observation
from exporter.fleet.targets import Found


class Updates(Protocol):
    """What a source may tell the fleet's state, and the one thing it may ask of it."""

    def observed(self, batch: Sequence[Observation]) -> BatchSummary:
        """Apply connectivity observations (any source's, under the same rules)."""

    def found(self, source: str, things: Sequence[Found]) -> None:
        """Some of the things `source` names (one page of an answer)."""

    def settled(self, source: str, names: Collection[str]) -> None:
        """A completed pass of `source` named exactly `names`; the others leave it."""

    def counted(self, source: str, counts: Sequence[AggregateCounts]) -> None:
        """Fresh fleet aggregates."""

    def live_names(self) -> Sequence[str]:
        """The things the live poller must poll now."""


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """How one pass of a source ended.

    A failed pass changed nothing it could not stand behind: a target source keeps its
    last good answer, and observations it made before failing are true all the same.
    """

    ok: bool
    problem: str = ""  # why it failed, for the log
    things: int = 0  # how many things the pass covered
    summary: BatchSummary = field(default_factory=BatchSummary)
    # The (operation, error code) pairs the pass met, for the one-line fixes (hints.py).
    failures: tuple[tuple[str, str], ...] = ()

    @classmethod
    def failed_call(
        cls, failure: CallFailed, *, things: int = 0, summary: BatchSummary | None = None
    ) -> PassOutcome:
        """A pass a failed AWS call ended."""
        return cls(
            ok=False,
            problem=describe(failure),
            things=things,
            summary=summary if summary is not None else BatchSummary(),
            failures=((failure.operation, failure.code),),
        )


def describe(failure: CallFailed) -> str:
    """One line on a failed call for the log: the operation, AWS's code and its message."""
    message = ""
    response = getattr(failure.error, "response", None)
    if isinstance(response, dict):
        message = str(response.get("Error", {}).get("Message") or "")
    return f"{failure.operation}: {failure.code}" + (f": {message}" if message else "")


class Source(ABC):
    """A job the scheduler runs every `interval`, one pass at a time.

    `name` is the value of the source="..." label on the exporter's own metrics, and
    `where` the config path that defines it, so every log line about it says what the
    operator wrote.
    """

    name: str
    where: str
    interval: float

    @abstractmethod
    def run(self, updates: Updates) -> PassOutcome:
        """One pass; never raises for AWS's or the network's failures."""
