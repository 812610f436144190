"""TLS for the web server: exporter-toolkit's tls_server_config turned into an ssl.SSLContext."""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.ClientAuthType names. Python's ssl verifies every certificate it asks for and
# cannot ask for one without verifying it, so RequireAnyClientCert has no equivalent
# (config_file.py refuses it); RequestClientCert admits everyone, as in Go, but without asking.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}

# Go's crypto/tls names (tls.CipherSuites(), as exporter-toolkit accepts them) -> OpenSSL's.
TLS12_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Accepted, as by exporter-toolkit, and without effect: neither Go nor OpenSSL (through
# Python) lets a server choose its TLS 1.3 suites.
TLS13_CIPHER_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
# tls.InsecureCipherSuites(): exporter-toolkit refuses these names too.
INSECURE_CIPHER_SUITES = frozenset(
    {
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    }
)
# Go's tls.CurveID names -> OpenSSL group names.
CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
    "X25519MLKEM768": "X25519MLKEM768",
}

_SECTION = "tls_server_config"


class TLSSettings(NamedTuple):
    """The parts of tls_server_config the context is built from (config_file.py validated them)."""

    cert_file: str | None
    key_file: str | None
    cert: str | None
    key: str | None
    client_auth_type: str
    client_ca_file: str | None
    client_ca: str | None
    cipher_suites: tuple[str, ...]
    curve_preferences: tuple[str, ...]
    min_version: str
    max_version: str
    prefer_server_cipher_suites: bool


class TLSBuild(NamedTuple):
    context: ssl.SSLContext
    errors: list[str]
    warnings: list[str]


def build_tls_context(settings: TLSSettings, base: Path) -> TLSBuild:
    """An SSLContext for settings (relative paths from base), every problem, and every caveat.

    Neither errors nor warnings ever quote PEM text: a key is a secret, and the rest is noise.
    """
    errors: list[str] = []
    warnings: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.min_version]
    context.maximum_version = TLS_VERSIONS[settings.max_version]
    if not settings.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    # No HTTP/2 here; saying so keeps an h2-capable client from trying it.
    context.set_alpn_protocols(["http/1.1"])
    _load_certificate(context, settings, base, errors)
    _client_verification(context, settings, base, errors)
    _cipher_suites(context, settings, errors, warnings)
    _curve(context, settings, errors)
    return TLSBuild(context, errors, warnings)


# --- certificate and key ----------------------------------------------------------------------


class _EncryptedKeyError(Exception):
    pass


def _refuse_passphrase() -> bytes:
    raise _EncryptedKeyError


