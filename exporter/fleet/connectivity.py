"""Fleet state: what each thing last reported, and the rules that turn observations into counts.

Pure logic: no boto3, no threads, no clock. Sources hand in batches of observations (the
live poller, the fleet-index pager, lifecycle events); the exposition reads the state.
Everything here can be tested in a table. docs/events.md tables the rules of event mode.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from exporter.fleet.sessions import Session, Sessions
from exporter.fleet.uptime import SessionDurations, accrued

if TYPE_CHECKING:
    from exporter.fleet.rollups import Rollups

# A flap that began and ended between two polls leaves only a newer timestamp on a
# still-connected thing. AWS's own enum values are upper case (including UNKNOWN), so a
# lower-case value can never be mistaken for one of them, now or when AWS adds more.
UNOBSERVED_FLAP = "unobserved_flap"

# AWS reports a disconnected thing with no reason in rare cases; keep the sample rather
# than drop it, under AWS's own catch-all value.
MISSING_REASON = "UNKNOWN"
# AWS's reasons are upper-case enum values; one that is not shaped like one is garbage and
# must not become an unbounded label value (it is counted as AWS's own UNKNOWN instead).
REASON_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")

# AWS: lifecycle event timestamps are accurate to about +-2 minutes. Within this window the
# versionNumber, not the timestamp, orders two events of one client ID; and an event this
# close to a change a poll saw is taken to be that change.
EVENT_SKEW_SECONDS = 120.0
# In event mode a poll that sees a change no event has shown yet waits this long (until a
# later poll at least this much later) for the event before counting it as missed.
MISSED_GRACE_SECONDS = 30.0


# AWS's failureType of a connect attempt it refused for the credentials: exported at 0
# from the start, so increase() sees the first.
AUTHORIZATION_FAILURE = "AUTHORIZATION_FAILURE"
# Every thing's failures until its first: one immutable, shared empty mapping.
NO_FAILURES: Mapping[str, int] = MappingProxyType({})


def valid_reason(reason: object) -> str | None:
    """AWS's reason if it is shaped like one of its enum values; None otherwise."""
    return reason if isinstance(reason, str) and REASON_PATTERN.fullmatch(reason) else None


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
    # Set on a lifecycle event: its versionNumber, and whether this delivery is the event's
    # first (the dedupe set's answer; only a first delivery of a disconnect counts).
    event_version: int | None = None
    first_delivery: bool = True
    # The session of a connected thing, as far as the source reported it.
    session: Session | None = None

    @property
    def is_event(self) -> bool:
        return self.event_version is not None

    @classmethod
    def event(
        cls,
        thing_name: str,
        observed_at: float,
        *,
        connected: bool,
        timestamp: float,
        version: int,
        reason: str | None = None,
        first_delivery: bool = True,
        session: Session | None = None,
    ) -> Observation:
        """A lifecycle event for one thing."""
        return cls(
            thing_name,
            Outcome.OK,
            observed_at,
            connected,
            timestamp,
            None if connected else (reason or MISSING_REASON),
            event_version=version,
            first_delivery=first_delivery,
            session=session if connected else None,
        )

    @classmethod
    def ok(
        cls,
        thing_name: str,
        observed_at: float,
        *,
        connected: bool,
        timestamp: float | None = None,
        reason: str | None = None,
        session: Session | None = None,
    ) -> Observation:
        return cls(
            thing_name,
            Outcome.OK,
            observed_at,
            connected,
            timestamp,
            reason,
            session=session if connected else None,
        )

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
    # The versionNumber of the event that set connected/timestamp (None if a poll did).
    version: int | None = None
    # Event mode: a change a poll saw before any event showed it, counted only if no event
    # shows it within MISSED_GRACE_SECONDS: (reason, its timestamp, when the poll saw it).
    pending: tuple[str, float, float] | None = None
    # The last instant the exporter knew the thing in trouble (in_trouble, or a disconnect
    # counted), or saw it come out of trouble; None if never. metrics.per_thing: problems
    # lists a thing until problems_window after this.
    trouble_at: float | None = None
    # The session of the connection shown (while disconnected, of the last one, so that a
    # reconnect under the same client ID keeps its details); None if none was reported.
    session: Session | None = None
    # Connect attempts AWS refused, by failureType (lifecycle events); shared while empty.
    connect_failures: Mapping[str, int] = field(default_factory=lambda: NO_FAILURES)
    # Seconds connected (a counter), counted up to uptime_cursor while connected (see
    # uptime.accrued); the cursor is None while the thing is not connected.
    connected_seconds: float = 0.0
    uptime_cursor: float | None = None

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


