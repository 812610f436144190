"""The shared test helpers work against the real tools, without the exporter."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.exporter_process import parse_logfmt
from tests.support.promstack import (
    Alertmanager,
    Prometheus,
    PromQLError,
    WebhookReceiver,
    http_get,
)

ALWAYS_FIRING = """
groups:
  - name: test
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {severity: test}
        annotations: {summary: "fires at once"}
"""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_prometheus_scrapes_itself_and_answers_queries() -> None:
    with Prometheus(scrape_self=True) as prom:
        up = prom.wait_for('up{job="prometheus"} == 1')
        assert up[0]["metric"]["instance"] == prom.address
        assert float(up[0]["value"][1]) == 1
        assert prom.query("1 + 1")[0]["value"][1] == "2"
        assert "prometheus" in prom.label_values("job")
        with pytest.raises(PromQLError, match="bad_data"):
            prom.query("sum(")
        assert prom.active_targets()[0]["health"] == "up"
        assert prom._proc is not None
        pid = prom._proc.pid
        workdir = prom.workdir
    assert not workdir.exists()
    assert not pid_alive(pid)


@pytest.mark.slow
def test_alert_goes_from_prometheus_through_alertmanager_to_the_webhook(
    webhook: WebhookReceiver, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(ALWAYS_FIRING)
    started = time.monotonic()
    with (
        Alertmanager(webhook.url) as am,
        Prometheus(rule_files=[rules], alertmanager_url=am.url) as prom,
    ):
        alert = webhook.wait_for_alert(lambda a: a["labels"]["alertname"] == "AlwaysFiring")
        assert alert["status"] == "firing"
        assert alert["annotations"]["summary"] == "fires at once"
        assert prom.rule_groups()[0]["rules"][0]["health"] == "ok"
        assert any(a["labels"]["alertname"] == "AlwaysFiring" for a in am.alerts())
    assert time.monotonic() - started < 30


def test_webhook_receiver_records_posts_and_wakes_waiters(webhook: WebhookReceiver) -> None:
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
    request = urllib.request.Request(
        webhook.url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert webhook.wait_for_alert(lambda a: a["labels"]["alertname"] == "X", timeout=5)
    assert webhook.payloads() == [payload]
    with pytest.raises(TimeoutError, match="no matching alert"):
        webhook.wait_for_alert(lambda a: a["labels"]["alertname"] == "Y", timeout=0.2)


def test_http_get_returns_error_statuses(webhook: WebhookReceiver) -> None:
    status, _ = http_get(webhook.url)  # the receiver only accepts POST
    assert status == 501


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "ts=2024-01-01T00:00:00Z level=info msg=listening address=127.0.0.1:9689",
            {
                "ts": "2024-01-01T00:00:00Z",
                "level": "info",
                "msg": "listening",
                "address": "127.0.0.1:9689",
            },
        ),
        (
            'msg="poll failed" error="a \\"quoted\\" word\\n" n=3',
            {"msg": "poll failed", "error": 'a "quoted" word\n', "n": "3"},
        ),
        ("empty= k=v", {"empty": "", "k": "v"}),
        (
            '{"msg": "listening", "address": "127.0.0.1:1", "port": 1}',
            {"msg": "listening", "address": "127.0.0.1:1", "port": "1"},
        ),
    ],
)
def test_parse_logfmt(line: str, expected: dict[str, str]) -> None:
    assert parse_logfmt(line) == expected