def _resolve(name: str, base: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _read(field: str, name: str, base: Path, errors: list[str]) -> bytes | None:
    path = _resolve(name, base)
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        where = "" if Path(name).is_absolute() else f" (looked for {path})"
        errors.append(f"{_SECTION}.{field}: cannot read the file: {exc.strerror or exc}{where}")
        return None


def _load_certificate(
    context: ssl.SSLContext, settings: TLSSettings, base: Path, errors: list[str]
) -> None:
    cert_field = "cert_file" if settings.cert_file is not None else "cert"
    key_field = "key_file" if settings.key_file is not None else "key"
    cert = (
        _read("cert_file", settings.cert_file, base, errors)
        if settings.cert_file is not None
        else (settings.cert or "").encode()
    )
    key = (
        _read("key_file", settings.key_file, base, errors)
        if settings.key_file is not None
        else (settings.key or "").encode()
    )
    if cert is not None and not _has_certificate(cert):
        errors.append(f"{_SECTION}.{cert_field}: no PEM certificate in {_where(cert_field)}")
        cert = None
    if cert is None or key is None:
        return
    try:
        with _pem_file(cert) as cert_path, _pem_file(key) as key_path:
            context.load_cert_chain(cert_path, key_path, password=_refuse_passphrase)
    except _EncryptedKeyError:
        errors.append(f"{_SECTION}.{key_field}: the key is encrypted; give it unencrypted")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            errors.append(f"{_SECTION}.{key_field}: the key does not match the {cert_field}")
        else:
            errors.append(f"{_SECTION}.{key_field}: no PEM private key in {_where(key_field)}")
    except OSError as exc:
        errors.append(
            f"{_SECTION}.{key_field}: cannot hand the inline PEM to OpenSSL: {exc.strerror or exc}"
        )


def _where(field: str) -> str:
    return "the file" if field.endswith("_file") else "the inline PEM"


def _has_certificate(pem: bytes) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(
            cadata=pem.decode("ascii", errors="replace")
        )
    except (ssl.SSLError, ValueError):
        return False
    return True


@contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read data from, gone when the block ends.

    Python's ssl loads certificate chains and keys from files only. An anonymous in-memory
    file (memfd) never touches a disk and works on a read-only root filesystem; elsewhere a
    file readable by this user alone, in a directory of its own, is removed at once.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("iot-exporter-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="iot-exporter-pem-") as directory:
        path = Path(directory) / "pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        yield str(path)


# --- client certificates ----------------------------------------------------------------------


def _client_verification(
    context: ssl.SSLContext, settings: TLSSettings, base: Path, errors: list[str]
) -> None:
    context.verify_mode = CLIENT_AUTH_TYPES[settings.client_auth_type]
    if context.verify_mode == ssl.CERT_NONE:
        # RequestClientCert verifies nothing in Go either; a CA given with it is unused.
        return
    if settings.client_ca_file is not None:
        ca = _read("client_ca_file", settings.client_ca_file, base, errors)
        field = "client_ca_file"
    elif settings.client_ca is not None:
        ca, field = settings.client_ca.encode(), "client_ca"
    else:
        # Go verifies against the system's roots when no CA is given (config_file.py allows that
        # only for VerifyClientCertIfGiven, where a client without a certificate gets in).
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    if ca is None:
        return
    try:
        context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        errors.append(f"{_SECTION}.{field}: no PEM certificate in {_where(field)}")


def peer_sans(certificate: Mapping[str, Any] | None) -> list[str]:
    """A verified client certificate's SANs as exporter-toolkit compares them (Go's spelling).

    DNS names, email addresses, IP addresses and URIs; Go prints IPv6 compressed and in lower
    case, which ipaddress does too, while OpenSSL spells every group out in upper case.
    """
    if not certificate:
        return []
    values: list[str] = []
    for kind, value in certificate.get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI"):
            values.append(str(value))
        elif kind == "IP Address":
            with suppress(ValueError):
                values.append(str(ipaddress.ip_address(str(value).strip())))
    return values


def sans_allowed(sans: Iterable[str], allowed: frozenset[str]) -> bool:
    return any(san in allowed for san in sans)


# --- cipher suites and curves -----------------------------------------------------------------


def _cipher_suites(
    context: ssl.SSLContext, settings: TLSSettings, errors: list[str], warnings: list[str]
) -> None:
    if not settings.cipher_suites:
        return
    tls12 = [name for name in settings.cipher_suites if name not in TLS13_CIPHER_SUITES]
    wanted = [TLS12_CIPHER_SUITES[name] for name in tls12]
    field = f"{_SECTION}.cipher_suites"
    if not wanted:
        # As in Go: a list of TLS 1.3 suites only leaves TLS 1.2 with none at all.
        if context.maximum_version < ssl.TLSVersion.TLSv1_3:
            errors.append(
                f"{field}: names TLS 1.3 suites only, which leaves TLS 1.2 no suite, and"
                f" max_version is {settings.max_version}: no client could connect"
            )
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        context.set_ciphers(":".join(wanted))
    except ssl.SSLError:
        errors.append(f"{field}: OpenSSL accepts none of these suites")
        return
    usable = {c["name"] for c in context.get_ciphers() if c.get("protocol") != "TLSv1.3"}
    dropped = [name for name in tls12 if TLS12_CIPHER_SUITES[name] not in usable]
    if len(dropped) == len(tls12):
        errors.append(
            f"{field}: OpenSSL {_openssl()} disables every one of these suites at Python's"
            " security level; name a GCM or ChaCha20 suite"
        )
    elif dropped:
        warnings.append(
            f"{field}: OpenSSL {_openssl()} disables {', '.join(dropped)} at Python's"
            " security level; the other suites listed are served"
        )


def _curve(context: ssl.SSLContext, settings: TLSSettings, errors: list[str]) -> None:
    if not settings.curve_preferences:
        return
    # config_file.py lets one curve through: Python 3.11's ssl can set one group, not a list.
    name = settings.curve_preferences[0]
    try:
        context.set_ecdh_curve(CURVES[name])
    except (ValueError, ssl.SSLError):
        errors.append(
            f"{_SECTION}.curve_preferences: {name} is not supported by the OpenSSL this"
            f" Python uses ({_openssl()})"
        )


def _openssl() -> str:
    return ssl.OPENSSL_VERSION.removeprefix("OpenSSL ").split(" ")[0]
