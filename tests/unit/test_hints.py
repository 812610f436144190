"""One-line fixes: logged once per episode, whichever source meets the cause."""

from __future__ import annotations

import logging

import pytest

from exporter.aws.hints import Hints, cause


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("IndexNotReadyException", "IndexNotReadyException"),
        ("ExpiredTokenException", "ExpiredToken"),
        ("RequestExpired", "ExpiredToken"),
        ("InvalidClientTokenId", "InvalidCredentials"),
        ("NoCredentials", "NoCredentials"),
        ("EndpointNotResolved", "EndpointNotResolved"),
        ("ThrottlingException", None),
        ("Timeout", None),
    ],
)
def test_cause(code: str, hint: str | None) -> None:
    assert cause(code) == hint


def test_a_hint_is_logged_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    hints = Hints()
    denied = [("SearchIndex", "AccessDeniedException")]
    with caplog.at_level(logging.ERROR, logger="exporter.hints"):
        hints.observe("a", denied, succeeded=False, region="eu-west-1")
        hints.observe("b", denied, succeeded=False, region="eu-west-1")
        hints.observe("a", denied, succeeded=False, region="eu-west-1")
        # Another source's success does not end a's episode.
        hints.observe("c", [], succeeded=True, region="eu-west-1")
        hints.observe("a", denied, succeeded=False, region="eu-west-1")
    assert len(caplog.records) == 1
    assert "iot:SearchIndex in eu-west-1" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="exporter.hints"):
        hints.observe("a", [], succeeded=True, region="eu-west-1")
        hints.observe("b", [], succeeded=True, region="eu-west-1")
        hints.observe("b", denied, succeeded=False, region="eu-west-1")  # a new episode
    assert len(caplog.records) == 1


def test_no_credentials_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="exporter.hints"):
        Hints().observe(
            "live",
            [("GetThingConnectivityData", "NoCredentials")] * 2,
            succeeded=False,
            region="eu-west-1",
        )
    [record] = caplog.records
    message = record.getMessage()
    assert "AWS_ACCESS_KEY_ID" in message
    assert "--demo" in message


def test_a_source_a_reload_removed_no_longer_holds_its_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hints = Hints()
    denied = [("SearchIndex", "AccessDeniedException")]
    hints.observe("removed", denied, succeeded=False, region="eu-west-1")
    hints.forget("removed")  # it will never pass again to end the episode
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="exporter.hints"):
        hints.observe("b", denied, succeeded=False, region="eu-west-1")
    assert len(caplog.records) == 1
