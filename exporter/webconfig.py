"""The --web.config.file (exporter-toolkit format): TLS, basic auth and extra response headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import bcrypt
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from exporter.yamlfile import (
    ConfigError,
    StrictSection,
    fail,
    load_yaml,
    mapping_or_empty,
    read_config_text,
    show,
    validate_document,
)

REALM = "iot-connectivity-exporter"
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
DEFAULT_MIN_VERSION = "TLS12"
DEFAULT_MAX_VERSION = "TLS13"

# Go's tls.ClientAuthType names -> what Python's ssl can do (see the README for the two
# that differ): NoClientCert and RequestClientCert never look at a certificate; the other
# three verify it against client_ca_file, and two of them refuse a client without one.
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERIFYING = tuple(name for name, mode in CLIENT_AUTH_TYPES.items() if mode != ssl.CERT_NONE)

_BCRYPT_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_HASH_HINT = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
# Checked against for an unknown user, so a wrong name costs what a wrong password does.
_DECOY_HASH = b"$2b$10$wGjaNVCoxR5HB9IFnlVKW.fyzdE1OzLfeZ1Bw9B2/0nvFRGT6e30S"
_CACHE_LIMIT = 1024


# --- field validators -------------------------------------------------------------------------


def _one_of(choices: Mapping[str, object]) -> BeforeValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            fail(f"expected one of {', '.join(choices)}, got {show(value)}")
        return value

    return BeforeValidator(check)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(f"expected true or false, got {show(value)}")
    return value


def _file_name(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"expected a file name, got {show(value)}")
    if not value:
        fail("must not be empty")
    return value


def _unsupported(why: str) -> BeforeValidator:
    def refuse(value: Any) -> NoReturn:
        fail(f"not supported by this exporter: {why}")

    return BeforeValidator(refuse)


def _user_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail(f"expected a user name, got {show(value)}")
    if ":" in value:
        fail(f"user name {show(value)} contains a colon, which basic auth cannot carry")
    return value


def _bcrypt_hash(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"expected a bcrypt hash, got {show(value)}; {_HASH_HINT}")
    if _BCRYPT_RE.fullmatch(value) is None:
        shown = "a string" if value.startswith("$2") else show(value)
        fail(f"not a bcrypt hash ($2y$10$ and 53 more characters), got {shown}; {_HASH_HINT}")
    return value


def _header_value(value: Any) -> str:
    if value is None:  # blank: the header is not sent
        return ""
    if not isinstance(value, str):
        fail(f"expected a string, got {show(value)}")
    if any(c in value for c in "\r\n"):
        fail("must be one line")
    return value


def _header_choice(*choices: str) -> AfterValidator:
    def check(value: str) -> str:
        if value and value.lower() not in choices:
            fail(f"expected {' or '.join(choices)}, got {show(value)}")
        return value

    return AfterValidator(check)


FileName = Annotated[str, BeforeValidator(_file_name)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
UserName = Annotated[str, BeforeValidator(_user_name)]
BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]
HeaderValue = Annotated[str, BeforeValidator(_header_value)]


# --- models -----------------------------------------------------------------------------------


class TLSServerConfig(StrictSection):
    """tls_server_config: serve HTTPS, optionally checking client certificates."""

    cert_file: FileName
    key_file: FileName
    client_auth_type: Annotated[str, _one_of(CLIENT_AUTH_TYPES)] = "NoClientCert"
    client_ca_file: FileName | None = Field(default=None, validate_default=True)
    min_version: Annotated[str, _one_of(TLS_VERSIONS)] = DEFAULT_MIN_VERSION
    max_version: Annotated[str, _one_of(TLS_VERSIONS)] = Field(
        default=DEFAULT_MAX_VERSION, validate_default=True
    )
    prefer_server_cipher_suites: Boolean = True
    # exporter-toolkit keys this exporter refuses rather than ignores: each is a security
    # setting an operator would expect to hold.
    cert: Annotated[None, _unsupported("inline PEM; put it in a file and use cert_file")] = None
    key: Annotated[None, _unsupported("inline PEM; put it in a file and use key_file")] = None
    client_ca: Annotated[
        None, _unsupported("inline PEM; put it in a file and use client_ca_file")
    ] = None
    client_allowed_sans: Annotated[
        None, _unsupported("sign the allowed clients' certificates with a CA of their own")
    ] = None
    cipher_suites: Annotated[None, _unsupported("OpenSSL's default cipher suites apply")] = None
    curve_preferences: Annotated[None, _unsupported("OpenSSL's default curves apply")] = None

    @field_validator("client_ca_file")
    @classmethod
    def _ca_matches_auth_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        auth = info.data.get("client_auth_type")  # absent when it failed its own check
        if auth is None:
            return value
        if value is None and auth in _VERIFYING:
            why = (
                " (Python's ssl verifies every certificate it requires)"
                if auth == "RequireAnyClientCert"
                else ""
            )
            fail(f"required when client_auth_type is {auth}{why}")
        if value is not None and auth not in _VERIFYING:
            fail(f"only used when client_auth_type is one of {', '.join(_VERIFYING)}")
        return value

    @field_validator("max_version")
    @classmethod
    def _max_not_below_min(cls, value: str, info: ValidationInfo) -> str:
        low = info.data.get("min_version")
        if low is not None and TLS_VERSIONS[value] < TLS_VERSIONS[low]:
            fail(f"must not be below min_version ({low}), got {value}")
        return value


class ResponseHeaders(StrictSection):
    """http_server_config.headers: exporter-toolkit's fixed set; a blank value is not sent."""

    content_security_policy: HeaderValue = Field("", alias="Content-Security-Policy")
    x_frame_options: Annotated[HeaderValue, _header_choice("deny", "sameorigin")] = Field(
        "", alias="X-Frame-Options"
    )
    x_content_type_options: Annotated[HeaderValue, _header_choice("nosniff")] = Field(
        "", alias="X-Content-Type-Options"
    )
    x_xss_protection: HeaderValue = Field("", alias="X-XSS-Protection")
    strict_transport_security: HeaderValue = Field("", alias="Strict-Transport-Security")

    def items(self) -> tuple[tuple[str, str], ...]:
        """(name, value) of every header to send."""
        return tuple(
            (field.alias or name, value)
            for name, field in type(self).model_fields.items()
            if (value := getattr(self, name))
        )