@dataclass(frozen=True, slots=True)
class Step:
    """What one observation did to one thing."""

    state: ThingState
    reason: str | None = None  # the disconnect counted, if any
    stale: bool = False  # an event older than the state: counted if new, but not shown
    missed: bool = False  # a change a poll saw and no event showed: events missed it


def transition(
    previous: ThingState | None, observation: Observation
) -> tuple[ThingState, str | None]:
    """Apply one observation: the thing's next state and the reason counted, if any."""
    result = step(previous, observation, events=False)
    return result.state, result.reason


def in_trouble(state: ThingState) -> bool:
    """Disconnected after having connected at least once, or its last observation failed.

    A thing that never connected (no timestamp) is not in trouble: provisioned but
    undeployed things are common, and the rollups count them.
    """
    # last_success_at rather than the `known` property: this runs per thing per render.
    return state.last_error is not None or (
        not state.connected and state.timestamp is not None and state.last_success_at is not None
    )


def step(
    previous: ThingState | None,
    observation: Observation,
    *,
    events: bool,
    sessions: Sessions | None = None,
) -> Step:
    """Apply one observation (see `_step`), and note when the thing was last in trouble.
    `sessions` shares the sessions that are alike among things."""
    result = _step(previous, observation, events=events, sessions=sessions)
    state = result.state
    if (
        result.reason is not None
        or in_trouble(state)
        or (previous is not None and in_trouble(previous))
    ):
        # In trouble now, a disconnect counted, or just out of trouble: the window runs
        # from here.
        return replace(result, state=replace(state, trouble_at=observation.observed_at))
    return result


def _step(
    previous: ThingState | None,
    observation: Observation,
    *,
    events: bool,
    sessions: Sessions | None,
) -> Step:
    """Apply one observation under the polling rules, or event mode's when `events`.

    Event mode (lifecycle events configured): every first delivery of a disconnect event
    counts, in whatever order it comes; an event changes the shown state only if it is
    newer than what is held (`event_is_newer`), whichever source set that. Polls still
    keep the state fresh, but a change a poll sees first is held as `pending`: the event
    that shows it later counts it, and if none does within MISSED_GRACE_SECONDS the next
    poll counts it under the polling rules and reports it as missed.
    """
    state = previous if previous is not None else ThingState()
    if observation.is_event:
        return _event_step(state, observation, sessions)
    missed: str | None = None
    if events and state.pending is not None:
        state, missed = _resolve_pending(state, observation)
    state, reason = _poll_transition(state, observation, sessions)
    if events and reason is not None:
        # Wait for the event that will count it; keep the shown state current meanwhile.
        # (A counted change always has a timestamp: counted_reason needs one.)
        at = observation.timestamp if observation.timestamp is not None else 0.0
        state = replace(state, pending=(reason, at, observation.observed_at))
        reason = None
    counted = missed or reason
    return Step(_counted(state, counted), counted, missed=missed is not None)


def _resolve_pending(state: ThingState, observation: Observation) -> tuple[ThingState, str | None]:
    """Count the pending change as missed once its grace has passed without an event."""
    if state.pending is None:
        return state, None
    reason, _, seen_at = state.pending
    if observation.observed_at - seen_at < MISSED_GRACE_SECONDS:
        return state, None
    return replace(state, pending=None), reason


def _event_step(state: ThingState, event: Observation, sessions: Sessions | None) -> Step:
    reason = None
    if not event.connected and event.first_delivery:
        reason = event.reason or MISSING_REASON
    pending = state.pending
    timestamp = event.timestamp if event.timestamp is not None else 0.0
    if (
        pending is not None
        and event.first_delivery
        and timestamp >= pending[1] - EVENT_SKEW_SECONDS
    ):
        pending = None  # the change the poll saw: this event (or a later one) shows it
    # Counted in the same copy of the state as the rest: an event per copy, not three.
    disconnects = state.disconnects if reason is None else _plus(state.disconnects, reason)
    if not event_is_newer(state, event):
        return Step(replace(state, pending=pending, disconnects=disconnects), reason, stale=True)
    seconds, cursor = _accrued(state, event)
    return Step(
        replace(
            state,
            disconnects=disconnects,
            connected_seconds=seconds,
            uptime_cursor=cursor,
            connected=event.connected,
            timestamp=event.timestamp,
            reason=None if event.connected else event.reason,
            version=event.event_version,
            last_success_at=event.observed_at,
            pending=pending,
            session=(
                state.session
                if not event.connected
                else None
                if event.session is None
                else _shared(sessions, event.session.with_details_of(state.session))
            ),
        ),
        reason,
    )


