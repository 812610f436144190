"""Writes the fleet's state as Prometheus text exposition (format 0.0.4), directly.

prometheus_client's generate_latest builds a Metric and a Sample object per series: 3 s
for a fleet of 100,000 things. Writing the lines straight from the state takes a
fraction of that. The layout is generate_latest's (HELP and TYPE lines, label names
sorted); timestamps are written as Python's shortest repr, which Prometheus parses alike
and which costs a tenth of Go's exponent form. The golden file and promtool check it.
Pure: the caller passes the state and the time, and holds the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TypeVar

from prometheus_client import utils

from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import FleetState, ThingState, in_trouble, shown_session
from exporter.fleet.problems import ranked
from exporter.fleet.rollups import Rollups, Segment
from exporter.fleet.targets import RegistryInfo, Targets
from exporter.fleet.uptime import SESSION_BUCKETS, SessionDurations

V = TypeVar("V")

# How generate_latest writes a value (Go's formatting: 1.70000003e+09, 1.0), typed.
go_float: Callable[[float], str] = utils.floatToGoString


def escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    """name="value",... in label-name order, as generate_latest writes them."""
    return ",".join(f'{name}="{escape(value)}"' for name, value in sorted(pairs))


def header(name: str, kind: str, text: str) -> str:
    help_text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


@dataclass(frozen=True, slots=True)
class Shape:
    """What shapes the exposition besides the state: labels, staleness, what to show."""

    staleness: float
    # Labels configured for every thing, and per thing (which win over the former).
    static_labels: Mapping[str, str] = field(default_factory=dict)
    thing_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Every configured label name: each iot_thing_connected series carries them all.
    label_names: tuple[str, ...] = ()
    # iot_thing_info's registry labels (thing_type first, then the attributes'), or None
    # when the registry is not read; and those of them also put on iot_thing_connected.
    info_labels: tuple[str, ...] | None = None
    promoted: tuple[str, ...] = ()
    # all: every thing's series; problems: only the things in trouble (or within
    # problems_window of it), at most max_problem_things; none: no per-thing series.
    per_thing: str = "all"
    problems_window: float = 3600.0
    max_problem_things: int = 10_000
    aggregates: bool = False  # the iot_fleet_* families are configured
    session_details: bool = False  # each shown thing's session families
    socket_information: bool = False  # iot_thing_socket_info (poll.socket_information)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendering and when it next needs doing for time alone (a thing going stale)."""

    text: bytes
    stale_at: float | None
    problems: int = 0  # per_thing: problems: the things listed
    left_out: int = 0  # and those in trouble the cap left out
    segments: int = 0  # rollup segments with series of their own
    segments_dropped: int = 0  # and those metrics.max_rollup_segments folded into one
    max_segments: int = 0  # that cap, as the rollups apply it


