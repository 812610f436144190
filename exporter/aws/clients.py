"""The boto3 side: sessions, credentials (chain or assumed role), IoT and SQS clients, errors."""

from __future__ import annotations

import datetime as dt
import socket
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config as BotocoreConfig
from botocore.credentials import CredentialProvider, Credentials, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from botocore.loaders import create_loader
from botocore.model import ServiceModel, StringShape
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp

from exporter import __version__
from exporter.config.aws import AwsSettings
from exporter.config.events import EventsSettings

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_sqs import SQSClient

USER_AGENT = f"iot-connectivity-exporter/{__version__}"
ASSUMED_ROLE_SECONDS = 3600
OTHER_CALLERS = 8


class AwsSetupError(Exception):
    """The AWS client could not be built from the settings (no region, bad profile, ...)."""


def known_disconnect_reasons() -> tuple[str, ...]:
    """Every DisconnectReasonValue botocore's model knows; AWS may add more at any time."""
    # Straight from botocore's bundled model: a session would read the AWS config files, and a
    # broken ~/.aws/credentials must be reported by make_session, not crash this lookup.
    model = ServiceModel(create_loader().load_service_model("iot", "service-2"), "iot")
    shape = model.shape_for("DisconnectReasonValue")
    return tuple(shape.enum) if isinstance(shape, StringShape) else ()


