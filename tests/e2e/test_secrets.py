"""No error or log line carries a secret: AWS keys, profiles, external IDs, web config values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from iot_simulator import Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.promstack import wait_until
from tests.support.stack import AWS_TEST_ENV, run_cli, write_exporter_config

SECRET = "Sup3rSecretValue"  # every secret below contains it; no output may
NO_ENV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(things=2, seed=5, quotas=False, sts_external_id="the-right-one")
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    return write_exporter_config(
        tmp_path / "config.yaml", endpoint_url=sim.url, things=sim.fleet.thing_names()
    )


def assert_clean(output: str) -> None:
    assert SECRET not in output
    assert "Traceback" not in output


def test_external_id_is_not_echoed_by_config_check(tmp_path: Path, sim: Simulator) -> None:
    document = yaml.safe_load(
        write_exporter_config(tmp_path / "c.yaml", endpoint_url=sim.url, things=["a"]).read_text()
    )
    document["aws"].update(
        role_arn="arn:aws:iam::123456789012:role/scraper", external_id=f"{SECRET} has spaces"
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_cli("--config.check", "--config.file", str(path))
    assert result.returncode == 1
    assert "aws.external_id: must be 2 to 1224 letters" in result.stderr
    assert_clean(result.stdout + result.stderr)


def test_a_refused_external_id_is_not_echoed_at_start_up(tmp_path: Path, sim: Simulator) -> None:
    document = yaml.safe_load(
        write_exporter_config(tmp_path / "c.yaml", endpoint_url=sim.url, things=["a"]).read_text()
    )
    document["aws"].update(
        role_arn="arn:aws:iam::123456789012:role/scraper",
        external_id=f"wrong-{SECRET}",
        sts_endpoint_url=sim.url,
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_cli("--config.file", str(path))
    assert result.returncode == 1
    assert "aws.role_arn: cannot assume the role" in result.stderr
    assert_clean(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        # A section header without its closing bracket: botocore cannot parse the file.
        (
            f"[odd]\naws_access_key_id = AKID\naws_secret_access_key = {SECRET}\n[broken\n",
            "Unable to parse config file",
        ),
        # Keys outside any section.
        (f"aws_secret_access_key = {SECRET}\n[odd]\n", "Unable to parse config file"),
        # Not UTF-8.
        (f"[odd]\naws_secret_access_key = {SECRET}\xff\n", "Unable to parse config file"),
    ],
    ids=["unclosed-section", "no-section", "not-utf8"],
)
def test_a_broken_credentials_file_is_a_clear_error(
    tmp_path: Path, config: Path, credentials: str, expected: str
) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(credentials.encode("latin-1"))
    env = {**NO_ENV_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "odd"}
    started = run_cli("--config.file", str(config), env=env)
    assert started.returncode == 1, started.stderr
    assert expected in started.stderr
    assert_clean(started.stdout + started.stderr)
    checked = run_cli("--config.check", "--config.file", str(config), env=env)
    assert checked.returncode == 0
    assert_clean(checked.stdout + checked.stderr)


ODD_CREDENTIALS: list[tuple[str, dict[str, str]]] = [
    ("non-ascii-secret-key", {"AWS_SECRET_ACCESS_KEY": f"{SECRET}/é☃"}),
    ("non-ascii-access-key", {"AWS_ACCESS_KEY_ID": f"AKID{SECRET}é"}),
    ("non-ascii-session-token", {"AWS_SESSION_TOKEN": f"{SECRET}é☃"}),
    ("header-injection-token", {"AWS_SESSION_TOKEN": f"abc\r\nX-Leak: {SECRET}"}),
    ("secret-without-access-key", {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": SECRET}),
    # botocore refuses this one at start-up ("Partial credentials found in env").
    ("access-key-without-secret", {"AWS_ACCESS_KEY_ID": SECRET, "AWS_SECRET_ACCESS_KEY": ""}),
]


def cycle_or_exit(proc: ExporterProcess) -> bool | None:
    """True once a poll cycle has finished or the process has exited (with its error)."""
    if not proc.running:
        return True
    return any(r.get("msg") == "poll cycle finished" for r in proc.log_records()) or None


@pytest.mark.parametrize(
    "env", [c[1] for c in ODD_CREDENTIALS], ids=[c[0] for c in ODD_CREDENTIALS]
)
def test_odd_aws_keys_never_reach_the_log(config: Path, env: dict[str, str]) -> None:
    # Debug logging, so that every line botocore or the exporter could write is written.
    assert_clean(run_until_a_cycle(config, env))


def run_until_a_cycle(config: Path, env: dict[str, str]) -> str:
    """Everything the exporter logs until its first poll cycle ends, or until it exits."""
    proc = ExporterProcess(
        config, env={**AWS_TEST_ENV, **env}, extra_args=["--log.level", "debug"], wait_ready=False
    )
    try:
        proc.start()
        wait_until(
            lambda: cycle_or_exit(proc),
            timeout=30,
            what="a poll cycle with these credentials, or a start-up error",
            diagnostics=proc.log_tail,
        )
    except RuntimeError:  # it exited before listening; what it said is in its log
        pass
    finally:
        proc.stop()
    output = "\n".join(proc.log_lines())
    assert "poll cycle finished" in output or "aws: cannot create the IoT client" in output
    return output


def test_odd_keys_in_a_profile_never_reach_the_log(tmp_path: Path, config: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[odd]\n"
        f"aws_access_key_id = AKID{SECRET}\n"
        f"aws_secret_access_key = {SECRET}\n"
        f"aws_session_token = {SECRET} with spaces\n"
        f"unknown key = {SECRET}\n"
    )
    env = {**NO_ENV_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "odd"}
    assert_clean(run_until_a_cycle(config, env))
