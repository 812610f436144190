"""Fixtures for the monitoring tests: a webhook receiver Alertmanager delivers to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.promstack import WebhookReceiver


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