def client_config(settings: AwsSettings, max_pool_connections: int) -> BotocoreConfig:
    """botocore settings for a poller that owns retries and pacing itself."""
    return BotocoreConfig(
        # One attempt: the rate limiter owns backoff. botocore retrying on its own would
        # multiply load behind the budget's back exactly when AWS asks us to slow down.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # The live poller's workers, plus one each for discovery, index and aggregates jobs.
        max_pool_connections=max_pool_connections + OTHER_CALLERS,
        tcp_keepalive=True,
        # The request is one thing name we validated at config load; re-validating it
        # on every call costs CPU at 350 calls/s for nothing.
        parameter_validation=False,
        user_agent_extra=USER_AGENT,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def epoch_or_parsed_timestamp(value: Any) -> Any:
    """A botocore timestamp parser that keeps epoch numbers as float seconds.

    GetThingConnectivityData answers with epoch seconds. botocore's default parser turns
    them into a datetime with dateutil's tzlocal (about 9 us a call here) only for the
    live poller to turn it straight back into seconds. Anything but a number goes to
    botocore's parser, so a garbled value still raises ValueError.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_timestamp(value)


def make_session(
    settings: AwsSettings,
    *,
    static_credentials: tuple[str, str] | None = None,
    epoch_timestamps: bool = False,
) -> boto3.Session:
    """A boto3 session: the standard credential chain, or a refreshing assumed role on top.

    `static_credentials` exists for the demo's in-process simulator only; real deployments
    take credentials from the chain (environment, profile, IRSA web identity, instance role).
    With `epoch_timestamps`, clients of this session return numeric timestamps as float
    seconds instead of datetimes (see `epoch_or_parsed_timestamp`).
    """
    try:
        return _session(settings, static_credentials, epoch_timestamps=epoch_timestamps)
    except BotoCoreError as error:  # e.g. ProfileNotFound: a setup error, not a crash
        raise AwsSetupError(f"aws: {error}") from error


def _session(
    settings: AwsSettings,
    static_credentials: tuple[str, str] | None,
    *,
    epoch_timestamps: bool,
) -> boto3.Session:
    core = botocore.session.Session(profile=settings.profile)
    if epoch_timestamps:
        # A per-session component, so only this session's clients see floats.
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=epoch_or_parsed_timestamp
        )
    if static_credentials is not None:
        core.set_credentials(*static_credentials)
    session = boto3.Session(botocore_session=core, region_name=settings.region)
    if not session.region_name:
        raise AwsSetupError(
            "aws.region: no region configured; set aws.region, AWS_REGION or the profile's region"
        )
    if settings.role_arn:
        provider = AssumeRoleProvider(session, settings)
        core.get_component("credential_provider").insert_before("env", provider)
    return session


def make_iot_client(
    settings: AwsSettings,
    max_pool_connections: int,
    *,
    static_credentials: tuple[str, str] | None = None,
) -> IoTClient:
    # The poller reads timestamps as seconds anyway (sources.live.parse_response takes both).
    session = make_session(settings, static_credentials=static_credentials, epoch_timestamps=True)
    try:
        return session.client(
            "iot",
            endpoint_url=settings.endpoint_url,
            config=client_config(settings, max_pool_connections),
        )
    except ClientError as error:
        # Creating the client resolves credentials, which assumes role_arn through STS.
        raise AwsSetupError(f"aws.role_arn: cannot assume the role: {error}") from error
    except (NoRegionError, BotoCoreError, ValueError) as error:
        raise AwsSetupError(f"aws: cannot create the IoT client: {error}") from error


class AssumeRoleProvider(CredentialProvider):
    """Assumes `role_arn` with the base chain's credentials and refreshes before expiry.

    botocore's RefreshableCredentials calls back into `_assume` when the credentials are
    within its refresh window (15 minutes before expiry), so a long-running exporter
    never polls with expired credentials.
    """

    METHOD = "assume-role-config"
    CANONICAL_NAME = "iot-exporter-assume-role"

    def __init__(self, base_session: boto3.Session, settings: AwsSettings) -> None:
        super().__init__()
        self._settings = settings
        # The base session is built before the provider is inserted, so the STS client
        # signs with the ordinary chain (IRSA, instance role, ...), not with itself.
        base = botocore.session.Session(profile=settings.profile)
        self._sts = boto3.Session(
            botocore_session=base, region_name=base_session.region_name
        ).client(
            "sts",
            endpoint_url=settings.sts_endpoint_url,
            config=BotocoreConfig(
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                user_agent_extra=USER_AGENT,
            ),
        )

    def load(self) -> Credentials:
        return RefreshableCredentials.create_from_metadata(
            metadata=self._assume(), refresh_using=self._assume, method=self.METHOD
        )

    def _assume(self) -> dict[str, str]:
        request: dict[str, Any] = {
            "RoleArn": self._settings.role_arn,
            "RoleSessionName": self._settings.role_session_name,
            "DurationSeconds": ASSUMED_ROLE_SECONDS,
        }
        if self._settings.external_id:
            request["ExternalId"] = self._settings.external_id
        credentials = self._sts.assume_role(**request)["Credentials"]
        expiry: dt.datetime = credentials["Expiration"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }


# Transport failures, most specific first, by the code they show as in metrics and logs.
_TRANSPORT_ERROR_CODES: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...
] = (
    ((ReadTimeoutError, ConnectTimeoutError), "Timeout"),
    ((EndpointConnectionError, ConnectionClosedError), "ConnectionError"),
    # botocore raises ValueError for a timestamp it cannot represent (a garbled answer).
    ((ResponseParserError, ValueError), "InvalidResponse"),
    (NoCredentialsError, "NoCredentials"),
)


def error_code(error: BaseException) -> str:
    """A short, stable code for any failure of an AWS call, used as a metric label."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "UnknownClientError")
    if isinstance(error, EndpointConnectionError) and _unresolved(error):
        return "EndpointNotResolved"
    for kinds, code in _TRANSPORT_ERROR_CODES:
        if isinstance(error, kinds):
            return code
    return type(error).__name__ if isinstance(error, BotoCoreError) else "InternalError"


def _unresolved(error: EndpointConnectionError) -> bool:
    """Whether the connection failed on the host name's lookup (not a refused connection)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return True
        cause = cause.__cause__ or cause.__context__ or getattr(cause, "kwargs", {}).get("error")
        if not isinstance(cause, BaseException):
            return False
    return False


def make_sqs_client(
    settings: AwsSettings,
    events: EventsSettings,
    *,
    static_credentials: tuple[str, str] | None = None,
) -> SQSClient:
    """The SQS client the event source long-polls with: aws.*'s session and credentials,
    events.endpoint_url, and a read timeout that outlasts a long poll (events.wait_time)."""
    session = make_session(settings, static_credentials=static_credentials)
    config = client_config(settings, events.consumers).merge(
        BotocoreConfig(read_timeout=settings.read_timeout + events.wait_time)
    )
    # The queue's own region, from its URL: a queue in another region than the things
    # (aws.region) is still reached, and signed, where it is.
    region = events.region if events.endpoint_url is None else None
    try:
        return session.client(
            "sqs", endpoint_url=events.endpoint_url, region_name=region, config=config
        )
    except ClientError as error:
        raise AwsSetupError(f"aws.role_arn: cannot assume the role: {error}") from error
    except (NoRegionError, BotoCoreError, ValueError) as error:
        raise AwsSetupError(f"events: cannot create the SQS client: {error}") from error
