"""The --web.config.file (exporter-toolkit format): TLS, basic auth and extra response headers."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
import ssl
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import bcrypt
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from exporter.config.durations import parse_go_duration
from exporter.config.yamlfile import (
    ConfigError,
    StrictSection,
    fail,
    load_yaml,
    number_text,
    read_config_text,
    show,
    validate_document,
)
from exporter.web.limits import RequestRateLimiter
from exporter.web.tls import (
    CLIENT_AUTH_TYPES,
    CURVES,
    INSECURE_CIPHER_SUITES,
    TLS12_CIPHER_SUITES,
    TLS13_CIPHER_SUITES,
    TLS_VERSIONS,
    TLSSettings,
    build_tls_context,
)

REALM = "iot-connectivity-exporter"
DEFAULT_MIN_VERSION = "TLS12"
DEFAULT_MAX_VERSION = "TLS13"
_VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")

_BCRYPT_RE = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_HASH_HINT = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
# The decoy's salt and digest; its cost is set per config (see decoy_hash).
_DECOY_TAIL = b"wGjaNVCoxR5HB9IFnlVKW.fyzdE1OzLfeZ1Bw9B2/0nvFRGT6e30S"
_DEFAULT_COST = 10
_CACHE_LIMIT = 1024


# --- field validators -------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """What a value is, without showing it: for fields that may hold a secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string of {len(value)} character{'' if len(value) == 1 else 's'}"
    return "a list" if isinstance(value, list | tuple) else "a mapping"


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


def _pem(value: Any) -> str:
    # Never shown: the key is a secret, and a certificate in an error is only noise.
    if not isinstance(value, str):
        fail(f"expected PEM text, got {_kind(value)}")
    if "-----BEGIN " not in value:
        fail("expected PEM text (-----BEGIN ...), got something else (not shown)")
    return value


def _user_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail(f"expected a user name, got {show(value)}")
    if ":" in value:
        fail(
            f"user name {show(value)} contains a colon, which basic auth cannot carry"
            " (give the user name as the key and a bcrypt hash as its value)"
        )
    return value