class Exposition:
    """Renders the fleet; keeps each thing's iot_thing_connected labels between renders."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._connected_labels: dict[str, tuple[RegistryInfo | None, str]] = {}
        self._promote = tuple(
            shape.info_labels.index(label) for label in shape.promoted if shape.info_labels
        )
        self._extra_labels = bool(shape.label_names or shape.promoted)

    def render(
        self,
        targets: Targets,
        fleet: FleetState,
        aggregates: Mapping[str, AggregateCounts],
        now: float,
    ) -> Rendered:
        chunks: list[bytes] = []
        stale_at: float | None = None
        listed = left_out = 0
        if self.shape.per_thing == "all":
            stale_at = self._things(chunks, targets, targets.sorted_names(), fleet.things, now)
        elif self.shape.per_thing == "problems":
            window = self.shape.problems_window
            problems, left_out = ranked(fleet.problems(now, window), self.shape.max_problem_things)
            problems.sort(key=itemgetter(0))
            listed = len(problems)
            names = [name for name, _ in problems]
            stale_at = _earliest(
                self._things(chunks, targets, names, fleet.things, now),
                # A thing out of trouble leaves the page when its window ends, even if
                # nothing else changes.
                *(_leaves(state, window) for _, state in problems),
            )
        rollups = fleet.rollups
        if rollups is not None:
            chunks.append(_segment_things(rollups).encode())
        if rollups is not None and rollups.spec.labels:
            chunks.append(_segment_disconnects(rollups).encode())
        else:
            chunks.append(_fleet_disconnects(fleet).encode())
        chunks.append(_fleet_connect_failures(fleet).encode())
        chunks.append(_session_durations(fleet.session_durations).encode())
        if self.shape.aggregates:
            chunks.append(_aggregates(aggregates).encode())
        shown, dropped, cap = (
            (rollups.shown, rollups.dropped, rollups.spec.max_segments)
            if rollups is not None
            else (0, 0, 0)
        )
        return Rendered(b"".join(chunks), stale_at, listed, left_out, shown, dropped, cap)

    # -- per thing ----------------------------------------------------------------------

    def _things(
        self,
        chunks: list[bytes],
        targets: Targets,
        names: list[str],
        things: Mapping[str, ThingState],
        now: float,
    ) -> float | None:
        """The per-thing families of `names` (in name order), each in name order; return the
        next staleness instant."""
        staleness = self.shape.staleness
        known = [(name, things[name]) for name in names if name in things]
        fresh: list[tuple[str, ThingState]] = []
        stale_at: float | None = None
        for name, state in known:
            last = state.last_success_at
            if last is not None and now - last <= staleness:
                fresh.append((name, state))
                until = last + staleness
                if stale_at is None or until < stale_at:
                    stale_at = until
        chunks.append(self._connected(fresh, targets).encode())
        if self.shape.info_labels is not None:
            chunks.append(self._info(names, targets, self.shape.info_labels).encode())
        chunks.append(_connectivity(fresh).encode())
        if self.shape.session_details:
            chunks.append(_sessions(fresh).encode())
        if self.shape.socket_information:
            chunks.append(_sockets(fresh).encode())
        chunks.append(_counters_and_polls(known).encode())
        return stale_at

    def _connected(self, fresh: list[tuple[str, ThingState]], targets: Targets) -> str:
        out = [
            header(
                "iot_thing_connected",
                "gauge",
                "Whether AWS IoT reports the thing connected (1) or not (0).",
            )
        ]
        label_of = self._labels_of if self._extra_labels else _thing_only
        for name, state in fresh:
            out.append(
                f"iot_thing_connected{{{label_of(name, targets)}}} "
                f"{'1.0' if state.connected else '0.0'}\n"
            )
        return "".join(out)

    def _info(self, names: list[str], targets: Targets, info_labels: tuple[str, ...]) -> str:
        out = [
            header(
                "iot_thing_info",
                "gauge",
                "Registry facts about the thing: its type and the attributes the config names; "
                "join them on with group_left.",
            )
        ]
        # Things share their info objects (a few per type and site), so each one's labels
        # are formatted once: those sorting before thing_name, and those after.
        around: dict[RegistryInfo, tuple[str, str]] = {}
        for name in names:
            info = targets.things[name].info
            if info is None:
                continue
            parts = around.get(info)
            if parts is None:
                parts = around[info] = _around_thing_name(info_labels, info)
            out.append(f'iot_thing_info{{{parts[0]}thing_name="{name}"{parts[1]}}} 1.0\n')
        return "".join(out)

    def _labels_of(self, name: str, targets: Targets) -> str:
        """The thing's iot_thing_connected labels: configured ones, then promoted registry ones."""
        info = targets.things[name].info
        cached = self._connected_labels.get(name)
        if cached is not None and cached[0] is info:
            return cached[1]
        shape = self.shape
        own = shape.thing_labels.get(name, {})
        pairs = [("thing_name", name)]
        pairs.extend(
            (label, own.get(label, shape.static_labels.get(label, "")))
            for label in shape.label_names
        )
        if shape.info_labels is not None:
            values = (info.thing_type, *info.attributes) if info is not None else ()
            pairs.extend(
                (shape.info_labels[index], values[index] if values else "")
                for index in self._promote
            )
        text = labels_text(pairs)
        self._connected_labels[name] = (info, text)
        return text

    def forget(self, names: Iterable[str]) -> None:
        """Drop the cached labels of things that left."""
        for name in names:
            self._connected_labels.pop(name, None)


def _around_thing_name(info_labels: tuple[str, ...], info: RegistryInfo) -> tuple[str, str]:
    """An info series' labels, sorted, split where thing_name goes: ('a="x",', ',z="y"')."""
    pairs = sorted(zip(info_labels, (info.thing_type, *info.attributes), strict=True))
    before = [(k, v) for k, v in pairs if k < "thing_name"]
    after = [(k, v) for k, v in pairs if k > "thing_name"]
    return (
        labels_text(before) + ("," if before else ""),
        ("," if after else "") + labels_text(after),
    )


