"""Fixtures for the monitoring tests: the shipped rule and dashboard files, and the real stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.promstack import WebhookReceiver

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "monitoring"
ALERTS_FILE = MONITORING / "alerts.yaml"
ALERTS_TEST_FILE = MONITORING / "alerts_test.yaml"
DASHBOARD_FILE = MONITORING / "dashboard.json"
MONITORING_DOC = REPO_ROOT / "docs" / "monitoring.md"


def require_binary(name: str) -> str:
    """Path of a tool the tests need; fail (never skip) with how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run scripts/bootstrap (Debian package)")
    return path


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