def _users(value: Any) -> Any:
    """basic_auth_users: a mapping; a user:password key is shown without its password."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(f"expected a mapping of user names to bcrypt hashes, got {_kind(value)}")
    users: dict[Any, Any] = {}
    for name, hashed in value.items():
        key = name
        if isinstance(name, str) and ":" in name:
            key = name.split(":", 1)[0] + ":<not shown>"
            while key in users or key in value:
                key += "'"
        users[key] = hashed
    return users


def _bcrypt_hash(value: Any) -> str:
    # A wrong value here is most often the plaintext password: never show it.
    if not isinstance(value, str):
        fail(f"expected a bcrypt hash, got {_kind(value)}; {_HASH_HINT}")
    if _BCRYPT_RE.fullmatch(value) is None:
        fail(
            f"not a bcrypt hash ($2y$10$ and 53 more characters), got {_kind(value)}"
            f" (not shown: it may be a password); {_HASH_HINT}"
        )
    return value


def _header_value(value: Any) -> str:
    if value is None:  # blank: the header is not sent
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_text(value)  # X-XSS-Protection: 1 is "1", as written
    if not isinstance(value, str):
        hint = " (quote it: YAML reads yes, no, on, off, true, false as booleans)"
        fail(f"expected a string, got {show(value)}{hint if isinstance(value, bool) else ''}")
    if any(c in value for c in "\r\n"):
        fail("must be one line")
    return value


def _header_choice(*choices: str) -> AfterValidator:
    def check(value: str) -> str:
        if value and value.lower() not in choices:
            fail(f"expected {' or '.join(choices)}, got {show(value)}")
        return value

    return AfterValidator(check)


def _names(what: str, check: Any) -> BeforeValidator:
    """A YAML list of names, each checked; null (all commented out) is an empty list."""

    def names(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            fail(f"expected a list of {what}, got {show(value)}")
        problems = [p for item in value if (p := check(item))]
        if problems:
            fail("; ".join(problems))
        return tuple(value)

    return BeforeValidator(names)


def _cipher_problem(name: Any) -> str | None:
    if not isinstance(name, str):
        return f"expected a cipher suite name, got {show(name)}"
    if name in INSECURE_CIPHER_SUITES:
        return f"{name} is one of Go's insecure suites, which exporter-toolkit refuses too"
    if name not in TLS12_CIPHER_SUITES and name not in TLS13_CIPHER_SUITES:
        return f"unknown cipher suite {show(name)} (use Go's names, such as {_EXAMPLE_SUITE})"
    return None


_EXAMPLE_SUITE = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"


def _curve_problem(name: Any) -> str | None:
    if not isinstance(name, str) or name not in CURVES:
        return f"unknown curve {show(name)}: expected one of {', '.join(CURVES)}"
    return None


def _san(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"expected a subject alternative name, got {show(value)}"
    return None


def _duration(value: Any) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0.0
    if not isinstance(value, str):
        fail(f"expected a duration such as 1s or 500ms, got {show(value)}")
    try:
        return parse_go_duration(value)
    except ValueError:
        fail(f"expected a duration such as 1s or 500ms, got {show(value)}")


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        fail(f"expected a whole number, 0 or more, got {show(value)}")
    return int(value)


FileName = Annotated[str, BeforeValidator(_file_name)]
Pem = Annotated[str, BeforeValidator(_pem)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
UserName = Annotated[str, BeforeValidator(_user_name)]
BcryptHash = Annotated[str, BeforeValidator(_bcrypt_hash)]
HeaderValue = Annotated[str, BeforeValidator(_header_value)]
CipherSuites = Annotated[tuple[str, ...], _names("cipher suite names", _cipher_problem)]
Curves = Annotated[tuple[str, ...], _names("curve names", _curve_problem)]
Sans = Annotated[tuple[str, ...], _names("subject alternative names", _san)]
GoDuration = Annotated[float, BeforeValidator(_duration)]
Count = Annotated[int, BeforeValidator(_count)]


# --- models -----------------------------------------------------------------------------------


class TLSServerConfig(StrictSection):
    """tls_server_config: serve HTTPS, optionally checking client certificates.

    The inline fields come first so the file fields' checks can see them.
    """

    cert: Pem | None = None
    key: Pem | None = None
    client_ca: Pem | None = None
    cert_file: FileName | None = Field(default=None, validate_default=True)
    key_file: FileName | None = Field(default=None, validate_default=True)
    client_auth_type: Annotated[str, _one_of(CLIENT_AUTH_TYPES)] = "NoClientCert"
    client_ca_file: FileName | None = Field(default=None, validate_default=True)
    client_allowed_sans: Sans | None = None
    cipher_suites: CipherSuites = ()
    curve_preferences: Curves = ()
    min_version: Annotated[str, _one_of(TLS_VERSIONS)] = DEFAULT_MIN_VERSION
    max_version: Annotated[str, _one_of(TLS_VERSIONS)] = Field(
        default=DEFAULT_MAX_VERSION, validate_default=True
    )
    prefer_server_cipher_suites: Boolean = True

    @field_validator("cert_file", "key_file")
    @classmethod
    def _file_or_inline(cls, value: str | None, info: ValidationInfo) -> str | None:
        inline = "cert" if info.field_name == "cert_file" else "key"
        if inline not in info.data:  # the inline value failed its own check
            return value
        if value is None and info.data[inline] is None:
            fail(f"required key is missing (or give the PEM inline as {inline})")
        if value is not None and info.data[inline] is not None:
            fail(f"give {info.field_name} or {inline}, not both")
        return value

    @field_validator("client_auth_type")
    @classmethod
    def _possible_in_python(cls, value: str) -> str:
        if value == "RequireAnyClientCert":
            fail(
                "RequireAnyClientCert (require a certificate without verifying it) is not"
                " possible with Python's ssl, which verifies every certificate it requires;"
                " use RequireAndVerifyClientCert with client_ca_file naming the CA that"
                " signs your clients' certificates"
            )
        return value

    @field_validator("client_ca_file")
    @classmethod
    def _ca_matches_auth_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        auth = info.data.get("client_auth_type")  # absent when it failed its own check
        inline = info.data.get("client_ca")
        if value is not None and inline is not None:
            fail("give client_ca_file or client_ca, not both")
        given = value is not None or inline is not None
        if auth is None or "client_ca" not in info.data:  # one error about the CA is enough
            return value
        if not given and auth == "RequireAndVerifyClientCert":
            fail(
                "required when client_auth_type is RequireAndVerifyClientCert (or give the"
                " PEM inline as client_ca): without it Go would accept any certificate a"
                " public CA signed"
            )
        if given and auth == "NoClientCert":
            fail(
                "a client CA needs a client_auth_type other than NoClientCert, such as"
                " RequireAndVerifyClientCert"
            )
        return value

    @field_validator("client_allowed_sans")
    @classmethod
    def _sans_need_a_verified_certificate(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is None:
            return value
        auth = info.data.get("client_auth_type")
        if auth is not None and auth != "RequireAndVerifyClientCert":
            fail(
                "needs client_auth_type RequireAndVerifyClientCert: with any other, a client"
                " may send no certificate to match"
            )
        if not value:
            fail("list at least one name: an empty list would refuse every client")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _one_curve(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        curves = tuple(dict.fromkeys(value))
        if len(curves) > 1:
            fail(
                "Python's ssl (SSLContext.set_ecdh_curve) can restrict the key exchange to"
                " one curve, not a list; name one curve, or leave curve_preferences out for"
                " OpenSSL's defaults"
            )
        return curves

    @field_validator("max_version")
    @classmethod
    def _max_not_below_min(cls, value: str, info: ValidationInfo) -> str:
        low = info.data.get("min_version")
        if low is not None and TLS_VERSIONS[value] < TLS_VERSIONS[low]:
            fail(f"must not be below min_version ({low}), got {value}")
        return value

    def settings(self) -> TLSSettings:
        return TLSSettings(
            cert_file=self.cert_file,
            key_file=self.key_file,
            cert=self.cert,
            key=self.key,
            client_auth_type=self.client_auth_type,
            client_ca_file=self.client_ca_file,
            client_ca=self.client_ca,
            cipher_suites=self.cipher_suites,
            curve_preferences=self.curve_preferences,
            min_version=self.min_version,
            max_version=self.max_version,
            prefer_server_cipher_suites=self.prefer_server_cipher_suites,
        )


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


class RateLimitConfig(StrictSection):
    """rate_limit: at most `burst` requests at once, then one per `interval`; 0 turns it off."""

    interval: GoDuration = 0.0
    burst: Count = 0


class WebConfig(StrictSection):
    """The whole web config file; an empty file means plain HTTP and no auth."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: Annotated[dict[UserName, BcryptHash], BeforeValidator(_users)] = Field(
        default_factory=dict
    )
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)


