"""End to end: a thing disconnected in the simulator reaches a webhook as an alert.

simulator -> exporter (subprocess, polls every 1 s) -> Prometheus (scrapes and
evaluates the shipped rules every 1 s) -> Alertmanager -> this test's webhook.

The rules Prometheus loads are the shipped alerts.yaml with one change: every
`for:` is set to 0s. The `for:` durations (minutes) exist to ride out blips in
production; waiting them out would make the test take minutes while proving
nothing more. Every expression, label and annotation stays as shipped. The
thresholds inside the expressions need no change: the simulator's clock runs an
hour behind, so AWS's disconnect timestamp says the thing has been offline for
an hour, past IoTThingDisconnected's 10-minute threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.promstack import Alertmanager, WebhookReceiver
from tests.support.stack import FleetStack, fleet_stack, rules_without_for

pytestmark = pytest.mark.slow

TARGET = "thing-00003"


def is_disconnect_alert(alert: dict[str, Any], status: str = "firing") -> bool:
    labels = alert["labels"]
    return bool(
        labels.get("alertname") == "IoTThingDisconnected"
        and labels.get("thing_name") == TARGET
        and alert["status"] == status
    )


@contextmanager
def alerting(webhook: WebhookReceiver, tmp_path: Path) -> Iterator[FleetStack]:
    """Four simulated things, the exporter, Prometheus with the shipped rules (no `for:`),
    and Alertmanager delivering to `webhook`."""
    rules = rules_without_for(tmp_path / "alerts.yaml")
    with (
        Alertmanager(webhook.url) as alertmanager,
        fleet_stack(
            tmp_path, things=4, rule_files=[rules], alertmanager_url=alertmanager.url
        ) as stack,
    ):
        yield stack


def test_disconnected_thing_alert_reaches_the_webhook(
    webhook: WebhookReceiver, tmp_path: Path
) -> None:
    with alerting(webhook, tmp_path) as stack:
        prom = stack.prometheus
        assert all(
            g["rules"] and all(r["health"] == "ok" for r in g["rules"]) for g in prom.rule_groups()
        )
        prom.wait_for(f'iot_thing_connected{{thing_name="{TARGET}"}} == 1')
        assert not [
            a for a in webhook.alerts() if a["labels"]["alertname"] == "IoTThingDisconnected"
        ]

        stack.sim.fleet.disconnect(TARGET, reason="AUTH_ERROR")

        alert = webhook.wait_for_alert(is_disconnect_alert, timeout=60)
        assert alert["labels"]["reason"] == "AUTH_ERROR"
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["env"] == "test"  # the exporter's static labels route alerts
        assert alert["annotations"]["summary"] == f"IoT thing {TARGET} is disconnected (AUTH_ERROR)"
        description = alert["annotations"]["description"]
        assert f"Thing {TARGET} has been disconnected for 1h" in description
        assert "disconnect reason AUTH_ERROR" in description
        assert alert["annotations"]["runbook_url"].endswith("#iotthingdisconnected")
        others = {
            a["labels"].get("thing_name")
            for a in webhook.alerts()
            if a["labels"]["alertname"] == "IoTThingDisconnected"
        }
        assert others == {TARGET}

        # Reconnecting resolves it, and Alertmanager says so.
        stack.sim.fleet.connect(TARGET)
        webhook.wait_for_alert(lambda a: is_disconnect_alert(a, "resolved"), timeout=60)
    assert stack.exporter.returncode == 0, stack.exporter.log_tail()  # SIGTERM: clean exit


BRIEF = "thing-00002"


def test_the_offline_alert_waits_out_its_debounce(webhook: WebhookReceiver, tmp_path: Path) -> None:
    """IoTThingDisconnected measures the outage from AWS's disconnect time: a thing that
    stays down is delivered, one that comes back within the 10 minutes never is."""
    with alerting(webhook, tmp_path) as stack:
        prom = stack.prometheus
        prom.wait_for(f'iot_thing_connected{{thing_name="{BRIEF}"}} == 1')
        stack.sim.fleet.disconnect(TARGET, reason="CONNECTION_LOST")  # an hour ago, to AWS
        # AWS's clock catches up with now: BRIEF's outage starts now, and is short.
        stack.clock.advance(3600)
        stack.sim.fleet.disconnect(BRIEF, reason="CONNECTION_LOST")
        prom.wait_for(f'iot_thing_connected{{thing_name="{BRIEF}"}} == 0')
        webhook.wait_for_alert(is_disconnect_alert, timeout=60)
        # BRIEF has been down for every evaluation since: under the debounce, none fires.
        firing = prom.query('ALERTS{alertname="IoTThingDisconnected", alertstate="firing"}')
        assert {a["metric"]["thing_name"] for a in firing} == {TARGET}
        stack.sim.fleet.connect(BRIEF)
        prom.wait_for(f'iot_thing_connected{{thing_name="{BRIEF}"}} == 1')
        delivered = {
            a["labels"].get("thing_name")
            for a in webhook.alerts()
            if a["labels"]["alertname"] == "IoTThingDisconnected"
        }
        assert delivered == {TARGET}