def event_is_newer(state: ThingState, event: Observation) -> bool:
    """Whether an event is newer than the state held, so that it may replace it.

    Within EVENT_SKEW_SECONDS of an event-set state, versionNumber orders them, then the
    disconnect after the connect of the same connection. versionNumber resets only after
    about an hour disconnected, so inside that window it never has; outside it the
    timestamps are far enough apart to be trusted. A state a poll set (no version) is
    replaced by an event at least as recent: the same change, now with its version.
    """
    if event.timestamp is None or event.event_version is None:
        return False  # Observation.event always sets both; anything else is no event
    if not state.known or state.timestamp is None:
        return True
    if state.version is not None and abs(event.timestamp - state.timestamp) <= EVENT_SKEW_SECONDS:
        ours = (state.version, not state.connected)
        return (event.event_version, not event.connected) > ours
    return (
        event.timestamp >= state.timestamp
        if state.version is None
        else (event.timestamp > state.timestamp)
    )


def _poll_transition(
    state: ThingState, observation: Observation, sessions: Sessions | None
) -> tuple[ThingState, str | None]:
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
    same = state.timestamp == observation.timestamp and state.connected == observation.connected
    seconds, cursor = _accrued(state, observation)
    return ThingState(
        connected=observation.connected,
        timestamp=observation.timestamp,
        reason=None if observation.connected else observation.reason,
        disconnects=state.disconnects,
        last_success_at=observation.observed_at,
        last_error=None,
        # The same change an event showed keeps the event's version, which orders the next.
        version=state.version if same else None,
        pending=state.pending,
        trouble_at=state.trouble_at,
        session=(
            _shared(sessions, observation.session) if observation.connected else state.session
        ),
        connect_failures=state.connect_failures,
        connected_seconds=seconds,
        uptime_cursor=cursor,
    ), reason


def _accrued(state: ThingState, observation: Observation) -> tuple[float, float | None]:
    """The thing's connected seconds once the observation is shown (see uptime.accrued).

    A poll vouches for the thing up to the moment it was made; an event only up to its own
    time, since a batch brings a minute's connects and disconnects at once.
    """
    at = observation.observed_at
    if observation.is_event and observation.timestamp is not None:
        at = min(at, observation.timestamp)
    return accrued(
        state.connected_seconds,
        state.uptime_cursor,
        known=state.known,
        was_at=state.timestamp,
        connected=observation.connected,
        timestamp=observation.timestamp,
        at=at,
    )


def _shared(sessions: Sessions | None, session: Session | None) -> Session | None:
    return session if sessions is None else sessions.shared(session)


def _counted(state: ThingState, reason: str | None) -> ThingState:
    if reason is None:
        return state
    return replace(state, disconnects=_plus(state.disconnects, reason))


def _plus(disconnects: Mapping[str, int], reason: str) -> dict[str, int]:
    counts = dict(disconnects)
    counts[reason] = counts.get(reason, 0) + 1
    return counts


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
    # Event mode: events older than the state they met (counted if new, not shown), and
    # changes a poll saw that no event showed in time (counted by the polling rules).
    stale: int = 0
    missed: int = 0

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
            stale=self.stale + other.stale,
            missed=self.missed + other.missed,
        )


