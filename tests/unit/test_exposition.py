"""The exposition the renderer writes: a golden file, promtool, staleness, labels, gzip."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from exporter.exposition.self_metrics import ExporterMetrics
from exporter.exposition.series import Exposition, Shape
from exporter.fleet.aggregates import AggregateCounts
from exporter.fleet.connectivity import FleetState, Observation
from exporter.fleet.rollups import Rollups, RollupSpec
from exporter.fleet.sessions import Session, Socket
from exporter.fleet.targets import STATIC_SOURCE, Found, RegistryInfo, SourceSlot, Targets
from exporter.web.payload import Payload
from tests.support.stack import promtool

GOLDEN = Path(__file__).parent / "golden" / "fleet.prom"
T0 = 1_700_000_000.0


NAMES = ("pump-7", "sensor-0001", "never-1", "gate:2", "ghost")


REASONS = ("AUTH_ERROR", "CONNECTION_LOST", "UNKNOWN")


def sample_fleet(targets: Targets | None = None, rollups: RollupSpec | None = None) -> FleetState:
    """The sample's things, counted by `rollups` (the whole fleet unless it says otherwise)."""
    fleet = FleetState(REASONS)
    fleet.rollups = Rollups(
        rollups or RollupSpec(),
        (targets or sample_targets()).things,
        known_reasons=REASONS,
    )
    fleet.apply(
        [
            Observation.ok(
                "pump-7", T0, connected=True, timestamp=T0 - 50, session=Session(None, 30, True, 0)
            ),
            Observation.ok("sensor-0001", T0, connected=True, timestamp=T0 - 40),
            Observation.ok("never-1", T0, connected=False),
            Observation.ok("gate:2", T0, connected=True, timestamp=T0 - 30),
        ]
    )
    fleet.apply(
        [
            Observation.ok(
                "pump-7", T0 + 60, connected=False, timestamp=T0 + 30, reason="AUTH_ERROR"
            ),
            Observation.ok(
                "sensor-0001",
                T0 + 60,
                connected=True,
                timestamp=T0 + 20,
                # Connected under another client ID (the exclusive thing association).
                session=Session(
                    'sensor-0001 "dev"',
                    1200,
                    None,
                    3600,
                    Socket("198.51.100.7", 50123, "203.0.113.10", 8883, "vpce-0a1b2c3d"),
                ),
            ),
            Observation.failed("gate:2", T0 + 60, "ResourceNotFoundException", not_found=True),
            Observation.failed("ghost", T0 + 60, "ResourceNotFoundException", not_found=True),
        ]
    )
    # A refused attempt of a watched thing, and one of a client that maps to none.
    fleet.connect_failed([("pump-7", "AUTHORIZATION_FAILURE"), (None, "UNKNOWN")], T0 + 60)
    return fleet


def sample_targets(infos: dict[str, RegistryInfo] | None = None) -> Targets:
    targets = Targets([SourceSlot(STATIC_SOURCE, live=True, max_things=None)])
    targets.extend(STATIC_SOURCE, [Found(name, (infos or {}).get(name)) for name in NAMES])
    return targets


SHAPE = Shape(
    staleness=180,
    thing_labels={"pump-7": {"site": "plant-a", "env": "prod"}, "sensor-0001": {"env": "prod"}},
    label_names=("env", "site"),
    session_details=True,
    socket_information=True,
)


def render(
    shape: Shape = SHAPE,
    now: float = T0 + 61,
    targets: Targets | None = None,
    aggregates: dict[str, AggregateCounts] | None = None,
) -> str:
    exposition = Exposition(shape)
    targets = targets or sample_targets()
    rendered = exposition.render(targets, sample_fleet(targets), aggregates or {}, now)
    return rendered.text.decode()


def test_exposition_matches_golden_file() -> None:
    text = render()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_stale_state_is_withdrawn_but_poll_status_and_counters_stay() -> None:
    text = render(now=T0 + 60 + 181)
    assert "iot_thing_connected{" not in text
    assert "iot_thing_connectivity_timestamp_seconds{" not in text
    assert "iot_thing_disconnect_reason_info{" not in text
    assert 'iot_thing_disconnects_total{reason="AUTH_ERROR",thing_name="pump-7"} 1.0' in text
    assert 'iot_thing_poll_success{thing_name="pump-7"} 1.0' in text


