"""The layers are enforced: each import-linter contract holds, and fails when broken on purpose.

Each case copies the two packages and the contracts into a temporary directory, adds one
import that the design forbids, and runs `lint-imports` on the copy for that contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# contract id -> (file in the copy, the import that breaks it, words the report must show)
BREAKS = {
    "layers": (
        "exporter/fleet/targets.py",
        "from exporter.sources import base",
        "exporter.fleet.targets -> exporter.sources.base",
    ),
    "core": (
        "exporter/fleet/connectivity.py",
        "import time",
        "exporter.fleet.connectivity -> time",
    ),
    "web": ("exporter/web/wire.py", "import boto3", "exporter.web.wire -> boto3"),
    "concrete-sources": (
        "exporter/app.py",
        "from exporter.sources.live import LivePoller",
        "exporter.app -> exporter.sources.live",
    ),
    "simulator-stands-alone": (
        "iot_simulator/clock.py",
        "import exporter.names",
        "iot_simulator.clock -> exporter.names",
    ),
    "simulator-only-in-demo": (
        "exporter/cli.py",
        "import iot_simulator",
        "exporter.cli -> iot_simulator",
    ),
}


def copy_tree(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("exporter", "iot_simulator"):
        shutil.copytree(REPO_ROOT / package, target / package, ignore=ignore)
    shutil.copy(REPO_ROOT / ".importlinter", target / ".importlinter")
    return target


def lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *selected],
        cwd=tree,
        # The copy, not the installed project, is what the contracts analyse.
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_contract_holds_on_the_code_as_it_is(tmp_path: Path) -> None:
    result = lint_imports(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(BREAKS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_a_contract_broken_on_purpose_fails(tmp_path: Path, contract: str) -> None:
    tree = copy_tree(tmp_path)
    path, line, shown = BREAKS[contract]
    module = tree / path
    module.write_text(module.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = lint_imports(tree, contract)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert shown in result.stdout
