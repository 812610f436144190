"""The shipped alert rules: promtool accepts them, their unit tests pass, and each is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.markdown import anchors, github_anchor, headings
from tests.support.paths import (
    ALERTS_DOC,
    ALERTS_FILE,
    ALERTS_LONG_TEST_FILE,
    ALERTS_TEST_FILE,
    REPO_ROOT,
    REPO_URL,
)
from tests.support.stack import promtool

# runbook_url is the runbooks page on the repository's default branch, as GitHub shows it.
RUNBOOK_PAGE = f"{REPO_URL}/blob/main/{ALERTS_DOC.relative_to(REPO_ROOT).as_posix()}"
SEVERITIES = {"critical", "warning", "info"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERT_NAMES = [rule["alert"] for rule in alert_rules()]


def all_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(all_rules())} rules found" in result.stdout


def test_every_recording_rule_is_tested_and_named_by_the_convention() -> None:
    """level:metric:operations (Prometheus's naming practice), and a promtool case reads it
    (directly, or through a rule or alert built on it)."""
    tests = ALERTS_TEST_FILE.read_text() + ALERTS_LONG_TEST_FILE.read_text()
    alerts = "\n".join(rule["expr"] for rule in all_rules())
    for rule in all_rules():
        if "record" not in rule:
            continue
        name = rule["record"]
        assert re.fullmatch(r"iot_(segment|thing):[a-z_]+:[a-z0-9_]+", name), name
        assert name in tests or name in alerts, f"{name}: no test reads it"


@pytest.mark.parametrize("tests", [ALERTS_TEST_FILE, ALERTS_LONG_TEST_FILE], ids=lambda p: p.name)
def test_promtool_unit_tests_pass(tests: Path) -> None:
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """Guard against a vacuous test file: a rule file with a broken threshold fails it."""
    broken = ALERTS_FILE.read_text().replace(") > 600\n", ") > 6000\n", 1)
    assert broken != ALERTS_FILE.read_text()
    (tmp_path / "alerts.yaml").write_text(broken)
    (tmp_path / "alerts_test.yaml").write_text(ALERTS_TEST_FILE.read_text())
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert result.returncode != 0
    assert "IoTThingDisconnected" in result.stdout + result.stderr


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_is_tested_firing_and_silent(alertname: str) -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERTS_TEST_FILE.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alertname
    ]
    assert any(case.get("exp_alerts") for case in cases), f"{alertname}: no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{alertname}: no silent case"


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERT_NAMES)
def test_every_alert_is_annotated_and_has_a_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"IoT(Thing|Fleet|Exporter)[A-Za-z]+", name)
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"]
    # A notification's title must not change with each evaluation: values go in the
    # description.
    assert "$value" not in annotations["summary"], name
    assert annotations["description"]
    doc = ALERTS_DOC.read_text(encoding="utf-8")
    assert (2, name) in headings(doc), f"{ALERTS_DOC.name} has no '## {name}' runbook section"
    url = urlsplit(annotations["runbook_url"])
    assert url._replace(fragment="").geturl() == RUNBOOK_PAGE
    # The anchor GitHub gives that heading, and no other section's.
    assert url.fragment == github_anchor(name)
    assert url.fragment in anchors(doc)
