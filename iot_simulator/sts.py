"""STS AssumeRole over the query protocol (form body in, XML out), issuing temporary credentials."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from iot_simulator.config import SimulatorConfig
from iot_simulator.protocol import AwsError
from iot_simulator.sigv4 import CredentialStore, TemporaryCredentials

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}")
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}")
# The query protocol's own codes for the front-door errors (the REST-JSON names differ).
QUERY_CODES: Mapping[str, str] = {
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "IncompleteSignatureException": "IncompleteSignature",
    "ExpiredTokenException": "ExpiredToken",
}


class StsError(AwsError):
    """An STS error response."""

    status: int

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message, status)


def error_xml(code: str, message: str) -> bytes:
    sender = "Sender"
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{sender}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sts:
    """AssumeRole: any role in the simulated account may be assumed (no IAM to consult)."""

    def __init__(
        self,
        config: SimulatorConfig,
        store: CredentialStore,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._wall_time = wall_time

    def handle(self, form: Mapping[str, str]) -> bytes:
        """Answer one query-protocol request; raise StsError for a refusal."""
        action = form.get("Action")
        if action != "AssumeRole":
            raise StsError(
                "InvalidAction", f"Could not find operation {action} for version 2011-06-15"
            )
        return self.assume_role(form)

    def _validate(self, form: Mapping[str, str]) -> tuple[str, str, int]:
        role_arn = form.get("RoleArn", "")
        session_name = form.get("RoleSessionName", "")
        errors = []
        if not _ROLE_ARN_RE.fullmatch(role_arn):
            errors.append(
                f"Value '{role_arn}' at 'roleArn' failed to satisfy constraint: invalid role ARN"
            )
        if not _SESSION_NAME_RE.fullmatch(session_name):
            errors.append(
                f"Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: [\\w+=,.@-]* and length 2 to 64"
            )
        try:
            duration = int(form.get("DurationSeconds", "3600"))
        except ValueError:
            duration = -1
        if not 900 <= duration <= 43200:
            errors.append(
                f"Value '{form.get('DurationSeconds')}' at 'durationSeconds' failed to satisfy "
                "constraint: Member must have value between 900 and 43200"
            )
        external_id = form.get("ExternalId")
        if external_id is not None and not _EXTERNAL_ID_RE.fullmatch(external_id):
            errors.append("Value at 'externalId' failed to satisfy constraint: invalid external id")
        if errors:
            count = len(errors)
            raise StsError(
                "ValidationError",
                f"{count} validation error{'s' if count > 1 else ''} detected: "
                + "; ".join(errors),
            )
        return role_arn, session_name, duration

    def assume_role(self, form: Mapping[str, str]) -> bytes:
        role_arn, session_name, duration = self._validate(form)
        if duration > self._config.sts_max_session_duration:
            raise StsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        wanted_id = self._config.sts_external_id
        if wanted_id is not None and form.get("ExternalId") != wanted_id:
            raise StsError(
                "AccessDenied",
                f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                403,
            )
        lifetime = self._config.sts_duration_override_seconds or float(duration)
        credentials = TemporaryCredentials(
            access_key="ASIA" + secrets.token_hex(8).upper(),
            secret_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(96),
            expiration=self._wall_time() + lifetime,
            role_arn=role_arn,
            session_name=session_name,
        )
        self._store.issue(credentials)
        role_name = role_arn.rsplit("/", 1)[-1]
        account = role_arn.split(":")[4]
        role_id = "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, role_arn).hex[:17].upper()
        return (
            f'<AssumeRoleResponse xmlns="{NAMESPACE}"><AssumeRoleResult>'
            f"<Credentials><AccessKeyId>{credentials.access_key}</AccessKeyId>"
            f"<SecretAccessKey>{escape(credentials.secret_key)}</SecretAccessKey>"
            f"<SessionToken>{escape(credentials.session_token)}</SessionToken>"
            f"<Expiration>{_iso(credentials.expiration)}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>{role_id}:{escape(session_name)}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(session_name)}</Arn>"
            f"</AssumedRoleUser><PackedPolicySize>0</PackedPolicySize></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            f"</AssumeRoleResponse>"
        ).encode()