class FleetState:
    """The state of every targeted thing plus the fleet-wide disconnect counters.

    Not thread-safe on purpose: the composition root serialises access with one lock, so
    this stays plain data plus rules.
    """

    def __init__(self, known_reasons: Iterable[str] = (), *, events: bool = False) -> None:
        self.things: dict[str, ThingState] = {}
        # Lifecycle events are configured: polls defer their counts to them (see `step`).
        self.events = events
        # Every known reason starts at 0 so increase() sees the first disconnect after start.
        self.fleet_disconnects: Counter[str] = Counter(dict.fromkeys(known_reasons, 0))
        self.fleet_disconnects.setdefault(UNOBSERVED_FLAP, 0)
        # The things that have been in trouble (a trouble_at), with their state, in no
        # order: per_thing: problems reads these, not the whole fleet. Only `problems`
        # prunes it; in the other modes it holds, at most, every thing ever in trouble.
        self.troubled: dict[str, ThingState] = {}
        # The counts by segment, moved with every change (SharedState sets them up).
        self.rollups: Rollups | None = None
        self.sessions = Sessions()
        self.session_durations = SessionDurations(
            reason for reason in self.fleet_disconnects if reason != UNOBSERVED_FLAP
        )
        # Refused connect attempts by (failureType, whether the client maps to a target).
        self.fleet_connect_failures: Counter[tuple[str, bool]] = Counter(
            {(AUTHORIZATION_FAILURE, True): 0, (AUTHORIZATION_FAILURE, False): 0}
        )

    def apply(
        self,
        observations: Iterable[Observation],
        targeted: Callable[[str], bool] = lambda name: True,
    ) -> BatchSummary:
        """Apply a batch; an observation of a thing no source targets is ignored."""
        counted: Counter[str] = Counter()
        error_codes: Counter[str] = Counter()
        observed = succeeded = ignored = stale = missed = 0
        not_found: set[str] = set()
        things = self.things
        troubled = self.troubled
        events = self.events
        rollups = self.rollups
        sessions = self.sessions
        for observation in observations:
            name = observation.thing_name
            if not targeted(name):
                ignored += 1
                continue
            observed += 1
            prior = things.get(name)
            result = step(prior, observation, events=events, sessions=sessions)
            state = things[name] = result.state
            if state.trouble_at is not None and (
                # New trouble, or an entry to keep current; a thing pruned for good stays out.
                name in troubled or prior is None or state.trouble_at != prior.trouble_at
            ):
                troubled[name] = state
            reason = result.reason
            if rollups is not None and (
                reason is not None
                or prior is None
                or prior.connected is not state.connected
                or prior.last_success_at is None
                or (prior.timestamp is None) is not (state.timestamp is None)
                or (prior.session is not state.session and mismatched(prior) != mismatched(state))
            ):
                rollups.observed(name, prior, state, reason)
            if prior is not None and prior.connected and not state.connected:
                _session_ended(self.session_durations, prior, state)
            stale += result.stale
            missed += result.missed
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
            stale=stale,
            missed=missed,
        )

    def connect_failed(
        self,
        failures: Iterable[tuple[str | None, str]],
        observed_at: float,
        targeted: Callable[[str], bool] = lambda name: True,
    ) -> int:
        """Count refused connect attempts, each (the thing, or None for a client that maps
        to no thing; its failureType); return how many were of targeted things.

        A failure changes nothing about connectivity, but puts the thing in trouble's
        window, so metrics.per_thing: problems lists it.
        """
        counted = 0
        for name, failure_type in failures:
            known = name is not None and targeted(name)
            self.fleet_connect_failures[(failure_type, known)] += 1
            if name is None or not known:
                continue
            counted += 1
            prior = self.things.get(name) or ThingState()
            failed = dict(prior.connect_failures)
            failed[failure_type] = failed.get(failure_type, 0) + 1
            state = self.things[name] = replace(
                prior, connect_failures=failed, trouble_at=observed_at
            )
            self.troubled[name] = state
        return counted

    def forget(self, thing_names: Iterable[str]) -> None:
        """Drop things no source targets any more: their series disappear."""
        for name in thing_names:
            state = self.things.pop(name, None)
            self.troubled.pop(name, None)
            if self.rollups is not None:
                self.rollups.left(name, state)

    def problems(self, now: float, window: float) -> list[tuple[str, ThingState]]:
        """The things in trouble now or within `window` of it, in no order.

        A thing out of trouble for longer than `window` leaves the set for good (until its
        next trouble), so this costs the number of recent problems, not the fleet's size.
        """
        horizon = now - window
        # The window first: a thing in trouble renews trouble_at at every observation, so
        # in a mass outage nearly every entry is decided without in_trouble.
        listed = [
            item
            for item in self.troubled.items()
            if item[1].trouble_at is not None
            and (item[1].trouble_at >= horizon or in_trouble(item[1]))
        ]
        if len(listed) < len(self.troubled):
            kept = {name for name, _ in listed}
            for name in [name for name in self.troubled if name not in kept]:
                del self.troubled[name]
        return listed


def _session_ended(durations: SessionDurations, before: ThingState, after: ThingState) -> None:
    """A shown connection ended: its length from AWS's two times, if both are known."""
    if before.timestamp is None or after.timestamp is None or after.timestamp < before.timestamp:
        return
    durations.observe(after.reason or MISSING_REASON, after.timestamp - before.timestamp)


def mismatched(state: ThingState | None) -> bool:
    """Connected under a client ID other than the thing's name, as far as is known."""
    return (
        state is not None
        and state.connected
        and state.session is not None
        and state.session.mismatched
    )


def shown_session(state: ThingState) -> Session | None:
    """The session /metrics shows: the connection's, while the thing is connected."""
    return state.session if state.connected else None


def is_fresh(state: ThingState, now: float, staleness: float) -> bool:
    """Whether the thing's connectivity is recent enough to be shown as current."""
    return state.last_success_at is not None and now - state.last_success_at <= staleness
