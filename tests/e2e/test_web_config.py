"""--web.config.file on the real process: HTTPS, basic auth, client certificates, reloads."""

from __future__ import annotations

import base64
import http.client
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from iot_simulator import Simulator, SimulatorConfig
from tests.support.exporter_process import ExporterProcess
from tests.support.promstack import wait_until
from tests.support.stack import AWS_TEST_ENV, run_cli, write_exporter_config

USER, PASSWORD = "prometheus", "s3cret:with-colon"
# Cost 4 (bcrypt's minimum) keeps the tests quick; the code path is the same at 10.
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


# --- certificates -----------------------------------------------------------------------------


def openssl(*args: str | Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl not found on PATH: install the Debian package openssl")
    subprocess.run([binary, *map(str, args)], check=True, capture_output=True, timeout=60)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1")


@dataclass(frozen=True)
class Pki:
    """A server certificate for 127.0.0.1, and a client CA with one client it signed."""

    directory: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # self-signed: not from client_ca
    stranger_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req", "-x509", *_EC, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", d / "server.key", "-out", d / "server.crt",
    )  # fmt: skip
    openssl(
        "req", "-x509", *_EC, "-subj", "/CN=scrapers CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
        "-keyout", d / "ca.key", "-out", d / "ca.crt",
    )  # fmt: skip
    openssl(
        "req", "-new", *_EC[:5], "-subj", "/CN=prometheus", "-keyout", d / "client.key",
        "-out", d / "client.csr",
    )  # fmt: skip
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "x509", "-req", "-in", d / "client.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", d / "client.ext", "-out", d / "client.crt",
    )  # fmt: skip
    openssl(
        "req", "-x509", *_EC, "-subj", "/CN=stranger", "-keyout", d / "stranger.key",
        "-out", d / "stranger.crt",
    )  # fmt: skip
    return Pki(
        d,
        d / "server.crt",
        d / "server.key",
        d / "ca.crt",
        d / "client.crt",
        d / "client.key",
        d / "stranger.crt",
        d / "stranger.key",
    )