# --- errors -----------------------------------------------------------------------------------


def parse_web_config(text: str, path: str = "<web config>") -> WebConfig:
    """The web config in YAML text; ConfigError lists everything wrong with it, in file order."""
    document = load_yaml(text, path)
    if document.data is None:
        return WebConfig()
    if not isinstance(document.data, dict):
        raise ConfigError([f"expected a mapping at the top level, got {show(document.data)}"], path)
    return validate_document(WebConfig, document, path)


# --- what the server uses ---------------------------------------------------------------------


def decoy_hash(hashes: Iterable[bytes]) -> bytes:
    """A hash no password matches, at the cost most users have (the highest among ties).

    An unknown user is checked against it, so a wrong name takes as long as a wrong password
    for (most) real users: a fixed cost 10 decoy let a cost-12 user's existence show in the
    response time, four times longer. Only the cost field matters to bcrypt's running time.
    """
    costs = Counter(int(h[4:6]) for h in hashes if _BCRYPT_RE.fullmatch(h.decode()))
    cost = max(costs, key=lambda c: (costs[c], c)) if costs else _DEFAULT_COST
    return b"$2b$%02d$" % cost + _DECOY_TAIL


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes, remembering passwords that passed.

    bcrypt is slow on purpose; like exporter-toolkit, a successful check is cached (keyed on
    the user, the stored hash and a SHA-256 of the password) so a scrape every 15 s does not
    pay for it every time. Failures are never cached.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self.decoy = decoy_hash(self._users.values())
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
        if not _bcrypt_matches(password, hashed or self.decoy) or hashed is None:
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
class RateLimit:
    """The configured rate_limit and the bucket enforcing it."""

    interval: float
    burst: int
    limiter: RequestRateLimiter


