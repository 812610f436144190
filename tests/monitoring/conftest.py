"""Fixtures for the monitoring tests: the shipped files, and a running fleet stack.

The stack is the real thing end to end: the simulator (in-process) stands in for
AWS IoT, the exporter runs as a subprocess polling it every second, and a real
Prometheus scrapes the exporter every second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.promstack import WebhookReceiver

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "monitoring"
ALERTS_FILE = MONITORING / "alerts.yaml"
ALERTS_TEST_FILE = MONITORING / "alerts_test.yaml"
DASHBOARD_FILE = MONITORING / "dashboard.json"
MONITORING_DOC = REPO_ROOT / "README.md"
CHART_FILES = REPO_ROOT / "helm" / "iot-connectivity-exporter" / "files"


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
