"""What a source is: a job that runs in passes and reports what it learns through Updates."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from exporter.aws.calls import AwsCalls, CallFailed
from exporter.exposition.event_metrics import EventMetrics
from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import BatchSummary, Observation
from exporter.fleet.shards import Shard
from exporter.fleet.targets import Found


class Updates(Protocol):
    """What a source may tell the fleet's state, and the one thing it may ask of it."""

    def observed(self, batch: Sequence[Observation]) -> BatchSummary:
        """Apply connectivity observations (any source's, under the same rules)."""

    def connect_failed(self, failures: Sequence[tuple[str | None, str]], at: float) -> int:
        """Count refused connect attempts: (the thing, or None for a client that maps to
        none; the failureType). Returns how many were of targeted things."""

    def found(self, source: str, things: Sequence[Found]) -> list[str]:
        """Some of the things `source` names (one page of an answer); returns the names it
        refused because AWS could not have issued them."""

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
    # The (operation, error code) pairs the pass met, for the one-line fixes (aws/hints.py).
    failures: tuple[tuple[str, str], ...] = ()
    # Names the pass met that AWS could not have issued as thing names, left out.
    invalid_names: tuple[str, ...] = ()

    @classmethod
    def failed_call(
        cls,
        failure: CallFailed,
        *,
        things: int = 0,
        summary: BatchSummary | None = None,
        invalid_names: Sequence[str] = (),
    ) -> PassOutcome:
        """A pass a failed AWS call ended."""
        return cls(
            ok=False,
            problem=describe(failure),
            things=things,
            summary=summary if summary is not None else BatchSummary(),
            failures=((failure.operation, failure.code),),
            invalid_names=tuple(invalid_names),
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
    operator wrote. The composition root knows sources only through this class.
    """

    name: str
    where: str
    interval: float
    # Its passes are poll cycles: they observe connectivity, and the iot_exporter_poll_*
    # families count them.
    observes: bool = False
    # It observes what the target sources name (the live poller): its first pass waits
    # until every target source has reported, so that it covers the whole fleet, and the
    # things they add later are handed to `targets_joined` without waiting for a pass.
    follows_targets: ClassVar[bool] = False

    @abstractmethod
    def run(self, updates: Updates) -> PassOutcome:
        """One pass; never raises for AWS's or the network's failures."""

    def targets_reported(self, updates: Updates) -> None:  # noqa: B027 - optional hook
        """Every target source has reported once; the first pass comes next (followers)."""

    def targets_joined(self, names: Sequence[str], updates: Updates) -> None:  # noqa: B027
        """Things the target sources added since; observe them now (followers)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """A reload replaced this source: end what it runs between passes."""


@dataclass(frozen=True, slots=True)
class EventWiring:
    """What the event source needs besides the IoT calls: SQS calls, its metrics, and the
    event that stops those calls (set by the source's close(), never by the app's stop,
    so a batch already applied is still deleted while the app stops)."""

    calls: AwsCalls
    metrics: EventMetrics
    closing: threading.Event


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the composition root hands plan(): the collaborators every source is built with."""

    calls: AwsCalls  # the IoT calls, each paced by its operation's budget
    stop: threading.Event  # set once, when the exporter stops
    clock: Callable[[], float]
    events: EventWiring | None = None  # None unless the config has an events section
    shard: Shard = field(default_factory=Shard)  # which share of the fleet this process owns