def _leaves(state: ThingState, window: float) -> float | None:
    """When a listed thing out of trouble leaves the page; None while in trouble."""
    if state.trouble_at is None or in_trouble(state):
        return None
    return state.trouble_at + window


def _earliest(*instants: float | None) -> float | None:
    present = [instant for instant in instants if instant is not None]
    return min(present) if present else None


def _thing_only(name: str, targets: Targets) -> str:
    return f'thing_name="{name}"'


def _by_thing(
    out: list[str],
    metric: str,
    kind: str,
    text: str,
    *,
    values: Iterable[tuple[str, V | None]],
    shown: Callable[[V], str],
) -> None:
    """A family with one series per thing, labelled with thing_name alone: its header, then
    a line for each thing whose value is not None."""
    out.append(header(metric, kind, text))
    out.extend(
        f'{metric}{{thing_name="{name}"}} {shown(value)}\n'
        for name, value in values
        if value is not None
    )


def _whole(seconds: int) -> str:
    return f"{seconds}.0"


def _connectivity(fresh: list[tuple[str, ThingState]]) -> str:
    out: list[str] = []
    _by_thing(
        out,
        "iot_thing_connectivity_timestamp_seconds",
        "gauge",
        "When the thing last connected or disconnected, per AWS IoT, in seconds since the epoch.",
        values=((name, state.timestamp) for name, state in fresh),
        shown=repr,
    )
    out.append(
        header(
            "iot_thing_disconnect_reason_info",
            "gauge",
            "1 while the thing is disconnected, labelled with the reason AWS IoT gives.",
        )
    )
    for name, state in fresh:
        if not state.connected and state.reason is not None:
            out.append(
                f'iot_thing_disconnect_reason_info{{reason="{escape(state.reason)}",'
                f'thing_name="{name}"}} 1.0\n'
            )
    return "".join(out)


_CLEAN_SESSION = {True: "true", False: "false", None: ""}


def _sessions(fresh: list[tuple[str, ThingState]]) -> str:
    connected = [
        (name, session) for name, state in fresh if (session := shown_session(state)) is not None
    ]
    out: list[str] = []
    _by_thing(
        out,
        "iot_thing_keep_alive_seconds",
        "gauge",
        "The keep-alive the thing's client set for its connection; AWS IoT drops a silent "
        "client after 1.5 times this.",
        values=((name, session.keep_alive) for name, session in connected),
        shown=_whole,
    )
    _by_thing(
        out,
        "iot_thing_session_expiry_seconds",
        "gauge",
        "How long AWS IoT keeps the thing's persistent session after it disconnects.",
        values=((name, session.session_expiry) for name, session in connected),
        shown=_whole,
    )
    out.append(
        header(
            "iot_thing_session_info",
            "gauge",
            "1 while the thing is connected, labelled with its connection's client ID and "
            "clean-session flag (empty when AWS IoT did not say).",
        )
    )
    for name, session in connected:
        client = name if session.client_id is None else escape(session.client_id)
        out.append(
            f'iot_thing_session_info{{clean_session="{_CLEAN_SESSION[session.clean_session]}",'
            f'client_id="{client}",thing_name="{name}"}} 1.0\n'
        )
    return "".join(out)


def _sockets(fresh: list[tuple[str, ThingState]]) -> str:
    out = [
        header(
            "iot_thing_socket_info",
            "gauge",
            "1 while the thing is connected, labelled with its connection's socket as AWS IoT "
            "reports it (poll.socket_information; empty where AWS did not say).",
        )
    ]
    for name, state in fresh:
        session = shown_session(state)
        socket = session.socket if session is not None else None
        if socket is None:
            continue
        port = "" if socket.target_port is None else str(socket.target_port)
        out.append(
            f'iot_thing_socket_info{{source_ip="{socket.source_ip or ""}",'
            f'target_ip="{socket.target_ip or ""}",target_port="{port}",thing_name="{name}",'
            f'vpc_endpoint_id="{socket.vpc_endpoint_id or ""}"}} 1.0\n'
        )
    return "".join(out)


