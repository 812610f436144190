"""The exposition the collector renders: a golden file, promtool, staleness, gzip."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import FleetCollector, FleetView, Payload, render_fleet
from exporter.fleet import FleetState, Observation
from exporter.telemetry import ExporterMetrics
from tests.support.stack import promtool

GOLDEN = Path(__file__).parent / "golden" / "fleet.prom"
T0 = 1_700_000_000.0


def sample_fleet() -> FleetState:
    fleet = FleetState(["AUTH_ERROR", "CONNECTION_LOST", "UNKNOWN"])
    fleet.apply(
        [
            Observation.ok("pump-7", T0, connected=True, timestamp=T0 - 50),
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
            Observation.ok("sensor-0001", T0 + 60, connected=True, timestamp=T0 + 20),
            Observation.failed("gate:2", T0 + 60, "ResourceNotFoundException", not_found=True),
            Observation.failed("ghost", T0 + 60, "ResourceNotFoundException", not_found=True),
        ]
    )
    return fleet


def sample_view(now: float = T0 + 61) -> FleetView:
    return FleetView(
        fleet=sample_fleet(),
        staleness=180,
        now=now,
        thing_labels={"pump-7": {"site": "plant-a", "env": "prod"}, "sensor-0001": {"env": "prod"}},
        label_names=("env", "site"),
    )


def render_view(view: FleetView) -> str:
    return render_fleet(view).plain.decode()


def test_exposition_matches_golden_file() -> None:
    text = render_view(sample_view())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_stale_state_is_withdrawn_but_poll_status_and_counters_stay() -> None:
    text = render_view(sample_view(now=T0 + 60 + 181))
    assert "iot_thing_connected{" not in text
    assert "iot_thing_connectivity_timestamp_seconds{" not in text
    assert "iot_thing_disconnect_reason_info{" not in text
    assert 'iot_thing_disconnects_total{reason="AUTH_ERROR",thing_name="pump-7"} 1.0' in text
    assert 'iot_thing_poll_success{thing_name="pump-7"} 1.0' in text


def test_missing_thing_is_a_poll_failure_not_a_disconnect() -> None:
    text = render_view(sample_view())
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
    registry.register(FleetCollector(sample_view()))
    body = generate_latest(registry)
    result = promtool("check", "metrics", stdin=body.decode())
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
