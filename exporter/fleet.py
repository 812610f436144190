"""Fleet state: what each thing last reported, and the rules that turn observations into counts.

Pure logic: no boto3, no threads, no clock. Sources hand in batches of observations (the
live poller, the fleet-index pager); the exposition reads the state. Everything here can
be tested in a table.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

# A flap that began and ended between two polls leaves only a newer timestamp on a
# still-connected thing. AWS's own enum values are upper case (including UNKNOWN), so a
# lower-case value can never be mistaken for one of them, now or when AWS adds more.
UNOBSERVED_FLAP = "unobserved_flap"

# AWS reports a disconnected thing with no reason in rare cases; keep the sample rather
# than drop it, under AWS's own catch-all value.
MISSING_REASON = "UNKNOWN"


class Outcome(enum.Enum):
    """How the poll of one thing ended."""

    OK = "ok"
    NOT_FOUND = "not_found"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one source learnt about one thing's connectivity, or why it could not."""

    thing_name: str
    outcome: Outcome
    observed_at: float
    connected: bool = False
    timestamp: float | None = None
    reason: str | None = None
    error_code: str | None = None

    @classmethod
    def ok(
        cls,
        thing_name: str,
        observed_at: float,
        *,
        connected: bool,
        timestamp: float | None = None,
        reason: str | None = None,
    ) -> Observation:
        return cls(thing_name, Outcome.OK, observed_at, connected, timestamp, reason)

    @classmethod
    def failed(
        cls, thing_name: str, observed_at: float, error_code: str, *, not_found: bool = False
    ) -> Observation:
        outcome = Outcome.NOT_FOUND if not_found else Outcome.ERROR
        return cls(thing_name, outcome, observed_at, error_code=error_code)


@dataclass(frozen=True, slots=True)
class ThingState:
    """What the exporter believes about one thing."""

    connected: bool = False
    timestamp: float | None = None
    reason: str | None = None
    disconnects: Mapping[str, int] = field(default_factory=dict)
    last_success_at: float | None = None
    # None when the last poll succeeded; otherwise the error code that made it fail (never
    # None after a failure, so this alone tells a failed poll from a successful one; a
    # missing thing reads as ResourceNotFoundException).
    last_error: str | None = None

    @property
    def known(self) -> bool:
        """False until the first successful poll: before that nothing is known, not "disconnected".

        Derived, not stored: a successful poll is exactly what sets last_success_at, so a
        separate flag could only ever agree with it or contradict it.
        """
        return self.last_success_at is not None


def counted_reason(previous: ThingState, observation: Observation) -> str | None:
    """The disconnect reason this observation adds to the counters, or None.

    Rules (docs/metrics.md tells operators the same):
    - nothing is counted on first sight, since the thing's past is unknown;
    - an observation without a timestamp (never connected, or the index has dropped it)
      dates no event, so it never counts;
    - connected -> disconnected, or a newer timestamp while disconnected, counts the reason;
    - a newer timestamp while still connected is a flap polling could not see;
    - a failed poll never counts.
    """
    if observation.outcome is not Outcome.OK or not previous.known:
        return None
    if observation.timestamp is None:
        # Never connected (or deleted and recreated): there is no disconnect event to count.
        return None
    newer = previous.timestamp is None or observation.timestamp > previous.timestamp
    if not observation.connected:
        if previous.connected or newer:
            return observation.reason or MISSING_REASON
        return None
    if previous.connected and newer and previous.timestamp is not None:
        return UNOBSERVED_FLAP
    return None