def _counters_and_polls(known: list[tuple[str, ThingState]]) -> str:
    out = [
        header(
            "iot_thing_disconnects_total",
            "counter",
            "Disconnects observed by polling, by reason; unobserved_flap counts a "
            "disconnect and reconnect that both fell between two polls.",
        )
    ]
    for name, state in known:
        for reason in sorted(state.disconnects):
            out.append(
                f'iot_thing_disconnects_total{{reason="{escape(reason)}",thing_name="{name}"}} '
                f"{go_float(state.disconnects[reason])}\n"
            )
    _by_thing(
        out,
        "iot_thing_connected_seconds_total",
        "counter",
        "Seconds the thing has been connected since the exporter first saw it, from AWS's "
        "connect and disconnect times; advances at each observation.",
        values=(
            (name, state.connected_seconds if state.last_success_at is not None else None)
            for name, state in known
        ),
        shown=go_float,
    )
    out.append(
        header(
            "iot_thing_connect_failures_total",
            "counter",
            "Connect attempts AWS IoT refused, by failureType (lifecycle events).",
        )
    )
    for name, state in known:
        failures = state.connect_failures
        for kind in sorted(failures):
            out.append(
                f'iot_thing_connect_failures_total{{failure_type="{escape(kind)}",'
                f'thing_name="{name}"}} {go_float(failures[kind])}\n'
            )
    out.append(
        header(
            "iot_thing_poll_success",
            "gauge",
            "Whether the last poll of the thing succeeded (1) or failed (0).",
        )
    )
    for name, state in known:
        if state.last_success_at is None and state.last_error is None:
            continue  # not polled yet (only a refused connect is known of it)
        out.append(
            f'iot_thing_poll_success{{thing_name="{name}"}} '
            f"{'1.0' if state.last_error is None else '0.0'}\n"
        )
    out.append(
        header(
            "iot_thing_poll_error_info",
            "gauge",
            "1 while the last poll of the thing failed, labelled with the error code.",
        )
    )
    for name, state in known:
        if state.last_error is not None:
            out.append(
                f'iot_thing_poll_error_info{{error_code="{escape(state.last_error)}",'
                f'thing_name="{name}"}} 1.0\n'
            )
    _by_thing(
        out,
        "iot_thing_last_successful_poll_timestamp_seconds",
        "gauge",
        "When the thing was last polled successfully, in seconds since the epoch.",
        values=((name, state.last_success_at) for name, state in known),
        shown=repr,
    )
    return "".join(out)


FLEET_DISCONNECTS_HELP = (
    "Disconnects observed across the fleet, by reason (includes things no longer targeted)."
)


def _segment_order(segment: Segment) -> tuple[str, ...]:
    # Kept in the order they appeared (the cap's order); shown sorted, like every family.
    return segment.key


def _segment_things(rollups: Rollups) -> str:
    out = [
        header(
            "iot_things",
            "gauge",
            "Things by whether AWS IoT has them connected, per segment of metrics.rollup_by "
            "(a thing in several thing groups counts in each); things not yet observed are "
            "not counted.",
        )
    ]
    never = [
        header(
            "iot_things_never_connected",
            "gauge",
            "Things AWS IoT has never seen connected (provisioned, not deployed), per segment of"
            ' metrics.rollup_by; iot_things{connected="false"} includes them.',
        )
    ]
    mismatch = [
        header(
            "iot_things_client_id_mismatch",
            "gauge",
            "Connected things whose client ID is not their thing name, per segment of "
            "metrics.rollup_by; AWS IoT maps such a client to its thing only through the "
            "exclusive thing association.",
        )
    ]
    labels = rollups.spec.labels
    for segment in sorted(rollups.segments, key=_segment_order):
        pairs = list(zip(labels, segment.key, strict=True))
        for connected, count in (("false", segment.disconnected), ("true", segment.connected)):
            text = labels_text([*pairs, ("connected", connected)])
            out.append(f"iot_things{{{text}}} {go_float(count)}\n")
        text = labels_text(pairs)
        braced = f"{{{text}}}" if text else ""
        never.append(f"iot_things_never_connected{braced} {go_float(segment.never_connected)}\n")
        mismatch.append(
            f"iot_things_client_id_mismatch{braced} {go_float(segment.client_id_mismatch)}\n"
        )
    return "".join((*out, *never, *mismatch))


