"""The simulated fleet: registry, each thing's seeded connectivity process, and the ground truth."""

from __future__ import annotations

import bisect
import gc
import heapq
import math
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from iot_simulator.clock import Clock
from iot_simulator.config import SimulatorConfig

THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# MQTT client IDs: AWS IoT accepts up to 128 bytes of UTF-8.
MAX_CLIENT_ID_BYTES = 128
DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
# Things per lock hold when the index scans the fleet (see Fleet.snapshots).
_SNAPSHOT_BATCH = 64
# Things per lock hold in Fleet.catch_up.
_CATCH_UP_BATCH = 1024
# After a DUPLICATE_CLIENTID disconnect the other client is already connected: the thing is
# back within a few milliseconds, which is why polling can never see it offline.
_DUPLICATE_GAP_MS = (0, 20)
# Live random generators kept (see Fleet._rng). A generator holds 2.5 KB of state: one per
# thing would cost 2.5 GB at 1,000,000 things; the rest are rebuilt when needed.
_RNG_CACHE = 4096
_KEEP_ALIVES = (30, 60, 300, 1200)
# next_ms of a thing the fleet started with whose start is not drawn yet (see Fleet._birth).
_UNBORN = -(1 << 62)
# How a thing starts (_Thing.start).
_STEADY, _DISCONNECTED, _NEVER, _CREATED = "steady", "disconnected", "never", "created"

Kind = Literal["connect", "disconnect"]


@dataclass(frozen=True, slots=True)
class Event:
    """One connect or disconnect the simulator generated: the ground truth."""

    thing_name: str
    time: float  # epoch seconds, millisecond precision, equal to AWS's timestamp / 1000
    kind: Kind
    reason: str | None  # the disconnect reason; None for a connect
    # The connection's client ID when it is not the thing's name.
    client_id: str | None = None
    # The client holds the exclusive thing association: AWS ties it to its thing whatever
    # its client ID, and its lifecycle events carry thingName.
    exclusive: bool = False


@dataclass(frozen=True)
class FailedConnect:
    """A connect attempt AWS refused (published on $aws/events/presence/connect_failed/)."""

    client_id: str
    time: float  # epoch seconds, millisecond precision
    failure_type: str
    thing_name: str | None = None  # set when the client holds the exclusive association


class ThingConnectivity(NamedTuple):
    """What GetThingConnectivityData reports about a thing (a tuple: it unpacks and compares)."""

    connected: bool
    timestamp_ms: int | None
    reason: str | None


NEVER_CONNECTED = ThingConnectivity(False, None, None)


class RegistryEntry(Protocol):
    """The fields of a thing's registry entry that no time or event changes."""

    @property
    def name(self) -> str: ...
    @property
    def thing_id(self) -> str: ...
    @property
    def type_name(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


class ThingSnapshot(NamedTuple):
    """A thing as the fleet index sees it at one instant (a tuple: cheap at 100,000 things).

    ``connected``, ``timestamp_ms`` and ``reason`` are AWS's view (see Fleet.set_client_id);
    ``groups`` are the memberships of that instant; the rest is the registry entry now.
    """

    name: str
    thing_id: str
    type_name: str | None
    groups: tuple[str, ...]
    attributes: Mapping[str, str]
    version: int
    connected: bool
    timestamp_ms: int | None
    reason: str | None
    keep_alive: int
    clean_session: bool
    created_ms: int | None  # None: part of the fleet from the start
    client_id: str  # of the visible connection (see Fleet.set_client_id)


class Process(NamedTuple):
    """A thing's random process now (see Fleet.set_process)."""

    churn: bool
    mean_session_seconds: float
    mean_offline_seconds: float


@dataclass(frozen=True)
class Session:
    """The MQTT session of a connected thing (GetThingConnectivityData's session fields)."""

    client_id: str
    keep_alive: int
    clean_session: bool
    session_expiry: int
    source_ip: str
    source_port: int


@dataclass(frozen=True)
class ThingRecord:
    """A thing's registry entry plus its connectivity at one instant."""

    name: str
    thing_id: str
    arn: str
    type_name: str | None
    groups: tuple[str, ...]
    attributes: Mapping[str, str]
    version: int
    connectivity: ThingConnectivity
    session: Session | None


@dataclass(frozen=True)
class Group:
    """A thing group; ``parent`` is None for a top-level group."""

    name: str
    arn: str
    parent: str | None
    group_id: str = ""
    created: float = 0.0  # epoch seconds


class UnknownThingError(KeyError):
    """No thing of that name exists (now)."""


class UnknownGroupError(KeyError):
    """No thing group of that name exists."""


@dataclass(slots=True, eq=False)
class _Thing:
    # Slots and no per-thing generator: a fleet of 1,000,000 fits in about a gigabyte.
    name: str
    thing_id: str
    type_name: str | None
    groups: tuple[str, ...]
    # Never changed in place (the things a fleet starts with share equal dicts).
    attributes: dict[str, str]
    # The thing's random stream is Random(f"{seed}:thing:{name}:{generation}") after
    # ``words`` 32-bit words have been drawn (see Fleet._rng).
    generation: int
    churn: bool
    mean_session: float
    mean_offline: float
    duplicate: bool
    keep_alive: int
    clean_session: bool
    client_id: str  # the client ID of the device's next connection
    exclusive: bool = False  # its next connection holds the exclusive thing association
    start: str = _CREATED  # how it starts: _STEADY, _DISCONNECTED, _NEVER or _CREATED
    words: int = 0
    rng: random.Random | None = None  # live while in Fleet._live
    created_ms: int | None = None  # None: part of the fleet from the start
    version: int = 1
    connected: bool = False
    timestamp_ms: int | None = None
    reason: str | None = None
    source_port: int = 0
    next_ms: int | None = None
    # The client ID of the current (or last) connection; a disconnect ends that connection.
    session_client: str | None = None
    session_exclusive: bool = False
    events: list[Event] = field(default_factory=list)
    event_ms: list[int] = field(default_factory=list)
    # AWS's view: the connects and disconnects of the client ID equal to the thing's name.
    # None while every connection used that client ID (then it is events/event_ms itself),
    # so the common case costs no second history.
    visible_events: list[Event] | None = None
    visible_ms: list[int] | None = None
    # Membership changes at run time, (from_ms, groups) in time order; before the first,
    # the thing was in initial_groups. None until the first change.
    initial_groups: tuple[str, ...] = ()
    group_changes: list[tuple[int, tuple[str, ...]]] | None = None


def session_expiry(clean_session: bool) -> int:
    """A persistent session outlives its connection by an hour; a clean one not at all."""
    return 0 if clean_session else 3600


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000.0)


