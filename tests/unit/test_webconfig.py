"""Tables of web config files (--web.config.file) against what they give or the exact errors."""

import base64
import shutil
import ssl
import subprocess
import textwrap
from pathlib import Path

import bcrypt
import pytest
import yaml

from exporter.config.yamlfile import ConfigError
from exporter.web.config_file import (
    BasicAuth,
    TLSServerConfig,
    WebConfig,
    WebSecurity,
    build_security,
    load_web_security,
    parse_web_config,
)

# Cost 4, bcrypt's minimum, keeps the tests fast; operators use 10 or more.
ALICE_PASSWORD = "wonderland"
ALICE_HASH = bcrypt.hashpw(ALICE_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
# htpasswd writes $2y$; Python's bcrypt must read it as exporter-toolkit does.
BOB_HASH_2Y = bcrypt.hashpw(b"builder", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)


HINT = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- valid configs ----------------------------------------------------------------------------


def test_empty_file_means_plain_http_without_auth() -> None:
    config = parse_web_config("")
    assert config == WebConfig()
    assert config.tls_server_config is None
    assert config.basic_auth_users == {}
    assert config.http_server_config.headers.items() == ()


def test_every_supported_key() -> None:
    config = parse_web_config(
        yaml_text(
            f"""
            tls_server_config:
              cert_file: server.crt
              key_file: /etc/exporter/server.key
              client_auth_type: RequireAndVerifyClientCert
              client_ca_file: ca.crt
              min_version: TLS13
              max_version: TLS13
              prefer_server_cipher_suites: false
            http_server_config:
              http2: false
              headers:
                Content-Security-Policy: default-src 'self'
                X-Frame-Options: DENY
                X-Content-Type-Options: nosniff
                X-XSS-Protection: 1; mode=block
                Strict-Transport-Security: max-age=31536000
            basic_auth_users:
              alice: {ALICE_HASH}
              bob: {BOB_HASH_2Y}
            """
        )
    )
    assert config.tls_server_config == TLSServerConfig(
        cert_file="server.crt",
        key_file="/etc/exporter/server.key",
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file="ca.crt",
        min_version="TLS13",
        max_version="TLS13",
        prefer_server_cipher_suites=False,
    )
    assert config.basic_auth_users == {"alice": ALICE_HASH, "bob": BOB_HASH_2Y}
    assert config.http_server_config.headers.items() == (
        ("Content-Security-Policy", "default-src 'self'"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-XSS-Protection", "1; mode=block"),
        ("Strict-Transport-Security", "max-age=31536000"),
    )


def test_tls_defaults() -> None:
    config = parse_web_config("tls_server_config: {cert_file: c.pem, key_file: k.pem}")
    assert config.tls_server_config == TLSServerConfig(cert_file="c.pem", key_file="k.pem")
    tls = config.tls_server_config
    assert (tls.client_auth_type, tls.min_version, tls.max_version) == (
        "NoClientCert",
        "TLS12",
        "TLS13",
    )


def test_blank_sections_and_headers_are_allowed() -> None:
    # As in exporter-toolkit, a tls_server_config with everything commented out means no TLS.
    config = parse_web_config(
        "tls_server_config:\n"
        "http_server_config:\n  headers:\n    X-Frame-Options:\nbasic_auth_users:\n"
    )
    assert config == WebConfig()


def test_documented_example_parses() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "web-config.md").read_text(
        encoding="utf-8"
    )
    example = doc.split("```yaml web-config\n", 1)[1].split("```", 1)[0]
    config = parse_web_config(example, "docs/web-config.md")
    assert config.tls_server_config == TLSServerConfig(
        cert_file="server.crt", key_file="server.key"
    )
    assert list(config.basic_auth_users) == ["prometheus"]
    assert config.http_server_config.headers.items() == (("X-Content-Type-Options", "nosniff"),)


# --- invalid configs --------------------------------------------------------------------------

INVALID: list[tuple[str, str, list[str]]] = [
    ("top-level-list", "- a", ["expected a mapping at the top level, got a list"]),
    (
        "unknown-keys-with-hints",
        """
        tls_server_config:
          cert_file: c.pem
          key_file: k.pem
          client_auth: RequireAndVerifyClientCert
        basic_auth_user: {}
        http_server_config:
          headerz: {}
        """,
        [
            'tls_server_config.client_auth: unknown key (did you mean "client_auth_type"?)',
            'basic_auth_user: unknown key (did you mean "basic_auth_users"?)',
            'http_server_config.headerz: unknown key (did you mean "headers"?)',
        ],
    ),
    (
        "cert-and-key-required",
        "tls_server_config: {min_version: TLS13}",
        [
            "tls_server_config.cert_file: required key is missing (or give the PEM inline as cert)",
            "tls_server_config.key_file: required key is missing (or give the PEM inline as key)",
        ],
    ),
    (
        "not-a-mapping",
        "tls_server_config: yes\nhttp_server_config: [a]\nbasic_auth_users: alice",
        [
            "tls_server_config: expected a mapping, got true",
            "http_server_config: expected a mapping, got a list",
            "basic_auth_users: expected a mapping of user names to bcrypt hashes,"
            " got a string of 5 characters",
        ],
    ),
    (
        "file-names",
        "tls_server_config: {cert_file: '', key_file: 3, client_auth_type: "
        "VerifyClientCertIfGiven, client_ca_file: [a]}",
        [
            "tls_server_config.cert_file: must not be empty",
            "tls_server_config.key_file: expected a file name, got 3",
            "tls_server_config.client_ca_file: expected a file name, got a list",
        ],
    ),
    (
        "client-auth-type-and-versions",
        """
        tls_server_config:
          cert_file: c.pem
          key_file: k.pem
          client_auth_type: requireandverifyclientcert
          min_version: TLS1.2
          max_version: SSL3
        """,
        [
            "tls_server_config.client_auth_type: expected one of NoClientCert,"
            " RequestClientCert, VerifyClientCertIfGiven, RequireAnyClientCert,"
            ' RequireAndVerifyClientCert, got "requireandverifyclientcert"',
            "tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13,"
            ' got "TLS1.2"',
            'tls_server_config.max_version: expected one of TLS10, TLS11, TLS12, TLS13, got "SSL3"',
        ],
    ),
    (
        "max-below-min",
        "tls_server_config: {cert_file: c, key_file: k, min_version: TLS13, max_version: TLS12}",
        ["tls_server_config.max_version: must not be below min_version (TLS13), got TLS12"],
    ),
    (
        "max-below-default-min",
        "tls_server_config: {cert_file: c, key_file: k, max_version: TLS11}",
        ["tls_server_config.max_version: must not be below min_version (TLS12), got TLS11"],
    ),
    (
        "verifying-needs-a-ca",
        "tls_server_config: {cert_file: c, key_file: k, client_auth_type: "
        "RequireAndVerifyClientCert}",
        [
            "tls_server_config.client_ca_file: required when client_auth_type is"
            " RequireAndVerifyClientCert (or give the PEM inline as client_ca): without it Go"
            " would accept any certificate a public CA signed"
        ],
    ),
    (
        "require-any-is-impossible-in-python",
        "tls_server_config: {cert_file: c, key_file: k, client_auth_type: RequireAnyClientCert,"
        " client_ca_file: ca.pem}",
        [
            "tls_server_config.client_auth_type: RequireAnyClientCert (require a certificate"
            " without verifying it) is not possible with Python's ssl, which verifies every"
            " certificate it requires; use RequireAndVerifyClientCert with client_ca_file"
            " naming the CA that signs your clients' certificates"
        ],
    ),
    (
        "ca-without-client-auth",
        "tls_server_config: {cert_file: c, key_file: k, client_ca_file: ca.pem}",
        [
            "tls_server_config.client_ca_file: a client CA needs a client_auth_type other than"
            " NoClientCert, such as RequireAndVerifyClientCert"
        ],
    ),
    (
        "inline-and-file-both-given",
        """
        tls_server_config:
          cert: "-----BEGIN CERTIFICATE-----"
          cert_file: c.pem
          key: "-----BEGIN PRIVATE KEY-----"
          key_file: k.pem
          client_auth_type: RequireAndVerifyClientCert
          client_ca: "-----BEGIN CERTIFICATE-----"
          client_ca_file: ca.pem
        """,
        [
            "tls_server_config.cert_file: give cert_file or cert, not both",
            "tls_server_config.key_file: give key_file or key, not both",
            "tls_server_config.client_ca_file: give client_ca_file or client_ca, not both",
        ],
    ),
    (
        "inline-pem-never-shown",
        """
        tls_server_config:
          cert: not pem at all
          key: 12345678
          client_auth_type: VerifyClientCertIfGiven
          client_ca: [a]
        """,
        [
            "tls_server_config.cert: expected PEM text (-----BEGIN ...), got something else"
            " (not shown)",
            "tls_server_config.key: expected PEM text, got a number",
            "tls_server_config.client_ca: expected PEM text, got a list",
        ],
    ),
    (
        "ciphers-curves-and-sans",
        """
        tls_server_config:
          cert_file: c.pem
          key_file: k.pem
          client_auth_type: VerifyClientCertIfGiven
          client_allowed_sans: [scraper.example.com]
          cipher_suites:
            - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            - TLS_RSA_WITH_RC4_128_SHA
            - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048
          curve_preferences: [CurveP256, X25519]
        """,
        [
            "tls_server_config.client_allowed_sans: needs client_auth_type"
            " RequireAndVerifyClientCert: with any other, a client may send no certificate"
            " to match",
            "tls_server_config.cipher_suites: TLS_RSA_WITH_RC4_128_SHA is one of Go's insecure"
            " suites, which exporter-toolkit refuses too; unknown cipher suite"
            ' "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048" (use Go\'s names, such as'
            " TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
            "tls_server_config.curve_preferences: Python's ssl (SSLContext.set_ecdh_curve)"
            " can restrict the key exchange to one curve, not a list; name one curve, or"
            " leave curve_preferences out for OpenSSL's defaults",
        ],
    ),
    (
        "unknown-curve-and-empty-sans",
        """
        tls_server_config:
          cert_file: c.pem
          key_file: k.pem
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: ca.pem
          client_allowed_sans: []
          curve_preferences: [P-256]
          cipher_suites: TLS_AES_128_GCM_SHA256
        """,
        [
            "tls_server_config.client_allowed_sans: list at least one name: an empty list"
            " would refuse every client",
            'tls_server_config.curve_preferences: unknown curve "P-256": expected one of'
            " CurveP256, CurveP384, CurveP521, X25519, X25519MLKEM768",
            "tls_server_config.cipher_suites: expected a list of cipher suite names,"
            ' got "TLS_AES_128_GCM_SHA256"',
        ],
    ),
    (
        "rate-limit",
        """
        rate_limit:
          interval: 1
          burst: -1
        """,
        [
            "rate_limit.interval: expected a duration such as 1s or 500ms, got 1",
            "rate_limit.burst: expected a whole number, 0 or more, got -1",
        ],
    ),
    (
        "rate-limit-not-a-mapping",
        "rate_limit: 10/s",
        ['rate_limit: expected a mapping, got "10/s"'],
    ),
    (
        "booleans",
        "tls_server_config: {cert_file: c, key_file: k, prefer_server_cipher_suites: 1}\n"
        "http_server_config: {http2: 'true'}",
        [
            "tls_server_config.prefer_server_cipher_suites: expected true or false, got 1",
            'http_server_config.http2: expected true or false, got "true"',
        ],
    ),
    (
        "headers",
        """
        http_server_config:
          headers:
            x-frame-options: deny
            X-Frame-Options: allow-from
            X-Content-Type-Options: sniff
            X-XSS-Protection: on
            Server: me
            Strict-Transport-Security: "max-age=1\\r\\nSet-Cookie: a=b"
        """,
        [
            "http_server_config.headers.x-frame-options: unknown key"
            ' (did you mean "X-Frame-Options"?)',
            "http_server_config.headers.X-Frame-Options: expected deny or sameorigin,"
            ' got "allow-from"',
            'http_server_config.headers.X-Content-Type-Options: expected nosniff, got "sniff"',
            "http_server_config.headers.X-XSS-Protection: expected a string, got true (quote"
            " it: YAML reads yes, no, on, off, true, false as booleans)",
            "http_server_config.headers.Server: unknown key",
            "http_server_config.headers.Strict-Transport-Security: must be one line",
        ],
    ),
    (
        "basic-auth-users",
        f"""
        basic_auth_users:
          alice: {ALICE_HASH}
          bob: builder
          carol: "$2y$10$tooShort"
          dave: "{ALICE_HASH.replace("$04$", "$03$")}"
          "eve:admin": {ALICE_HASH}
          frank: 42
          gina:
        """,
        [
            'basic_auth_users.eve:<not shown>: user name "eve:<not shown>" contains a colon,'
            " which basic auth cannot carry (give the user name as the key and a bcrypt hash"
            " as its value)",
            "basic_auth_users.bob: not a bcrypt hash ($2y$10$ and 53 more characters), got a"
            f" string of 7 characters (not shown: it may be a password); {HINT}",
            "basic_auth_users.carol: not a bcrypt hash ($2y$10$ and 53 more characters), got a"
            f" string of 15 characters (not shown: it may be a password); {HINT}",
            "basic_auth_users.dave: not a bcrypt hash ($2y$10$ and 53 more characters), got a"
            f" string of 60 characters (not shown: it may be a password); {HINT}",
            f"basic_auth_users.frank: expected a bcrypt hash, got a number; {HINT}",
            f"basic_auth_users.gina: expected a bcrypt hash, got null; {HINT}",
        ],
    ),
    (
        "duplicate-users",
        f"basic_auth_users:\n  alice: {ALICE_HASH}\n  alice: {ALICE_HASH}\n",
        ["basic_auth_users.alice: duplicate key at line 3 (first at line 2)"],
    ),
    # Worded as in the exporter's config: both go through yamlfile.validate_document.
    ("non-string-key", "http_server_config:\n  1: 2\n", ["http_server_config.1: unknown key"]),
    ("bad-yaml", "tls_server_config: [", None),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_web_config(text: str, expected: list[str] | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(yaml_text(text), "web.yml")
    if expected is None:  # the YAML parser's own words; only their shape is ours
        assert len(caught.value.errors) == 1
        assert caught.value.errors[0].startswith("line 1, column 21: invalid YAML:")
        return
    assert list(caught.value.errors) == expected
    assert str(caught.value) == "\n".join(f"web.yml: {line}" for line in expected)
    for word in ("pydantic", "Input should", "validation error", "Traceback"):
        assert word not in str(caught.value)


# --- files: the config itself, certificates and keys ------------------------------------------


def openssl(*args: str | Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("openssl not found on PATH: install the Debian package openssl")
    subprocess.run([binary, *map(str, args)], check=True, capture_output=True, timeout=60)


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-subj", f"/CN={name}", "-keyout", key, "-out", cert,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    self_signed(directory, "server")
    self_signed(directory, "other")
    openssl(
        "pkey", "-in", directory / "server.key", "-aes256", "-passout", "pass:secret",
        "-out", directory / "encrypted.key",
    )  # fmt: skip
    (directory / "garbage.pem").write_text("not PEM\n")
    return directory


def write(path: Path, text: str) -> Path:
    path.write_text(yaml_text(text), encoding="utf-8")
    return path


def file_errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_web_security(path)
    assert str(caught.value) == "\n".join(f"{path}: {line}" for line in caught.value.errors)
    return list(caught.value.errors)


def test_tls_context_from_files_relative_to_the_web_config(pki: Path) -> None:
    web = write(
        pki / "web.yml",
        """
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: other.crt
          min_version: TLS13
        """,
    )
    security = load_web_security(web)
    assert security.tls is not None
    assert security.tls.verify_mode == ssl.CERT_REQUIRED
    assert security.tls.minimum_version == ssl.TLSVersion.TLSv1_3
    assert security.tls.maximum_version == ssl.TLSVersion.TLSv1_3
    assert security.auth is None
    assert security.describe() == {
        "tls": True,
        "client_auth_type": "RequireAndVerifyClientCert",
        "basic_auth": False,
    }


@pytest.mark.parametrize(
    ("auth_type", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_types_map_to_ssl(pki: Path, auth_type: str, mode: ssl.VerifyMode) -> None:
    ca = "" if mode == ssl.CERT_NONE else "client_ca_file: other.crt"
    web = write(
        pki / f"{auth_type}.yml",
        f"""
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
          client_auth_type: {auth_type}
          {ca}
        """,
    )
    security = load_web_security(web)
    assert security.tls is not None
    assert security.tls.verify_mode == mode


def test_missing_files_are_all_reported(pki: Path) -> None:
    web = write(
        pki / "missing.yml",
        f"""
        tls_server_config:
          cert_file: {pki}/nope.crt
          key_file: nope.key
          client_auth_type: VerifyClientCertIfGiven
          client_ca_file: {pki}
        """,
    )
    assert file_errors(web) == [
        "tls_server_config.cert_file: cannot read the file: No such file or directory",
        "tls_server_config.key_file: cannot read the file: No such file or directory"
        f" (looked for {pki}/nope.key)",
        "tls_server_config.client_ca_file: cannot read the file: Is a directory",
    ]


@pytest.mark.parametrize(
    ("cert", "key", "ca", "expected"),
    [
        (
            "server.crt",
            "other.key",
            "other.crt",
            ["tls_server_config.key_file: the key does not match the cert_file"],
        ),
        (
            "server.crt",
            "encrypted.key",
            "other.crt",
            ["tls_server_config.key_file: the key is encrypted; give it unencrypted"],
        ),
        (
            "server.key",
            "server.crt",
            "garbage.pem",
            [
                "tls_server_config.cert_file: no PEM certificate in the file",
                "tls_server_config.client_ca_file: no PEM certificate in the file",
            ],
        ),
        (
            "server.crt",
            "garbage.pem",
            "other.crt",
            ["tls_server_config.key_file: no PEM private key in the file"],
        ),
    ],
    ids=["key-mismatch", "encrypted-key", "swapped-and-bad-ca", "garbage-key"],
)
def test_unusable_certificates_and_keys(
    pki: Path, cert: str, key: str, ca: str, expected: list[str]
) -> None:
    web = write(
        pki / "bad.yml",
        f"""
        tls_server_config:
          cert_file: {cert}
          key_file: {key}
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: {ca}
        """,
    )
    assert file_errors(web) == expected


def test_unreadable_web_config(tmp_path: Path) -> None:
    assert file_errors(tmp_path / "nope.yml") == ["cannot read the file: No such file or directory"]
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"basic_auth_users: {caf\xe9: x}\n")
    assert file_errors(latin1) == ["not UTF-8 text (byte 22: invalid continuation byte)"]


def test_security_from_a_plain_http_config(tmp_path: Path) -> None:
    web = write(
        tmp_path / "web.yml",
        f"""
        http_server_config:
          headers: {{X-Content-Type-Options: nosniff, X-Frame-Options: ""}}
        basic_auth_users: {{alice: "{ALICE_HASH}"}}
        """,
    )
    security = load_web_security(web)
    assert security.tls is None
    assert security.auth is not None
    assert security.headers == (("X-Content-Type-Options", "nosniff"),)
    assert security.path == str(web)


# --- basic auth -------------------------------------------------------------------------------


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The passwords bcrypt was asked to check, in order."""
    seen: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        seen.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return seen


def test_basic_auth_accepts_the_right_password_only(checks: list[bytes]) -> None:
    auth = BasicAuth({"alice": ALICE_HASH, "bob": BOB_HASH_2Y})
    assert auth.allows(basic("alice", ALICE_PASSWORD))
    assert auth.allows(basic("bob", "builder"))
    assert not auth.allows(basic("alice", "wrong"))
    assert not auth.allows(basic("bob", ALICE_PASSWORD))
    assert not auth.allows(basic("Alice", ALICE_PASSWORD))


def test_unknown_user_still_costs_a_bcrypt_check(checks: list[bytes]) -> None:
    auth = BasicAuth({"alice": ALICE_HASH})
    assert not auth.allows(basic("mallory", ALICE_PASSWORD))
    assert checks == [ALICE_PASSWORD.encode()]


def test_successes_are_cached_failures_are_not(checks: list[bytes]) -> None:
    auth = BasicAuth({"alice": ALICE_HASH})
    for _ in range(3):
        assert auth.allows(basic("alice", ALICE_PASSWORD))
        assert not auth.allows(basic("alice", "wrong"))
    assert checks == [ALICE_PASSWORD.encode(), b"wrong", b"wrong", b"wrong"]


def test_a_cached_password_does_not_outlive_its_hash(checks: list[bytes]) -> None:
    assert BasicAuth({"alice": ALICE_HASH}).allows(basic("alice", ALICE_PASSWORD))
    rotated = BasicAuth({"alice": bcrypt.hashpw(b"new", bcrypt.gensalt(4)).decode()})
    assert not rotated.allows(basic("alice", ALICE_PASSWORD))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic !!!",
        "Bearer " + base64.b64encode(f"alice:{ALICE_PASSWORD}".encode()).decode(),
        "Basic " + base64.b64encode(b"alice").decode(),  # no colon
        "Basic " + base64.b64encode(b"alice:\xff").decode(),  # not UTF-8
        basic("alice", "x" * 100),  # bcrypt 5 refuses passwords over 72 bytes
    ],
)
def test_malformed_authorization_is_refused(header: str | None) -> None:
    assert not BasicAuth({"alice": ALICE_HASH}).allows(header)


def test_scheme_is_case_insensitive_and_passwords_may_hold_colons() -> None:
    hashed = bcrypt.hashpw(b"a:b:c", bcrypt.gensalt(4)).decode()
    auth = BasicAuth({"alice": hashed})
    assert auth.allows("basic " + base64.b64encode(b"alice:a:b:c").decode())


# --- secrets never reach a message --------------------------------------------------------------

SECRET = "hunter2-Sup3rSecret"
SECRET_CASES: list[tuple[str, str]] = [
    ("plaintext-password-as-hash", f"basic_auth_users:\n  alice: {SECRET}\n"),
    ("quoted-plaintext-password", f'basic_auth_users:\n  alice: "{SECRET}"\n'),
    ("hash-like-password", f'basic_auth_users:\n  alice: "$2y${SECRET}"\n'),
    ("user-colon-password-key", f'basic_auth_users:\n  "alice:{SECRET}": {ALICE_HASH}\n'),
    ("user-colon-password-key-no-value", f'basic_auth_users:\n  "alice:{SECRET}":\n'),
    ("users-as-a-string", f'basic_auth_users: "alice:{SECRET}"\n'),
    ("users-as-a-list", f"basic_auth_users: [alice, {SECRET}]\n"),
    (
        "inline-key-not-pem",
        f"tls_server_config:\n  cert_file: c.pem\n  key: {SECRET}\n",
    ),
    (
        "inline-key-as-list",
        f"tls_server_config:\n  cert_file: c.pem\n  key: [{SECRET}]\n",
    ),
]


@pytest.mark.parametrize("text", [c[1] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES])
def test_no_config_error_shows_a_secret(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(text, "web.yml")
    assert SECRET not in str(caught.value)


def test_no_file_error_shows_an_inline_key(pki: Path) -> None:
    # A garbled key, and a well-formed key for another certificate: neither is echoed.
    garbled = "-----BEGIN PRIVATE KEY-----\n" + SECRET + "\n-----END PRIVATE KEY-----\n"
    other_key = (pki / "other.key").read_text()
    for key, expected in [
        (garbled, "tls_server_config.key: no PEM private key in the inline PEM"),
        (other_key, "tls_server_config.key: the key does not match the cert_file"),
    ]:
        web = pki / "inline-key.yml"
        web.write_text(
            yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key": key}})
        )
        assert file_errors(web) == [expected]
        with pytest.raises(ConfigError) as caught:
            load_web_security(web)
        assert SECRET not in str(caught.value)
        assert other_key.splitlines()[1] not in str(caught.value)


# --- inline PEM ---------------------------------------------------------------------------------


def test_inline_cert_key_and_client_ca(pki: Path) -> None:
    web = pki / "inline.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert": (pki / "server.crt").read_text(),
                    "key": (pki / "server.key").read_text(),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca": (pki / "other.crt").read_text(),
                }
            }
        )
    )
    security = load_web_security(web)
    assert security.tls is not None
    assert security.tls.verify_mode == ssl.CERT_REQUIRED
    assert security.tls.cert_store_stats()["x509_ca"] == 1
    # Nothing of the key is left on disk: memfd files vanish when closed.
    assert not list(Path("/tmp").glob("iot-exporter-pem-*"))


def test_verify_if_given_without_a_ca_uses_the_system_roots_as_go_does(pki: Path) -> None:
    web = write(
        pki / "verify-if-given.yml",
        """
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
          client_auth_type: VerifyClientCertIfGiven
        """,
    )
    security = load_web_security(web)
    assert security.tls is not None
    assert security.tls.verify_mode == ssl.CERT_OPTIONAL


# --- decoy cost ---------------------------------------------------------------------------------


def _hash_at(cost: int) -> str:
    return f"$2y${cost:02d}$" + ALICE_HASH[7:]


@pytest.mark.parametrize(
    ("costs", "decoy_cost"),
    [
        ([], 10),
        ([4], 4),
        ([12], 12),
        ([12, 12, 10], 12),
        ([10, 10, 12], 10),  # the most common cost hides the most users
        ([10, 12], 12),  # a tie goes to the slower cost
        ([12, 18, 10, 10], 10),  # exporter-toolkit's own users file
    ],
)
def test_decoy_costs_what_the_users_cost(costs: list[int], decoy_cost: int) -> None:
    auth = BasicAuth({f"user{i}": _hash_at(cost) for i, cost in enumerate(costs)})
    assert auth.decoy[:7] == b"$2b$%02d$" % decoy_cost
    assert len(auth.decoy) == 60


def test_unknown_user_is_checked_against_the_decoy(monkeypatch: pytest.MonkeyPatch) -> None:
    hashes: list[bytes] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        hashes.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording)
    auth = BasicAuth({"alice": _hash_at(5)})
    assert not auth.allows(basic("mallory", "x"))
    assert hashes == [auth.decoy]
    assert auth.decoy.startswith(b"$2b$05$")


# --- headers and rate limit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("1", "1"),
        ("0", "0"),
        ("1.10", "1.10"),
        ("010", "010"),
        ('"1; mode=block"', "1; mode=block"),
    ],
)
def test_header_values_yaml_reads_as_numbers_are_sent_as_written(written: str, sent: str) -> None:
    config = parse_web_config(f"http_server_config:\n  headers:\n    X-XSS-Protection: {written}\n")
    assert config.http_server_config.headers.items() == (("X-XSS-Protection", sent),)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("rate_limit: {interval: 1s, burst: 10}", (1.0, 10)),
        ("rate_limit: {interval: 250ms, burst: 0}", (0.25, 0)),
        ("rate_limit: {interval: 1m30s, burst: 2}", (90.0, 2)),
        ("rate_limit: {interval: 0, burst: 0}", None),  # toolkit's "nonblocking" file
        ("rate_limit: {burst: 5}", None),
        ("rate_limit:", None),
        ("", None),
    ],
)
def test_rate_limit(text: str, limit: tuple[float, int] | None) -> None:
    security = build_security(parse_web_config(text), "web.yml")
    if limit is None:
        assert security.rate_limit is None
        return
    assert security.rate_limit is not None
    assert (security.rate_limit.interval, security.rate_limit.burst) == limit


def test_a_reload_keeps_the_bucket_unless_rate_limit_changed() -> None:
    def load(text: str) -> WebSecurity:
        return build_security(parse_web_config(text), "web.yml")

    running = load("rate_limit: {interval: 1h, burst: 1}")
    assert running.rate_limit is not None
    assert running.rate_limit.limiter.allow()
    same = load("rate_limit: {interval: 1h, burst: 1}\nbasic_auth_users: {}").keeping_state_of(
        running
    )
    assert same.rate_limit is running.rate_limit
    assert not same.rate_limit.limiter.allow()  # the burst stays spent
    changed = load("rate_limit: {interval: 1h, burst: 2}").keeping_state_of(running)
    assert changed.rate_limit is not None
    assert changed.rate_limit.limiter.allow()
    assert load("").keeping_state_of(running).rate_limit is None