def transition(
    previous: ThingState | None, observation: Observation
) -> tuple[ThingState, str | None]:
    """Apply one observation: the thing's next state and the reason counted, if any."""
    state = previous if previous is not None else ThingState()
    if observation.outcome is not Outcome.OK:
        # An error or a missing thing says nothing about connectivity: keep what we knew.
        return replace(state, last_error=observation.error_code or "Unknown"), None
    if state.known and _says_less(state, observation):
        # Older than what we hold (a lagging index), or the same state with its details
        # dropped (the index forgets the timestamp and reason of a thing disconnected for
        # about an hour): the thing was seen, nothing changed. Taking the older answer
        # would make the next fresh one look "newer" and count the same event twice.
        return replace(state, last_success_at=observation.observed_at, last_error=None), None
    reason = counted_reason(state, observation)
    disconnects: Mapping[str, int] = state.disconnects
    if reason is not None:
        updated = dict(disconnects)
        updated[reason] = updated.get(reason, 0) + 1
        disconnects = updated
    return ThingState(
        connected=observation.connected,
        timestamp=observation.timestamp,
        reason=None if observation.connected else observation.reason,
        disconnects=disconnects,
        last_success_at=observation.observed_at,
        last_error=None,
    ), reason


def _says_less(state: ThingState, observation: Observation) -> bool:
    if observation.timestamp is None:
        return state.timestamp is not None and observation.connected == state.connected
    return state.timestamp is not None and observation.timestamp < state.timestamp


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What one batch of observations did to the fleet."""

    observed: int = 0
    succeeded: int = 0
    not_found: int = 0
    failed: int = 0
    counted: Mapping[str, int] = field(default_factory=dict)
    error_codes: Mapping[str, int] = field(default_factory=dict)
    # Things AWS says do not exist, so the app can report the set when it changes.
    not_found_names: frozenset[str] = frozenset()
    # Observations of things that no source targets (any more), left out.
    ignored: int = 0

    def __add__(self, other: BatchSummary) -> BatchSummary:
        """Both batches' effects, as if they had been one (a pass is a sum of batches)."""
        return BatchSummary(
            observed=self.observed + other.observed,
            succeeded=self.succeeded + other.succeeded,
            not_found=len(self.not_found_names | other.not_found_names),
            failed=self.failed + other.failed,
            counted=dict(Counter(self.counted) + Counter(other.counted)),
            error_codes=dict(Counter(self.error_codes) + Counter(other.error_codes)),
            not_found_names=self.not_found_names | other.not_found_names,
            ignored=self.ignored + other.ignored,
        )


class FleetState:
    """The state of every targeted thing plus the fleet-wide disconnect counters.

    Not thread-safe on purpose: the composition root serialises access with one lock, so
    this stays plain data plus rules.
    """

    def __init__(self, known_reasons: Iterable[str] = ()) -> None:
        self.things: dict[str, ThingState] = {}
        # Every known reason starts at 0 so increase() sees the first disconnect after start.
        self.fleet_disconnects: Counter[str] = Counter(dict.fromkeys(known_reasons, 0))
        self.fleet_disconnects.setdefault(UNOBSERVED_FLAP, 0)

    def apply(
        self,
        observations: Iterable[Observation],
        targeted: Callable[[str], bool] = lambda name: True,
    ) -> BatchSummary:
        """Apply a batch; an observation of a thing no source targets is ignored."""
        counted: Counter[str] = Counter()
        error_codes: Counter[str] = Counter()
        observed = succeeded = ignored = 0
        not_found: set[str] = set()
        things = self.things
        for observation in observations:
            name = observation.thing_name
            if not targeted(name):
                ignored += 1
                continue
            observed += 1
            new_state, reason = transition(things.get(name), observation)
            things[name] = new_state
            if observation.outcome is Outcome.OK:
                succeeded += 1
            else:
                if observation.outcome is Outcome.NOT_FOUND:
                    not_found.add(name)
                error_codes[observation.error_code or "Unknown"] += 1
            if reason is not None:
                counted[reason] += 1
                self.fleet_disconnects[reason] += 1
        return BatchSummary(
            observed=observed,
            succeeded=succeeded,
            not_found=len(not_found),
            failed=observed - succeeded,
            counted=dict(counted),
            error_codes=dict(error_codes),
            not_found_names=frozenset(not_found),
            ignored=ignored,
        )

    def forget(self, thing_names: Iterable[str]) -> None:
        """Drop things no source targets any more: their series disappear."""
        for name in thing_names:
            self.things.pop(name, None)


def is_fresh(state: ThingState, now: float, staleness: float) -> bool:
    """Whether the thing's connectivity is recent enough to be shown as current."""
    return state.last_success_at is not None and now - state.last_success_at <= staleness