# --- talking to the exporter ------------------------------------------------------------------


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Trusts the test server's certificate (and checks it is for 127.0.0.1)."""
    context = ssl.create_default_context(cafile=str(pki.server_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def auth_header(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def https(
    proc: ExporterProcess,
    path: str,
    context: ssl.SSLContext,
    *,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Response:
    host, port = proc.address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Response(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def https_fails(proc: ExporterProcess, context: ssl.SSLContext) -> str:
    """The error a request over `context` ends in; fails the test if it succeeds."""
    try:
        response = https(proc, "/-/healthy", context, headers=auth_header())
    except (OSError, http.client.HTTPException) as error:  # ssl.SSLError is an OSError
        return repr(error)
    pytest.fail(f"expected the TLS connection to be refused, got HTTP {response.status}")


def wait_ready(proc: ExporterProcess, context: ssl.SSLContext) -> None:
    def ready() -> bool | None:
        if not proc.running:
            raise RuntimeError(f"exporter exited\n{proc.log_tail()}")
        try:
            return https(proc, "/-/ready", context, headers=auth_header()).status == 200 or None
        except OSError:
            return None

    wait_until(ready, timeout=30, what="/-/ready over HTTPS", diagnostics=proc.log_tail)


def write_web_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(things=3, seed=53, quotas=False)) as simulator:
        yield simulator


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    return write_exporter_config(
        tmp_path / "config.yaml", endpoint_url=sim.url, things=sim.fleet.thing_names()
    )


def start(config: Path, web_config: Path, *args: str) -> ExporterProcess:
    # Its readiness probe speaks plain HTTP, so the tests poll over HTTPS themselves.
    return ExporterProcess(
        config,
        env=AWS_TEST_ENV,
        extra_args=["--web.config.file", str(web_config), *args],
        wait_ready=False,
    )


def handshake_failures(proc: ExporterProcess) -> list[str]:
    """The server's reasons for refusing TLS handshakes (logged at debug)."""
    return [r["error"] for r in proc.log_records() if r.get("msg") == "tls handshake failed"]


# --- tests ------------------------------------------------------------------------------------


def test_https_with_basic_auth(tmp_path: Path, pki: Pki, config: Path) -> None:
    web = write_web_config(
        tmp_path / "web.yml",
        f"""\
tls_server_config:
  cert_file: {pki.server_cert}
  key_file: {pki.server_key}
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  {USER}: {PASSWORD_HASH}
""",
    )
    context = client_context(pki)
    with start(config, web) as proc:
        wait_ready(proc, context)
        listening = next(r for r in proc.log_records() if r.get("msg") == "listening")
        assert (listening["tls"], listening["basic_auth"]) == ("true", "true")

        ok = https(proc, "/metrics", context, headers=auth_header())
        assert ok.status == 200
        assert b"iot_thing_connected{" in ok.body
        assert ok.headers["x-content-type-options"] == "nosniff"

        # Every endpoint asks for credentials, and a wrong one gets the same answer.
        for path, headers in [
            ("/metrics", {}),
            ("/", {}),
            ("/-/healthy", {}),
            ("/metrics", auth_header(password="wrong")),
            ("/metrics", auth_header(user="root")),
        ]:
            denied = https(proc, path, context, headers=headers)
            assert denied.status == 401, (path, headers)
            assert denied.headers["www-authenticate"] == 'Basic realm="iot-connectivity-exporter"'
            assert denied.headers["x-content-type-options"] == "nosniff"
        assert https(proc, "/-/reload", context, method="POST").status == 401

        # Plain HTTP on the TLS port gets a plain answer saying why, and nothing breaks.
        host, port = proc.address.rsplit(":", 1)
        plain = http.client.HTTPConnection(host, int(port), timeout=5)
        plain.request("GET", "/metrics")
        response = plain.getresponse()
        assert response.status == 400
        assert b"HTTP request to an HTTPS server" in response.read()
        plain.close()
        # Nor does a client that connects and hangs up, or sends garbage.
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05garbage")
            raw.recv(1024)
        # And a client that does not trust the certificate fails on its own side.
        assert "CERTIFICATE_VERIFY_FAILED" in https_fails(proc, ssl.create_default_context())

        assert https(proc, "/-/healthy", context, headers=auth_header()).status == 200
        assert proc.running
    assert proc.returncode == 0, proc.log_tail()
    assert not [line for line in proc.log_lines() if "Traceback" in line]


def test_basic_auth_over_plain_http(tmp_path: Path, config: Path) -> None:
    web = write_web_config(tmp_path / "web.yml", f"basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n")
    with start(config, web) as proc:
        host, port = proc.address.rsplit(":", 1)
        for headers, status in [
            ({}, 401),
            (auth_header(password="nope"), 401),
            (auth_header(), 200),
        ]:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/-/healthy", headers=headers)
            assert conn.getresponse().status == status
            conn.close()


def test_client_certificate_required(tmp_path: Path, pki: Pki, config: Path) -> None:
    web = write_web_config(
        tmp_path / "web.yml",
        f"""\
tls_server_config:
  cert_file: {pki.server_cert}
  key_file: {pki.server_key}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {pki.client_ca}
""",
    )
    trusted = client_context(pki, pki.client_cert, pki.client_key)
    with start(config, web, "--log.level", "debug") as proc:
        wait_ready(proc, trusted)
        # The client's own error depends on timing (TLS 1.3 checks its certificate after
        # the client thinks the handshake is done); the server's reason does not.
        https_fails(proc, client_context(pki))
        wait_until(
            lambda: (
                any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in e for e in handshake_failures(proc))
                or None
            ),
            timeout=10,
            what="the server to refuse a client without a certificate",
            diagnostics=proc.log_tail,
        )
        https_fails(proc, client_context(pki, pki.stranger_cert, pki.stranger_key))
        wait_until(
            lambda: any("CERTIFICATE_VERIFY_FAILED" in e for e in handshake_failures(proc)) or None,
            timeout=10,
            what="the server to refuse a certificate from another CA",
            diagnostics=proc.log_tail,
        )
        # TLS 1.2 fails in the handshake itself rather than at the first read.
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        https_fails(proc, old)
        assert https(proc, "/metrics", trusted).status == 200
        assert proc.running


def test_tls_version_floor(tmp_path: Path, pki: Pki, config: Path) -> None:
    web = write_web_config(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        "  min_version: TLS13\n",
    )
    with start(config, web) as proc:
        tls12 = client_context(pki)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        https_fails(proc, tls12)
        assert https(proc, "/-/healthy", client_context(pki)).status == 200


def test_reload_picks_up_new_users_and_keeps_the_old_file_on_error(
    tmp_path: Path, pki: Pki, config: Path
) -> None:
    tls = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    web = write_web_config(
        tmp_path / "web.yml", f"{tls}basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n"
    )
    context = client_context(pki)
    new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(4)).decode()
    with start(config, web) as proc:
        wait_ready(proc, context)
        write_web_config(web, f"{tls}basic_auth_users:\n  {USER}: {new_hash}\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: https(proc, "/-/healthy", context, headers=auth_header()).status == 401 or None,
            timeout=10,
            what="SIGHUP to retire the old password",
        )
        assert (
            https(proc, "/-/healthy", context, headers=auth_header(password="rotated")).status
            == 200
        )

        write_web_config(web, f"{tls}basic_auth_users:\n  {USER}: plain-text\n")
        rotated = auth_header(password="rotated")
        failed = https(proc, "/-/reload", context, headers=rotated, method="POST")
        assert failed.status == 500
        assert f"{web}: basic_auth_users.{USER}: not a bcrypt hash" in failed.body.decode()
        # The plaintext password where the hash belongs is in neither the answer nor the log.
        assert "plain-text" not in failed.body.decode()
        assert not [line for line in proc.log_lines() if "plain-text" in line]
        assert https(proc, "/-/healthy", context, headers=rotated).status == 200

        write_web_config(web, f"basic_auth_users:\n  {USER}: {new_hash}\n")
        refused = https(proc, "/-/reload", context, headers=rotated, method="POST")
        assert refused.status == 500
        assert "turning TLS on or off needs a restart" in refused.body.decode()
        assert https(proc, "/-/healthy", context, headers=rotated).status == 200


def test_bad_web_config_is_a_clear_start_up_error(tmp_path: Path, config: Path) -> None:
    web = write_web_config(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: server.key\n"
        "basic_auth_users:\n  alice: not-a-hash\n",
    )
    result = run_cli("--config.file", str(config), "--web.config.file", str(web))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"{web}: basic_auth_users.alice: not a bcrypt hash ($2y$10$ and 53 more characters),"
        " got a string of 10 characters (not shown: it may be a password);"
        " make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
    ]
    assert "not-a-hash" not in result.stderr
    web.write_text("tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: k.pem\n")
    result = run_cli("--config.file", str(config), "--web.config.file", str(web))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{web}: tls_server_config.cert_file: cannot read the file: No such file or directory",
        f"{web}: tls_server_config.key_file: cannot read the file: No such file or directory"
        f" (looked for {tmp_path}/k.pem)",
    ]
    missing = run_cli("--config.file", str(config), "--web.config.file", str(tmp_path / "no.yml"))
    assert missing.returncode == 1
    assert missing.stderr == f"{tmp_path}/no.yml: cannot read the file: No such file or directory\n"


def test_config_check_covers_the_web_config(tmp_path: Path, pki: Pki, config: Path) -> None:
    web = write_web_config(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n",
    )
    result = run_cli("--config.check", "--config.file", str(config), "--web.config.file", str(web))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"web config OK: {web}: TLS (NoClientCert), basic auth off"
    )
    web.write_text("basic_auth_users: {alice: x}\n")
    result = run_cli("--config.check", "--config.file", str(config), "--web.config.file", str(web))
    assert result.returncode == 1
    assert f"{web}: basic_auth_users.alice: not a bcrypt hash" in result.stderr


def test_help_documents_the_flag() -> None:
    out = " ".join(run_cli("--help").stdout.split())
    assert "--web.config.file WEB_CONFIG_FILE web configuration file in the Prometheus" in out
    assert "empty serves plain HTTP without auth" in out