def test_missing_thing_is_a_poll_failure_not_a_disconnect() -> None:
    text = render()
    assert 'iot_thing_poll_success{thing_name="ghost"} 0.0' in text
    assert (
        'iot_thing_poll_error_info{error_code="ResourceNotFoundException",thing_name="ghost"} 1.0'
        in text
    )
    assert 'thing_name="ghost"' not in "".join(
        line for line in text.splitlines() if line.startswith("iot_thing_connected")
    )
    # gate:2 went missing after being connected: still shown connected from its last answer.
    assert 'iot_thing_connected{env="",site="",thing_name="gate:2"} 1.0' in text


def test_full_exposition_passes_promtool() -> None:
    registry = CollectorRegistry()
    ExporterMetrics(registry)
    shape = Shape(
        staleness=180,
        label_names=("site",),
        thing_labels={"pump-7": {"site": 'a "quoted\\ site\nname'}},
        info_labels=("thing_type", "fw"),
        promoted=("thing_type",),
        aggregates=True,
    )
    infos = {"pump-7": RegistryInfo("pump", ("1.2",)), "ghost": RegistryInfo("", ("",))}
    fleet = render(shape, targets=sample_targets(infos), aggregates=AGGREGATES)
    body = generate_latest(registry).decode() + fleet
    result = promtool("check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_payload_gzip_round_trips_and_is_deterministic() -> None:
    payload = Payload.of(b"x 1\n" * 1000)
    assert gzip.decompress(payload.gzipped) == payload.plain
    assert Payload.of(payload.plain).gzipped == payload.gzipped
    assert len(payload.gzipped) < len(payload.plain) / 10


def test_live_head_joins_the_cached_payload_as_one_gzip_stream() -> None:
    cached = Payload.of(b"# fleet\nb 1\n" * 100)
    joined = cached.preceded_by(b"# live\na 1\n")
    assert joined.plain == b"# live\na 1\n" + cached.plain
    assert gzip.decompress(joined.gzipped) == joined.plain
    # The cached parts are reused as they are: neither compressed again nor copied.
    assert joined.gzip_parts[1:] == cached.gzip_parts
    assert joined.plain_parts[1] is cached.plain_parts[0]


AGGREGATES = {
    "plant-a": AggregateCounts(
        "plant-a",
        connected=7,
        disconnected=3,
        disconnected_by_reason={"CONNECTION_LOST": 2},
        connected_by={"thingTypeName": {"pump": 5, "gate": 2}},
    )
}


def test_thing_info_carries_registry_labels_and_only_promoted_ones_reach_connected() -> None:
    shape = Shape(
        staleness=180,
        label_names=("env",),
        static_labels={"env": "prod"},
        info_labels=("thing_type", "site"),
        promoted=("site",),
    )
    infos = {"pump-7": RegistryInfo("pump", ("plant-a",)), "sensor-0001": RegistryInfo("", ("",))}
    text = render(shape, targets=sample_targets(infos))
    assert 'iot_thing_info{site="plant-a",thing_name="pump-7",thing_type="pump"} 1.0' in text
    assert 'iot_thing_info{site="",thing_name="sensor-0001",thing_type=""} 1.0' in text
    # No info yet (not looked up): no info series, and empty promoted labels.
    assert 'iot_thing_info{site="",thing_name="gate:2"' not in text
    assert 'iot_thing_connected{env="prod",site="plant-a",thing_name="pump-7"} 0.0' in text
    assert 'iot_thing_connected{env="prod",site="",thing_name="gate:2"} 1.0' in text
    assert "thing_type" not in "".join(
        line for line in text.splitlines() if line.startswith("iot_thing_connected{")
    )


def test_a_changed_registry_info_changes_the_promoted_label() -> None:
    shape = Shape(staleness=180, info_labels=("thing_type",), promoted=("thing_type",))
    targets = sample_targets({"pump-7": RegistryInfo("pump")})
    exposition = Exposition(shape)
    fleet = sample_fleet()
    first = exposition.render(targets, fleet, {}, T0 + 61).text.decode()
    assert 'iot_thing_connected{thing_name="pump-7",thing_type="pump"} 0.0' in first
    targets.extend(STATIC_SOURCE, [Found("pump-7", RegistryInfo("valve"))])
    second = exposition.render(targets, fleet, {}, T0 + 61).text.decode()
    assert 'iot_thing_connected{thing_name="pump-7",thing_type="valve"} 0.0' in second


def test_without_a_registry_section_there_is_no_info_family() -> None:
    assert "iot_thing_info" not in render()


def test_aggregates_families() -> None:
    text = render(Shape(staleness=180, aggregates=True), aggregates=AGGREGATES)
    assert 'iot_fleet_things{connected="true",query="plant-a"} 7.0' in text
    assert 'iot_fleet_things{connected="false",query="plant-a"} 3.0' in text
    assert 'iot_fleet_disconnected_things{query="plant-a",reason="CONNECTION_LOST"} 2.0' in text
    assert (
        'iot_fleet_connected_things{field="thingTypeName",query="plant-a",value="gate"} 2.0' in text
    )
    assert "iot_fleet_things" not in render()  # not configured: no families at all


def test_per_thing_series_can_be_dropped_entirely() -> None:
    text = render(Shape(staleness=180, per_thing="none", aggregates=True), aggregates=AGGREGATES)
    assert "iot_thing_" not in text
    assert 'iot_disconnects_total{reason="AUTH_ERROR"} 1.0' in text
    assert 'iot_fleet_things{connected="true",query="plant-a"} 7.0' in text


def test_render_says_when_the_first_thing_goes_stale() -> None:
    rendered = Exposition(SHAPE).render(sample_targets(), sample_fleet(), {}, T0 + 61)
    # gate:2 and ghost failed at T0+60; never-1's last success was T0, the earliest.
    assert rendered.stale_at == T0 + 180


def test_only_targeted_things_are_shown() -> None:
    targets = sample_targets()
    targets.settle(STATIC_SOURCE, {"pump-7"})
    text = Exposition(SHAPE).render(targets, sample_fleet(), {}, T0 + 61).text.decode()
    assert 'thing_name="sensor-0001"' not in text
    assert 'thing_name="pump-7"' in text


def test_without_rollup_by_iot_things_counts_the_whole_fleet() -> None:
    text = render()
    # pump-7 and never-1 are disconnected (never-1 never connected), sensor-0001 and gate:2
    # connected (gate:2's failed poll keeps what was known); ghost was never known.
    assert 'iot_things{connected="false"} 2.0' in text
    assert 'iot_things{connected="true"} 2.0' in text
    assert 'iot_disconnects_total{reason="AUTH_ERROR"} 1.0' in text


def test_rollup_by_segments_iot_things_and_the_fleet_counter() -> None:
    infos = {
        "pump-7": RegistryInfo("pump", ("north",)),
        "sensor-0001": RegistryInfo("sensor", ("north",)),
        "never-1": RegistryInfo("sensor", ("south",)),
        "gate:2": RegistryInfo("gate", ('so"uth',)),
    }
    targets = sample_targets(infos)
    spec = RollupSpec(labels=("thing_type", "site"), info_labels=("thing_type", "site"))
    fleet = sample_fleet(targets, spec)
    text = Exposition(Shape(staleness=180)).render(targets, fleet, {}, T0 + 61).text.decode()
    assert 'iot_things{connected="false",site="north",thing_type="pump"} 1.0' in text
    assert 'iot_things{connected="true",site="north",thing_type="sensor"} 1.0' in text
    assert 'iot_things{connected="false",site="south",thing_type="sensor"} 1.0' in text
    assert 'iot_things{connected="true",site="so\\"uth",thing_type="gate"} 1.0' in text
    assert 'iot_disconnects_total{reason="AUTH_ERROR",site="north",thing_type="pump"} 1.0' in text
    # Every known reason from 0 in every segment; no unlabelled fleet series beside them.
    assert 'iot_disconnects_total{reason="UNKNOWN",site="south",thing_type="sensor"} 0.0' in text
    assert 'iot_disconnects_total{reason="AUTH_ERROR"}' not in text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