class Fleet:
    """The things, groups and types of one simulated account, and how each thing connects.

    Each thing has its own random stream seeded from (seed, name), and its history is
    generated lazily up to the clock's present whenever it is looked at; so is the start
    of a thing the fleet began with (drawn as of the fleet's creation). So the history at
    simulated time t depends only on the seed and on explicit actions, never on who asked
    when. All methods are thread-safe.
    """

    def __init__(self, config: SimulatorConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        weights = config.effective_reason_weights()
        self._reasons = list(weights)
        self._cum_weights = list(_accumulate(weights.values()))
        self._things: dict[str, _Thing] = {}
        self._failed_connects: list[FailedConnect] = []
        self._sorted_names: list[str] | None = None
        self._retired: list[list[Event]] = []
        # Names deleted -> the generation of the next thing of that name.
        self._generation: dict[str, int] = {}
        self._live: list[_Thing] = []  # the things whose generator is kept
        self._mass_outages = 0
        self._groups: dict[str, Group] = {}
        self._started_ms = _ms(clock.now())
        self._build_groups()
        self._build_things()

    # ----- construction -------------------------------------------------------------------

    def _build_groups(self) -> None:
        for i in range(1, self._config.top_groups + 1):
            top = f"group-{i}"
            self._add_group(top, None)
            for j in range(1, self._config.subgroups_per_group + 1):
                self._add_group(f"{top}-{j}", top)

    def _add_group(self, name: str, parent: str | None) -> None:
        rng = random.Random(f"{self._config.seed}:group:{name}")
        self._groups[name] = Group(
            name=name,
            arn=self._arn(f"thinggroup/{name}"),
            parent=parent,
            group_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            created=math.floor(self._clock.now() * 1000.0) / 1000.0,
        )

    def _build_things(self) -> None:
        # A fleet's construction makes millions of objects that all live on: the cyclic
        # collector would walk them again and again (half the time at 100,000 things).
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._build_things_now()
        finally:
            if enabled:
                gc.enable()

    def _build_things_now(self) -> None:
        config = self._config
        names = [f"{config.thing_name_prefix}{i:05d}" for i in range(1, config.things + 1)]
        picker = random.Random(f"{config.seed}:roles")
        order = list(names)
        picker.shuffle(order)
        never = set(order[: round(config.never_connected_fraction * len(names))])
        rest = [n for n in order if n not in never]
        # The shares take consecutive runs of the shuffled order, so none draws anything and
        # a fleet without them has the history it always had.
        first = config.duplicate_clientid_things
        duplicates = set(rest[:first])
        cut = first + round(config.disconnected_fraction * len(names))
        disconnected = set(rest[first:cut])
        flapping = set(rest[cut : cut + round(config.flapping_fraction * len(names))])
        leaves = [g.name for g in self._groups.values() if not self._children(g.name)]
        # Equal values shared: a tuple and a dict per thing would cost 300 MB at 1,000,000.
        shared_groups: dict[str, tuple[str, ...]] = {leaf: (leaf,) for leaf in leaves}
        shared_attributes: dict[tuple[str, int, int], dict[str, str]] = {}
        things, churn = self._things, config.churn
        mean_session, mean_offline = config.mean_session_seconds, config.mean_offline_seconds
        flapping_session = config.flapping_mean_session_seconds
        flapping_offline = config.flapping_mean_offline_seconds
        for index, name in enumerate(names):
            groups = shared_groups[leaves[index % len(leaves)]] if leaves else ()
            thing_type = (
                config.thing_types[index % len(config.thing_types)] if config.thing_types else None
            )
            site = groups[0] if groups else "none"
            key = (site, index % 4, index % 3)
            attributes = shared_attributes.get(key)
            if attributes is None:
                attributes = shared_attributes[key] = {
                    "site": site,
                    "firmware": f"1.{index % 4}.0",
                    "model": f"m{index % 3}",
                }
            if name in never:
                start = _NEVER
            elif name in disconnected:
                start = _DISCONNECTED
            else:
                start = _STEADY
            flaps = name in flapping
            # As _insert would, without its per-call work: a thing the fleet starts with is
            # drawn when first looked at (see _advance), so a fleet of 1,000,000 is built in
            # seconds and a bench that looks at a part of it pays for that part.
            things[name] = _Thing(
                name=name,
                thing_id="",
                type_name=thing_type,
                groups=groups,
                attributes=attributes,
                generation=0,
                churn=churn and start != _NEVER,
                mean_session=flapping_session if flaps else mean_session,
                mean_offline=flapping_offline if flaps else mean_offline,
                duplicate=name in duplicates,
                keep_alive=0,
                clean_session=False,
                client_id=name,
                start=start,
                next_ms=_UNBORN,
                # An initial disconnected state ends a connection made before the fleet.
                session_client=name,
                initial_groups=groups,
            )
        self._sorted_names = None

    def _insert(
        self,
        name: str,
        *,
        thing_type: str | None,
        groups: tuple[str, ...],
        attributes: dict[str, str],
        never_connected: bool,
        client_id: str,
    ) -> _Thing:
        """A thing created at run time (_build_things_now makes those the fleet starts with)."""
        config = self._config
        thing = _Thing(
            name=name,
            thing_id="",
            type_name=thing_type,
            groups=groups,
            attributes=attributes,
            generation=self._generation.get(name, 0),
            churn=config.churn and not never_connected,
            mean_session=config.mean_session_seconds,
            mean_offline=config.mean_offline_seconds,
            duplicate=False,
            keep_alive=0,
            clean_session=False,
            client_id=client_id,
            session_client=client_id,
            initial_groups=groups,
            start=_CREATED,
        )
        thing.created_ms = _ms(self._clock.now())
        self._birth(thing, thing.created_ms)
        self._things[name] = thing
        self._sorted_names = None
        return thing

    def _birth(self, thing: _Thing, at_ms: int) -> None:
        """Draw the thing's identity and start at ``at_ms``: its stream's first draws."""
        thing.next_ms = None
        thing.thing_id = _uuid4(self._bits(thing, 128))
        thing.keep_alive = _KEEP_ALIVES[self._below(thing, len(_KEEP_ALIVES))]
        thing.clean_session = self._uniform(thing) < 0.5
        if thing.start in (_STEADY, _DISCONNECTED):
            self._initial_state(thing, at_ms, thing.start == _DISCONNECTED)
        elif thing.churn:
            self._schedule(thing, at_ms)

    def _initial_state(self, thing: _Thing, now_ms: int, start_disconnected: bool) -> None:
        """Start in the process's steady state: the current phase began some time ago."""
        session, offline = thing.mean_session, thing.mean_offline
        if not thing.churn or math.isinf(session):
            p_connected = 1.0
        elif math.isinf(offline):
            p_connected = 0.0
        else:
            p_connected = session / (session + offline)
        # Drawn even when the answer is forced, so the rest of the stream stays the same.
        connected = self._uniform(thing) < p_connected and not start_disconnected
        mean = session if connected else offline
        if math.isinf(mean) or not thing.churn:
            mean = 3600.0
        age_ms = self._duration_ms(thing, mean) or 1
        since = now_ms - age_ms
        if connected or thing.duplicate:
            self._apply_connect(thing, since)
        else:
            self._apply_disconnect(thing, since, self._draw_reason(thing))
        if thing.churn:
            self._schedule(thing, now_ms)

    # ----- the random process -------------------------------------------------------------

    def _rng(self, thing: _Thing) -> random.Random:
        """The thing's generator, positioned after the ``thing.words`` words drawn so far.

        A few thousand stay live; another is rebuilt from its seed and skips the words
        already drawn (one C call), which costs microseconds and saves 2.5 KB a thing.
        Every draw goes through the helpers below, which count the words they take.
        """
        rng = thing.rng
        if rng is None:
            rng = random.Random(f"{self._config.seed}:thing:{thing.name}:{thing.generation}")
            if thing.words:
                rng.getrandbits(32 * thing.words)
            if len(self._live) >= _RNG_CACHE:
                for live in self._live:
                    live.rng = None
                self._live.clear()
            self._live.append(thing)
            thing.rng = rng
        return rng

    def _uniform(self, thing: _Thing) -> float:
        """random.Random.random(): two words."""
        value = (thing.rng or self._rng(thing)).random()
        thing.words += 2
        return value

    def _bits(self, thing: _Thing, k: int) -> int:
        """random.Random.getrandbits(k), k >= 1: a word for each 32 bits begun."""
        value = (thing.rng or self._rng(thing)).getrandbits(k)
        thing.words += (k - 1) // 32 + 1
        return value

    def _below(self, thing: _Thing, n: int) -> int:
        """random.Random._randbelow(n), as randint and choice draw: retry until below n."""
        k = n.bit_length()
        r = self._bits(thing, k)
        while r >= n:
            r = self._bits(thing, k)
        return r

    def _duration_ms(self, thing: _Thing, mean_seconds: float) -> int | None:
        """An exponential duration (memoryless, as independent failures are); None if infinite.

        random.Random.expovariate(1 / mean), whose one draw is random().
        """
        if math.isinf(mean_seconds):
            return None
        draw = -math.log(1.0 - self._uniform(thing)) / (1.0 / mean_seconds)
        return max(1, round(draw * 1000.0))

    def _draw_reason(self, thing: _Thing) -> str:
        if thing.duplicate:
            return DUPLICATE_CLIENTID
        pick = self._uniform(thing) * self._cum_weights[-1]
        index = bisect.bisect_right(self._cum_weights, pick)
        return self._reasons[min(index, len(self._reasons) - 1)]

    def _schedule(self, thing: _Thing, from_ms: int) -> None:
        if not thing.churn:
            thing.next_ms = None
            return
        if thing.connected:
            duration = self._duration_ms(thing, thing.mean_session)
        elif thing.reason == DUPLICATE_CLIENTID:
            low, high = _DUPLICATE_GAP_MS
            duration = low + self._below(thing, high - low + 1)
        else:
            duration = self._duration_ms(thing, thing.mean_offline)
        thing.next_ms = None if duration is None else from_ms + duration

    def _advance(self, thing: _Thing, now_ms: int) -> None:
        if thing.next_ms == _UNBORN:
            self._birth(thing, self._started_ms)
        while thing.next_ms is not None and thing.next_ms <= now_ms:
            at = thing.next_ms
            if thing.connected:
                self._apply_disconnect(thing, at, self._draw_reason(thing))
            else:
                self._apply_connect(thing, at)
            self._schedule(thing, at)

    def _apply_connect(self, thing: _Thing, at_ms: int) -> None:
        thing.connected, thing.timestamp_ms, thing.reason = True, at_ms, None
        thing.source_port = 1024 + self._below(thing, 65535 - 1024 + 1)
        thing.session_client, thing.session_exclusive = thing.client_id, thing.exclusive
        self._record(thing, at_ms, "connect", None)

    def _apply_disconnect(self, thing: _Thing, at_ms: int, reason: str) -> None:
        thing.connected, thing.timestamp_ms, thing.reason = False, at_ms, reason
        self._record(thing, at_ms, "disconnect", reason)

    def _record(self, thing: _Thing, at_ms: int, kind: Kind, reason: str | None) -> None:
        own = thing.session_client == thing.name
        client = None if own else thing.session_client
        event = Event(thing.name, at_ms / 1000.0, kind, reason, client, thing.session_exclusive)
        visible = own or thing.session_exclusive
        if not visible and thing.visible_ms is None:
            # The first connection under another client ID: AWS's view parts from here.
            thing.visible_events, thing.visible_ms = list(thing.events), list(thing.event_ms)
        thing.events.append(event)
        thing.event_ms.append(at_ms)
        if visible and thing.visible_ms is not None and thing.visible_events is not None:
            thing.visible_events.append(event)
            thing.visible_ms.append(at_ms)

    # ----- lookups ------------------------------------------------------------------------

    def _get(self, name: str) -> _Thing:
        try:
            thing = self._things[name]
        except KeyError:
            raise UnknownThingError(name) from None
        self._advance(thing, _ms(self._clock.now()))
        return thing

    def _names(self) -> list[str]:
        if self._sorted_names is None:
            self._sorted_names = sorted(self._things)
        return self._sorted_names

    def _children(self, group: str) -> list[str]:
        return [g.name for g in self._groups.values() if g.parent == group]

    def _arn(self, resource: str) -> str:
        return f"arn:aws:iot:{self._config.region}:{self._config.account_id}:{resource}"

    def thing_names(self) -> list[str]:
        """Names of the things that exist now, sorted."""
        with self._lock:
            return list(self._names())

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._things

    def state(self, name: str) -> ThingConnectivity:
        """The thing's connectivity now, as GetThingConnectivityData reports it.

        That is the state of the client whose ID is the thing's name: a thing whose device
        connects with another client ID looks never connected (see set_client_id).
        """
        with self._lock:
            thing = self._get(name)
            return self._connectivity_at(thing, _ms(self._clock.now()))

    def device_state(self, name: str) -> ThingConnectivity:
        """The device's own connectivity now, whatever client ID it connects with."""
        with self._lock:
            thing = self._get(name)
            return ThingConnectivity(thing.connected, thing.timestamp_ms, thing.reason)

    def client_id(self, name: str) -> str:
        """The client ID the thing's device connects with (its name unless set otherwise)."""
        with self._lock:
            return self._get(name).client_id

    def record(
        self, name: str, *, lag_seconds: float = 0.0, at: float | None = None
    ) -> ThingRecord:
        """Registry entry now; connectivity and groups as they were ``lag_seconds`` ago, or
        at the instant ``at`` if given (which must not lie in the future)."""
        with self._lock:
            thing = self._get(name)
            when = self._clock.now() - lag_seconds if at is None else at
            return self._record_of(thing, _ms(when))

    def created_at(self, name: str) -> float | None:
        """When the thing was created; None for the things the fleet started with."""
        with self._lock:
            created = self._get(name).created_ms
            return None if created is None else created / 1000.0

    def _record_of(self, thing: _Thing, at_ms: int) -> ThingRecord:
        # Only a connection whose client ID is the thing's name, or one with the exclusive
        # association, is visible, so a connected view has one of those client IDs.
        connectivity = self._connectivity_at(thing, at_ms)
        session = None
        if connectivity.connected:
            session = Session(
                client_id=visible_client(thing),
                keep_alive=thing.keep_alive,
                clean_session=thing.clean_session,
                session_expiry=session_expiry(thing.clean_session),
                source_ip=f"198.51.100.{1 + int(thing.thing_id[:8], 16) % 250}",
                source_port=thing.source_port,
            )
        return ThingRecord(
            name=thing.name,
            thing_id=thing.thing_id,
            arn=self._arn(f"thing/{thing.name}"),
            type_name=thing.type_name,
            groups=self._groups_at(thing, at_ms),
            attributes=dict(thing.attributes),
            version=thing.version,
            connectivity=connectivity,
            session=session,
        )

    @staticmethod
    def _connectivity_at(thing: _Thing, at_ms: int) -> ThingConnectivity:
        """AWS's view of the thing at ``at_ms``: the last visible connect or disconnect."""
        if thing.visible_ms is None or thing.visible_events is None:
            stamps, events = thing.event_ms, thing.events
        else:
            stamps, events = thing.visible_ms, thing.visible_events
        if not stamps:
            return NEVER_CONNECTED
        index = len(stamps) - 1 if at_ms >= stamps[-1] else bisect.bisect_right(stamps, at_ms) - 1
        if index < 0:
            return NEVER_CONNECTED
        event = events[index]
        return ThingConnectivity(event.kind == "connect", stamps[index], event.reason)

    @staticmethod
    def _groups_at(thing: _Thing, at_ms: int) -> tuple[str, ...]:
        changes = thing.group_changes
        if changes is None or at_ms >= changes[-1][0]:
            return thing.groups
        index = bisect.bisect_right(changes, at_ms, key=lambda change: change[0]) - 1
        return thing.initial_groups if index < 0 else changes[index][1]

    def records(
        self,
        *,
        after: str | None = None,
        where: Callable[[ThingRecord], bool] | None = None,
    ) -> Iterator[ThingRecord]:
        """Records in name order, after the name ``after``, that satisfy ``where``.

        Each record is taken under the lock, one at a time, so a long search does not stop
        other requests from being served.
        """
        now_ms = _ms(self._clock.now())
        for thing in self._walk(after):
            with self._lock:
                if self._things.get(thing.name) is not thing:
                    continue  # deleted (or replaced) since the walk began
                self._advance(thing, now_ms)
                record = self._record_of(thing, now_ms)
            if where is None or where(record):
                yield record

    def _walk(self, after: str | None) -> Iterator[_Thing]:
        """Things in name order after ``after``; the cost of a page is that of the page.

        The sorted name list is replaced, never changed in place, when things come and go,
        so walking the list taken at the start needs no copy of it.
        """
        with self._lock:
            names = self._names()
        start = bisect.bisect_right(names, after) if after is not None else 0
        things = self._things
        for index in range(start, len(names)):
            thing = things.get(names[index])
            if thing is not None:
                yield thing

    def catch_up(self) -> int:
        """Generate every thing's history up to now; return how many things moved.

        What the first scan of the whole fleet would do anyway (the things a fleet starts
        with are drawn when first looked at): a bench calls it before it starts timing.
        The lock is taken a batch at a time, so requests are served meanwhile.
        """
        now_ms = _ms(self._clock.now())
        with self._lock:
            names = self._names()
        things, moved = self._things, 0
        for first in range(0, len(names), _CATCH_UP_BATCH):
            with self._lock:
                for name in names[first : first + _CATCH_UP_BATCH]:
                    thing = things.get(name)
                    if thing is not None and thing.next_ms is not None and thing.next_ms <= now_ms:
                        self._advance(thing, now_ms)
                        moved += 1
        return moved

    def snapshots(
        self,
        at: float,
        *,
        after: str | None = None,
        registered: Callable[[RegistryEntry], bool] | None = None,
    ) -> Iterator[ThingSnapshot]:
        """Every thing in name order after ``after``, as the index saw it at time ``at``;
        with ``registered``, only the things whose registry entry it accepts (tested before
        the snapshot is made, which costs more: a shard's query rejects most things).

        ``at`` may lie in the past (the index lags), never in the future. Things are taken
        under the lock a small batch at a time: few lock round trips for a scan of the whole
        fleet, short holds for the requests served meanwhile, and a search page that stops
        early computes at most one batch more than it needs.
        """
        now_ms, at_ms = _ms(self._clock.now()), _ms(at)
        with self._lock:
            names = self._names()
        start = bisect.bisect_right(names, after) if after is not None else 0
        things = self._things
        for first in range(start, len(names), _SNAPSHOT_BATCH):
            with self._lock:
                batch = [
                    self._snapshot_of(thing, now_ms, at_ms)
                    for name in names[first : first + _SNAPSHOT_BATCH]
                    if (thing := things.get(name)) is not None
                    and (registered is None or registered(self._caught_up(thing, now_ms)))
                ]
            yield from batch

    def _caught_up(self, thing: _Thing, now_ms: int) -> _Thing:
        # A thing draws its ID at birth, so its entry is tested only once it is born.
        if thing.next_ms is not None and thing.next_ms <= now_ms:
            self._advance(thing, now_ms)
        return thing

    def _snapshot_of(self, thing: _Thing, now_ms: int, at_ms: int) -> ThingSnapshot:
        # The common cases inline: nothing to catch up, no foreign client ID, no membership
        # change, and an instant after the last event. A scan of 100,000 things feels each call.
        if thing.next_ms is not None and thing.next_ms <= now_ms:
            self._advance(thing, now_ms)
        stamps = thing.event_ms
        if thing.visible_ms is None and (not stamps or at_ms >= stamps[-1]):
            connected, stamp, reason = thing.connected, thing.timestamp_ms, thing.reason
        else:
            connected, stamp, reason = self._connectivity_at(thing, at_ms)
        groups = thing.groups if thing.group_changes is None else self._groups_at(thing, at_ms)
        return ThingSnapshot(
            thing.name,
            thing.thing_id,
            thing.type_name,
            groups,
            thing.attributes,
            thing.version,
            connected,
            stamp,
            reason,
            thing.keep_alive,
            thing.clean_session,
            thing.created_ms,
            visible_client(thing),
        )

    # ----- groups -------------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """All thing groups, sorted by name."""
        with self._lock:
            return sorted(self._groups.values(), key=lambda g: g.name)

    def group(self, name: str) -> Group | None:
        with self._lock:
            return self._groups.get(name)

    def ancestors(self, name: str) -> list[Group]:
        """The group's parent, its parent, and so on, from the root down to the parent."""
        with self._lock:
            chain: list[Group] = []
            parent = self._groups[name].parent
            while parent is not None:
                chain.append(self._groups[parent])
                parent = self._groups[parent].parent
            return chain[::-1]

    def descendants(self, name: str) -> list[str]:
        """The group's children, their children, and so on (not the group itself)."""
        with self._lock:
            found: list[str] = []
            frontier = [name]
            while frontier:
                children = [c for parent in frontier for c in self._children(parent)]
                found.extend(children)
                frontier = children
            return sorted(found)

    def create_group(self, name: str, parent: str | None = None) -> Group:
        """Add a thing group (under ``parent``, which must exist)."""
        with self._lock:
            if not THING_NAME_RE.fullmatch(name):
                raise ValueError(f"invalid group name {name!r}")
            if parent is not None and parent not in self._groups:
                raise KeyError(parent)
            if name not in self._groups:
                self._add_group(name, parent)
            return self._groups[name]

    def members(self, group: str, *, recursive: bool = False) -> list[str]:
        """Names of the things in ``group`` now (and in its descendants if ``recursive``), sorted.

        The ground truth of membership: ListThingsInThingGroup answers the same at once.
        """
        with self._lock:
            if group not in self._groups:
                raise UnknownGroupError(group)
            wanted = {group, *self.descendants(group)} if recursive else {group}
            return [n for n in self._names() if not wanted.isdisjoint(self._things[n].groups)]

    def add_to_group(self, name: str, group: str) -> bool:
        """Put the thing in a thing group now; False (changing nothing) if it already is."""
        with self._lock:
            thing = self._get(name)
            if group not in self._groups:
                raise UnknownGroupError(group)
            if group in thing.groups:
                return False
            self._set_groups(thing, (*thing.groups, group))
            return True

    def remove_from_group(self, name: str, group: str) -> bool:
        """Take the thing out of a thing group now; False if it was not in it."""
        with self._lock:
            thing = self._get(name)
            if group not in self._groups:
                raise UnknownGroupError(group)
            if group not in thing.groups:
                return False
            self._set_groups(thing, tuple(g for g in thing.groups if g != group))
            return True

    def _set_groups(self, thing: _Thing, groups: tuple[str, ...]) -> None:
        # Kept as a history so the lagging index can see the memberships of its instant.
        now_ms = _ms(self._clock.now())
        changes = thing.group_changes if thing.group_changes is not None else []
        if changes and changes[-1][0] == now_ms:
            changes[-1] = (now_ms, groups)
        else:
            changes.append((now_ms, groups))
        thing.group_changes = changes
        thing.groups = groups

    # ----- explicit actions ---------------------------------------------------------------

    def create_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        groups: Iterable[str] = (),
        attributes: Mapping[str, str] | None = None,
        never_connected: bool = False,
        client_id: str | None = None,
    ) -> ThingConnectivity:
        """Register a new thing. It has never connected; unless told not to, it joins the
        random process and connects after an offline period.

        ``client_id``: the client ID its device connects with (default: the thing's name).
        """
        groups = tuple(groups)
        with self._lock:
            if not THING_NAME_RE.fullmatch(name):
                raise ValueError(f"invalid thing name {name!r}: [a-zA-Z0-9:_-], 1 to 128")
            _check_client_id(client_id)
            if name in self._things:
                raise ValueError(f"thing {name!r} already exists")
            unknown = [g for g in groups if g not in self._groups]
            if unknown:
                raise ValueError(f"unknown thing groups {unknown}")
            thing = self._insert(
                name,
                thing_type=thing_type,
                groups=groups,
                attributes=dict(attributes or {}),
                never_connected=never_connected,
                client_id=client_id or name,
            )
            return ThingConnectivity(thing.connected, thing.timestamp_ms, thing.reason)

    def set_client_id(self, name: str, client_id: str | None, *, exclusive: bool = False) -> None:
        """Make the thing's device connect with ``client_id`` (None: its name) from now on,
        holding the exclusive thing association if ``exclusive``.

        AWS relates connectivity to a thing through a client ID equal to the thing's name,
        or through the exclusive thing association (a certificate attached to this thing
        alone, which ties the client to it whatever its ID): GetThingConnectivityData and
        the fleet index report that client's state, with its client ID, and its lifecycle
        events carry thingName. A device under another client ID without the association
        therefore looks never connected (or, if it once connected under its name, stuck in
        the state that client was left in). Both belong to a connection, so the change
        shows from the device's next connect; call connect() to make it reconnect now.
        """
        _check_client_id(client_id)
        with self._lock:
            thing = self._get(name)
            thing.client_id, thing.exclusive = client_id or name, exclusive

    def delete_thing(self, name: str) -> None:
        """Remove a thing; its past stays in the ground truth."""
        with self._lock:
            thing = self._get(name)
            del self._things[name]
            self._sorted_names = None
            thing.rng = None  # (a deleted thing draws no more)
            self._generation[name] = thing.generation + 1
            self._retired.append(thing.events)

    def disconnect(self, name: str, reason: str = "CONNECTION_LOST") -> bool:
        """Disconnect a connected thing now with ``reason`` (any string: AWS adds reasons).

        Returns False, changing nothing, if the thing was not connected.
        """
        if not reason:
            raise ValueError("a disconnect needs a reason")
        with self._lock:
            thing = self._get(name)
            if not thing.connected:
                return False
            now_ms = _ms(self._clock.now())
            self._apply_disconnect(thing, now_ms, reason)
            self._schedule_after_action(thing, now_ms)
            return True

    def mass_outage(self, fraction: float, reason: str = "CONNECTION_LOST") -> list[str]:
        """Disconnect ``fraction`` of the things connected now, all at this instant, with
        ``reason``; return their names, sorted.

        Which things is drawn from the seed and the number of earlier mass outages. Each
        disconnect is an ordinary one: GetThingConnectivityData shows it at once, the
        index after its lag, the ground truth records it, and the thing reconnects after an
        offline period of its process.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise ValueError(f"fraction must be a number within [0, 1], got {fraction!r}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"reason must be a non-empty string, got {reason!r}")
        with self._lock:
            now_ms = _ms(self._clock.now())
            connected = []
            for name in self._names():
                thing = self._things[name]
                if thing.next_ms is not None and thing.next_ms <= now_ms:
                    self._advance(thing, now_ms)
                if thing.connected:
                    connected.append(thing)
            picker = random.Random(f"{self._config.seed}:mass-outage:{self._mass_outages}")
            self._mass_outages += 1
            chosen = picker.sample(connected, round(fraction * len(connected)))
            chosen.sort(key=lambda thing: thing.name)
            for thing in chosen:
                self._apply_disconnect(thing, now_ms, reason)
                self._schedule_after_action(thing, now_ms)
            return [thing.name for thing in chosen]

    def connect(self, name: str) -> bool:
        """Connect the thing now. If it was connected, a new client with the same client id
        takes over, as in AWS: the old session ends with DUPLICATE_CLIENTID first.

        Returns True when the thing was not connected before.
        """
        with self._lock:
            thing = self._get(name)
            now_ms = _ms(self._clock.now())
            was_connected = thing.connected
            if was_connected:
                self._apply_disconnect(thing, now_ms, DUPLICATE_CLIENTID)
            self._apply_connect(thing, now_ms)
            self._schedule_after_action(thing, now_ms)
            return not was_connected

    def _schedule_after_action(self, thing: _Thing, now_ms: int) -> None:
        if thing.churn:
            self._schedule(thing, now_ms)

    def set_process(
        self,
        name: str,
        *,
        churn: bool | None = None,
        mean_session_seconds: float | None = None,
        mean_offline_seconds: float | None = None,
    ) -> None:
        """Change one thing's random process from now on (e.g. freeze it, or make it flap)."""
        with self._lock:
            thing = self._get(name)
            if churn is not None:
                thing.churn = churn
            if mean_session_seconds is not None:
                thing.mean_session = mean_session_seconds
            if mean_offline_seconds is not None:
                thing.mean_offline = mean_offline_seconds
            self._schedule(thing, _ms(self._clock.now()))

    def process(self, name: str) -> Process:
        """The thing's random process now (a flapping thing has the flapping means)."""
        with self._lock:
            thing = self._get(name)
            return Process(thing.churn, thing.mean_session, thing.mean_offline)

    # ----- ground truth -------------------------------------------------------------------

    def fail_connect(
        self,
        client_id: str,
        failure_type: str = "AUTHORIZATION_FAILURE",
        *,
        thing_name: str | None = None,
    ) -> FailedConnect:
        """A client's connect attempt is refused now (its credentials, say). It changes no
        thing's connectivity; the topic rule publishes it. ``thing_name``: the client holds
        that thing's exclusive association, so AWS names the thing in the event."""
        _check_client_id(client_id)
        with self._lock:
            failure = FailedConnect(
                client_id, _ms(self._clock.now()) / 1000.0, failure_type, thing_name
            )
            self._failed_connects.append(failure)
            return failure

    def failed_connects(self, *, since: int = 0) -> list[FailedConnect]:
        """The refused attempts from the ``since``-th on, in time order."""
        with self._lock:
            return self._failed_connects[since:]

    def ground_truth(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        thing_name: str | None = None,
    ) -> list[Event]:
        """Every connect and disconnect generated so far, in time order.

        Includes each thing's initial state change (before the fleet was created) and the
        past of deleted things. ``since`` is exclusive, ``until`` inclusive.
        """
        with self._lock:
            now_ms = _ms(self._clock.now())
            for thing in self._things.values():
                self._advance(thing, now_ms)
            streams = [list(t.events) for t in self._things.values()]
            streams.extend(list(events) for events in self._retired)
        merged = heapq.merge(*streams, key=lambda e: e.time)
        return [
            e
            for e in merged
            if (thing_name is None or e.thing_name == thing_name)
            and (since is None or e.time > since)
            and (until is None or e.time <= until)
        ]

    @property
    def started_at(self) -> float:
        """Simulated time at which the fleet was created."""
        return self._started_ms / 1000.0


def _uuid4(bits: int) -> str:
    """str(uuid.UUID(int=bits, version=4)) without the object (a third of a thing's cost)."""
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)
    bits = (bits & ~(0xF000 << 64)) | (4 << 76)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def visible_client(thing: _Thing) -> str:
    """The client ID AWS shows for the thing's visible connection."""
    if thing.session_exclusive and thing.session_client is not None:
        return thing.session_client
    return thing.name


def _check_client_id(client_id: str | None) -> None:
    if client_id is None:
        return
    if not client_id or len(client_id.encode()) > MAX_CLIENT_ID_BYTES:
        raise ValueError(f"a client ID has 1 to {MAX_CLIENT_ID_BYTES} bytes, got {client_id!r}")


def _accumulate(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total