def _segment_disconnects(rollups: Rollups) -> str:
    out = [
        header(
            "iot_disconnects_total",
            "counter",
            FLEET_DISCONNECTS_HELP + " Per segment of metrics.rollup_by.",
        )
    ]
    labels = rollups.spec.labels
    for segment in sorted(rollups.segments, key=_segment_order):
        pairs = list(zip(labels, segment.key, strict=True))
        for reason in sorted(segment.disconnects):
            text = labels_text([*pairs, ("reason", reason)])
            out.append(f"iot_disconnects_total{{{text}}} {go_float(segment.disconnects[reason])}\n")
    return "".join(out)


def _fleet_disconnects(fleet: FleetState) -> str:
    out = [header("iot_disconnects_total", "counter", FLEET_DISCONNECTS_HELP)]
    for reason in sorted(fleet.fleet_disconnects):
        out.append(
            f'iot_disconnects_total{{reason="{escape(reason)}"}} '
            f"{go_float(fleet.fleet_disconnects[reason])}\n"
        )
    return "".join(out)


_SESSION_BOUNDS = (*(go_float(bound) for bound in SESSION_BUCKETS), "+Inf")


def _session_durations(durations: SessionDurations) -> str:
    out = [
        header(
            "iot_session_duration_seconds",
            "histogram",
            "How long connections lasted, by the reason AWS IoT gives for their end: AWS's "
            "disconnect time minus its connect time.",
        )
    ]
    for reason in sorted(durations.buckets):
        label = escape(reason)
        total = 0
        for bound, count in zip(_SESSION_BOUNDS, durations.buckets[reason], strict=True):
            total += count
            out.append(
                f'iot_session_duration_seconds_bucket{{le="{bound}",reason="{label}"}} '
                f"{go_float(total)}\n"
            )
        out.append(f'iot_session_duration_seconds_count{{reason="{label}"}} {go_float(total)}\n')
        out.append(
            f'iot_session_duration_seconds_sum{{reason="{label}"}} '
            f"{go_float(durations.sums[reason])}\n"
        )
    return "".join(out)


def _fleet_connect_failures(fleet: FleetState) -> str:
    out = [
        header(
            "iot_connect_failures_total",
            "counter",
            "Connect attempts AWS IoT refused across the fleet, by failureType; known_client is "
            "false for clients that map to no watched thing (lifecycle events).",
        )
    ]
    counts = fleet.fleet_connect_failures
    for kind, known in sorted(counts):
        out.append(
            f'iot_connect_failures_total{{failure_type="{escape(kind)}",'
            f'known_client="{"true" if known else "false"}"}} {go_float(counts[(kind, known)])}\n'
        )
    return "".join(out)


def _aggregates(aggregates: Mapping[str, AggregateCounts]) -> str:
    things = [
        header(
            "iot_fleet_things",
            "gauge",
            "Things matching an aggregate query, by whether the fleet index has them connected "
            "(GetStatistics).",
        )
    ]
    reasons = [
        header(
            "iot_fleet_disconnected_things",
            "gauge",
            "Disconnected things matching an aggregate query, by AWS's reason; the index drops "
            "the reason about an hour after a disconnect (GetBucketsAggregation).",
        )
    ]
    by = [
        header(
            "iot_fleet_connected_things",
            "gauge",
            "Connected things matching an aggregate query, by the value of a field "
            "(GetBucketsAggregation).",
        )
    ]
    for name in sorted(aggregates):
        counts = aggregates[name]
        query = escape(name)
        for connected, count in (("false", counts.disconnected), ("true", counts.connected)):
            things.append(
                f'iot_fleet_things{{connected="{connected}",query="{query}"}} {go_float(count)}\n'
            )
        for reason in sorted(counts.disconnected_by_reason):
            reasons.append(
                f'iot_fleet_disconnected_things{{query="{query}",reason="{escape(reason)}"}} '
                f"{go_float(counts.disconnected_by_reason[reason])}\n"
            )
        for field_name in sorted(counts.connected_by):
            buckets = counts.connected_by[field_name]
            for value in sorted(buckets):
                by.append(
                    f'iot_fleet_connected_things{{field="{escape(field_name)}",query="{query}",'
                    f'value="{escape(value)}"}} {go_float(buckets[value])}\n'
                )
    return "".join((*things, *reasons, *by))