@dataclass(frozen=True, slots=True)
class WebSecurity:
    """What the HTTP server enforces: TLS, client SANs, basic auth, a rate limit, headers."""

    path: str  # the web config file it was read from
    tls: ssl.SSLContext | None
    auth: BasicAuth | None
    headers: tuple[tuple[str, str], ...]
    client_auth_type: str
    allowed_sans: frozenset[str] | None = None
    rate_limit: RateLimit | None = None
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """Fields for the start-up log line."""
        fields: dict[str, object] = {
            "tls": self.tls is not None,
            "client_auth_type": self.client_auth_type if self.tls else "",
            "basic_auth": self.auth is not None,
        }
        if self.rate_limit is not None:
            fields["rate_limit"] = _describe_rate(self.rate_limit)
        return fields

    def keeping_state_of(self, running: WebSecurity | None) -> WebSecurity:
        """This config, with the running rate limiter when rate_limit did not change.

        A reload must not hand out a fresh burst (exporter-toolkit keeps its bucket too).
        """
        old = running.rate_limit if running is not None else None
        new = self.rate_limit
        if old is None or new is None or (old.interval, old.burst) != (new.interval, new.burst):
            return self
        return dataclasses.replace(self, rate_limit=old)


def _describe_rate(rate: RateLimit) -> str:
    text = f"burst {rate.burst}, then 1 request per {rate.interval:g}s"
    return text + " (burst 0: every request is refused)" if rate.burst == 0 else text


def build_security(config: WebConfig, path: str) -> WebSecurity:
    """What the server enforces for a parsed config; ConfigError lists every file problem."""
    base = Path(path).parent
    context: ssl.SSLContext | None = None
    warnings: list[str] = []
    tls = config.tls_server_config
    if tls is not None:
        built = build_tls_context(tls.settings(), base)
        if built.errors:
            raise ConfigError(built.errors, path)
        context, warnings = built.context, built.warnings
    rate = config.rate_limit
    return WebSecurity(
        path=path,
        tls=context,
        auth=BasicAuth(config.basic_auth_users) if config.basic_auth_users else None,
        headers=config.http_server_config.headers.items(),
        client_auth_type=tls.client_auth_type if tls else "",
        allowed_sans=(
            frozenset(tls.client_allowed_sans) if tls and tls.client_allowed_sans else None
        ),
        rate_limit=(
            RateLimit(rate.interval, rate.burst, RequestRateLimiter(rate.interval, rate.burst))
            if rate.interval > 0
            else None
        ),
        warnings=tuple(warnings),
    )


def load_web_security(path: str | os.PathLike[str]) -> WebSecurity:
    """Read, validate and build the web config file; ConfigError lists everything wrong."""
    text, name = read_config_text(path)
    return build_security(parse_web_config(text, name), name)
