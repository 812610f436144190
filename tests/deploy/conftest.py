"""Shared fixtures for the deployment tests: repository paths and offline Helm rendering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.support.paths import CHART_DIR, REPO_ROOT

RELEASE = "iotx"
NAMESPACE = "monitoring"

Manifest = dict[str, Any]
Renderer = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    return CHART_DIR


@pytest.fixture(scope="session")
def ci_values_files() -> list[Path]:
    files = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
    assert files, "the chart has no ci/*-values.yaml"
    return files


def load_values(path: Path) -> dict[str, Any]:
    """A values file as Helm reads it: an empty file means no overrides."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert loaded is None or isinstance(loaded, dict), f"{path}: not a mapping"
    return loaded or {}


@pytest.fixture(scope="session")
def ci_values(ci_values_files: list[Path]) -> dict[str, dict[str, Any]]:
    """Each ci/*-values.yaml by short name ("default", "all-on", ...)."""
    return {p.name.removesuffix("-values.yaml"): load_values(p) for p in ci_values_files}


@pytest.fixture(scope="session")
def helm() -> Any:
    """The helm-python-sdk module, with Helm's own log lines (symlink notices) silenced.

    A plain import, not importorskip: helm-python-sdk is a dev dependency, and a test
    never skips for a missing tool (it fails, so a broken environment is noticed).
    """
    helm_python.disable_logging()
    return helm_python


@pytest.fixture(scope="session")
def chart(helm: Any) -> Any:
    return helm.Chart.load(str(CHART_DIR))


@pytest.fixture(scope="session")
def render_raw(chart: Any) -> Callable[..., dict[str, str]]:
    """Renders the chart offline: template path -> rendered text."""

    def render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> dict[str, str]:
        rendered: dict[str, str] = chart.render(values or {}, name=name, namespace=NAMESPACE)
        return rendered

    return render


@pytest.fixture(scope="session")
def render(render_raw: Callable[..., dict[str, str]]) -> Renderer:
    """Renders the chart offline into the list of Kubernetes objects it would apply."""

    def objects(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> list[Manifest]:
        found: list[Manifest] = []
        for path, text in sorted(render_raw(values, name=name).items()):
            if not path.endswith((".yaml", ".yml")):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    assert isinstance(doc, dict), f"{path}: a document is not a mapping"
                    found.append(doc)
        return found

    return objects


def only(objects: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    """The one object of this kind (whose name ends with name_suffix)."""
    matches = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(matches) == 1, f"expected one {kind}*{name_suffix}, got {len(matches)}"
    return matches[0]


@pytest.fixture(scope="session")
def find() -> Callable[..., Manifest]:
    """`find(objects, kind, name_suffix="")`: the one matching object."""
    return only
