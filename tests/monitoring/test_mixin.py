"""The monitoring mixin: the committed rule file and dashboard are what it renders, its
sources are formatted, and its _config changes what it renders."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.paths import REPO_ROOT
from tests.support.stack import promtool

MIXIN_DIR = REPO_ROOT / "monitoring" / "mixin"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_mixin", REPO_ROOT / "scripts" / "build_mixin.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


def test_the_committed_files_are_what_the_mixin_renders() -> None:
    for path, text in BUILD.render().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO_ROOT)} is stale: run .venv/bin/python scripts/build_mixin.py"
        )


def test_a_stale_file_is_named(tmp_path: Path) -> None:
    edited = tmp_path / "alerts.yaml"
    edited.write_text("groups: []\n")
    current = tmp_path / "dashboard.json"
    current.write_text("{}\n")
    assert BUILD.stale({edited: "groups: [x]\n", current: "{}\n"}) == [edited]


@pytest.mark.parametrize(
    "source",
    sorted(MIXIN_DIR.rglob("*.*sonnet")),
    ids=lambda p: p.relative_to(MIXIN_DIR).as_posix(),
)
def test_the_sources_are_formatted(source: Path) -> None:
    jsonnetfmt = shutil.which("jsonnetfmt")
    assert jsonnetfmt, "jsonnetfmt is missing: scripts/bootstrap installs Debian's jsonnet"
    result = subprocess.run(
        [jsonnetfmt, "--test", str(source)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{source.name} is not formatted: run jsonnetfmt -i {source}"


def test_a_users_config_shapes_every_rule_and_the_dashboard(tmp_path: Path) -> None:
    """As a user of the mixin would: import it and override _config."""
    mine = tmp_path / "mine.libsonnet"
    mine.write_text(
        f"(import {json.dumps(str(MIXIN_DIR / 'mixin.libsonnet'))}) + {{ _config+:: {{"
        " iotSelector: 'job=\"iot-eu\"', thingOfflineSeconds: 900, thingOfflineFor: '15m',"
        " availabilityTargetPercent: 99.9, dashboardUid: 'iot-eu', dashboardTitle: 'IoT eu' } }\n"
    )
    rendered = BUILD.render(mine)
    rules = rendered[BUILD.RULES_FILE]
    (tmp_path / "rules.yaml").write_text(rules)
    checked = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = yaml.safe_load(rules)["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    # Every iot_ selector carries the release's job, and nothing else is selected.
    for expr in exprs:
        for selector in re.findall(r"\biot_[a-z0-9_:]+(\{[^}]*\})?", expr):
            assert selector.startswith('{job="iot-eu"'), expr
    assert 'job!=""' not in rules
    offline = next(
        r for g in groups for r in g["rules"] if r.get("alert") == "IoTThingDisconnected"
    )
    assert ") > 900" in offline["expr"]
    assert offline["for"] == "15m"
    burn = next(
        r
        for g in groups
        for r in g["rules"]
        if r.get("alert") == "IoTFleetAvailabilityBudgetBurnFast"
    )
    assert "14.4 * 0.001" in burn["expr"]
    assert "99.9% availability objective" in burn["annotations"]["description"]
    dashboard = json.loads(rendered[BUILD.DASHBOARD_FILE])
    assert (dashboard["uid"], dashboard["title"]) == ("iot-eu", "IoT eu")
    jobs = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert jobs["query"]["query"] == 'label_values(iot_exporter_build_info{job="iot-eu"}, job)'