class HTTPServerConfig(StrictSection):
    """http_server_config: extra response headers; http2 is accepted and has no effect."""

    http2: Boolean = True
    headers: ResponseHeaders = Field(default_factory=lambda: ResponseHeaders.model_validate({}))


class WebConfig(StrictSection):
    """The whole web config file; an empty file means plain HTTP and no auth."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: Annotated[
        dict[UserName, BcryptHash], mapping_or_empty("user names to bcrypt hashes")
    ] = Field(default_factory=dict)
    rate_limit: Annotated[None, _unsupported("rate-limit in a reverse proxy")] = None


# --- errors -----------------------------------------------------------------------------------


def parse_web_config(text: str, source: str = "<web config>") -> WebConfig:
    """The web config in YAML text; ConfigError lists everything wrong with it, in file order."""
    document = load_yaml(text, source)
    if document.data is None:
        return WebConfig()
    if not isinstance(document.data, dict):
        raise ConfigError(
            [f"expected a mapping at the top level, got {show(document.data)}"], source
        )
    return validate_document(WebConfig, document, source)


# --- what the server uses ---------------------------------------------------------------------


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes, remembering passwords that passed.

    bcrypt is slow on purpose; like exporter-toolkit, a successful check is cached (keyed on
    the user, the stored hash and a SHA-256 of the password) so a scrape every 15 s does not
    pay for it every time. Failures are never cached.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, authorization: str | None) -> bool:
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        with self._lock:
            if hashed is not None and key in self._passed:
                return True
        if not _bcrypt_matches(password, hashed or _DECOY_HASH) or hashed is None:
            return False
        with self._lock:
            if len(self._passed) >= _CACHE_LIMIT:
                self._passed.clear()
            self._passed.add(key)
        return True


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes
        return False


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password.encode()) if sep else None


@dataclass(frozen=True, slots=True)
class WebSecurity:
    """What the HTTP server enforces: a TLS context, basic auth, and headers to add."""

    source: str
    tls: ssl.SSLContext | None
    auth: BasicAuth | None
    headers: tuple[tuple[str, str], ...]
    client_auth_type: str

    def describe(self) -> dict[str, object]:
        """Fields for the start-up log line."""
        return {
            "tls": self.tls is not None,
            "client_auth_type": self.client_auth_type if self.tls else "",
            "basic_auth": self.auth is not None,
        }


class _EncryptedKeyError(Exception):
    pass


def _refuse_passphrase() -> bytes:
    raise _EncryptedKeyError


def _resolve(name: str, base: Path) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _readable(field: str, name: str, base: Path, errors: list[str]) -> Path | None:
    path = _resolve(name, base)
    try:
        with open(path, "rb") as file:
            file.read()
    except OSError as exc:
        where = "" if Path(name).is_absolute() else f" (looked for {path})"
        errors.append(f"{field}: cannot read the file: {exc.strerror or exc}{where}")
        return None
    return path


def build_tls_context(settings: TLSServerConfig, base: Path) -> tuple[ssl.SSLContext, list[str]]:
    """An SSLContext for settings (relative paths from base), and every problem found."""
    section = "tls_server_config"
    errors: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.min_version]
    context.maximum_version = TLS_VERSIONS[settings.max_version]
    if not settings.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    # No HTTP/2 here; saying so keeps an h2-capable client from trying it.
    context.set_alpn_protocols(["http/1.1"])

    cert = _readable(f"{section}.cert_file", settings.cert_file, base, errors)
    key = _readable(f"{section}.key_file", settings.key_file, base, errors)
    if cert is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=cert)
        except ssl.SSLError as exc:
            errors.append(f"{section}.cert_file: no PEM certificate in the file{_because(exc)}")
            cert = None
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(cert, key, password=_refuse_passphrase)
        except _EncryptedKeyError:
            errors.append(f"{section}.key_file: the key is encrypted; give it unencrypted")
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                errors.append(f"{section}.key_file: the key does not match the cert_file")
            else:
                errors.append(f"{section}.key_file: no PEM private key in the file{_because(exc)}")

    context.verify_mode = CLIENT_AUTH_TYPES[settings.client_auth_type]
    if settings.client_ca_file is not None:
        field = f"{section}.client_ca_file"
        ca = _readable(field, settings.client_ca_file, base, errors)
        if ca is not None:
            try:
                context.load_verify_locations(cafile=ca)
            except ssl.SSLError as exc:
                errors.append(f"{field}: no PEM certificate in the file{_because(exc)}")
    return context, errors


def _because(exc: ssl.SSLError) -> str:
    """OpenSSL's reason, when it names one, as " (no certificate or crl found)"."""
    return f" ({exc.reason.lower().replace('_', ' ')})" if exc.reason else ""


def build_security(config: WebConfig, source: str) -> WebSecurity:
    """What the server enforces for a parsed config; ConfigError lists every file problem."""
    base = Path(source).parent
    context: ssl.SSLContext | None = None
    if config.tls_server_config is not None:
        context, errors = build_tls_context(config.tls_server_config, base)
        if errors:
            raise ConfigError(errors, source)
    headers = config.http_server_config.headers.items()
    return WebSecurity(
        source=source,
        tls=context,
        auth=BasicAuth(config.basic_auth_users) if config.basic_auth_users else None,
        headers=headers,
        client_auth_type=(
            config.tls_server_config.client_auth_type if config.tls_server_config else ""
        ),
    )


def load_web_security(path: str | os.PathLike[str]) -> WebSecurity:
    """Read, validate and build the web config file; ConfigError lists everything wrong."""
    text, source = read_config_text(path)
    return build_security(parse_web_config(text, source), source)
