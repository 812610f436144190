"""SigV4: who may sign (static and STS-issued credentials) and checking a request's signature."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from botocore.utils import normalize_url_path

from iot_simulator.protocol import AwsError, HttpRequest

ALGORITHM = "AWS4-HMAC-SHA256"


class AuthError(AwsError):
    """The request is not authenticated; ``code`` is the IoT (REST-JSON) error code."""

    status: int

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(code, message, status)


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class TemporaryCredentials:
    """Credentials issued by AssumeRole."""

    access_key: str
    secret_key: str
    session_token: str
    expiration: float  # epoch seconds, wall-clock time (botocore refreshes on real time)
    role_arn: str
    session_name: str


def parse_authorization(header: str) -> Authorization:
    """Split the header; raise AuthError(IncompleteSignatureException) if it is malformed."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            "IncompleteSignatureException",
            f"Authorization header requires the {ALGORITHM} algorithm",
            400,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AuthError(
            "IncompleteSignatureException",
            "Authorization header requires " + ", ".join(f"'{k}'" for k in missing) + " parameters",
            400,
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise AuthError(
            "IncompleteSignatureException",
            "Credential should be AKID/yyyymmdd/region/service/aws4_request",
            400,
        )
    return Authorization(
        access_key=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(request: HttpRequest, signed_headers: tuple[str, ...]) -> str:
    """The canonical request as botocore's SigV4Auth builds it."""
    headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed_headers
    )
    payload = (
        request.headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    )
    return "\n".join(
        (
            request.method,
            quote(normalize_url_path(request.path), safe="/~"),
            _canonical_query(request.query),
            headers,
            ";".join(signed_headers),
            payload,
        )
    )


class CredentialStore:
    """Known credentials: configured test keys plus those AssumeRole issued. Thread-safe."""

    def __init__(
        self,
        static: Mapping[str, str] | None,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        # None means "accept any well-formed signature", the default for tests and the demo.
        self._static = dict(static) if static is not None else None
        self._temporary: dict[str, TemporaryCredentials] = {}
        self._keys: dict[tuple[str, str, str, str, str], bytes] = {}
        self._lock = threading.Lock()
        self._wall_time = wall_time

    @property
    def strict(self) -> bool:
        return self._static is not None

    def issue(self, credentials: TemporaryCredentials) -> None:
        with self._lock:
            self._temporary[credentials.access_key] = credentials

    def _signing_key(self, secret: str, auth: Authorization) -> bytes:
        cache_key = (secret, auth.date, auth.region, auth.service, auth.access_key)
        with self._lock:
            key = self._keys.get(cache_key)
        if key is None:
            key = ("AWS4" + secret).encode()
            for part in (auth.date, auth.region, auth.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            with self._lock:
                if len(self._keys) > 1024:  # bound the cache; dates and keys rotate
                    self._keys.clear()
                self._keys[cache_key] = key
        return key

    def _secret_for(self, auth: Authorization, token: str | None) -> str | None:
        """The secret to verify with, None to accept unverified; raises if refused."""
        with self._lock:
            temporary = self._temporary.get(auth.access_key)
        if temporary is not None:
            if token != temporary.session_token:
                raise AuthError(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            if self._wall_time() >= temporary.expiration:
                raise AuthError(
                    "ExpiredTokenException", "The security token included in the request is expired"
                )
            return temporary.secret_key
        if self._static is None:
            return None
        secret = self._static.get(auth.access_key)
        if secret is None:
            raise AuthError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        return secret

    def authenticate(
        self, request: HttpRequest, *, region: str | None, service: str
    ) -> Authorization:
        """Check the request's SigV4 signature; return who signed it or raise AuthError."""
        header = request.headers.get("authorization")
        if not header:
            raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
        auth = parse_authorization(header)
        if "host" not in auth.signed_headers:
            raise AuthError("IncompleteSignatureException", "'Host' must be a signed header", 400)
        secret = self._secret_for(auth, request.headers.get("x-amz-security-token"))
        if secret is None:
            return auth
        if self.strict and region is not None and auth.region != region:
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{auth.region}'.",
            )
        if self.strict and auth.service != service:
            raise AuthError(
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{service}'.",
            )
        amz_date = request.headers.get("x-amz-date", "")
        string_to_sign = "\n".join(
            (
                ALGORITHM,
                amz_date,
                f"{auth.date}/{auth.region}/{auth.service}/aws4_request",
                hashlib.sha256(
                    canonical_request(request, auth.signed_headers).encode()
                ).hexdigest(),
            )
        )
        expected = hmac.new(
            self._signing_key(secret, auth), string_to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, auth.signature):
            raise AuthError(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )
        return auth
