"""SigV4 checks and STS AssumeRole: unsigned, wrongly signed, unknown, temporary, expired."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from mypy_boto3_iot import IoTClient
from mypy_boto3_sts import STSClient

from iot_simulator import Simulator, SimulatorConfig
from iot_simulator.sigv4 import AuthError, parse_authorization

ClientFactory = Callable[..., IoTClient]
Poll = Callable[..., Any]
ROLE = "arn:aws:iam::123456789012:role/iot-exporter"
KEY, SECRET = "AKIDSTRICT", "strict-secret"


def raw(sim: Simulator, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    conn = http.client.HTTPConnection(urlsplit(sim.url).netloc, timeout=5)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def client(sim: Simulator, key: str, secret: str, token: str | None = None) -> IoTClient:
    return boto3.Session().client(
        "iot",
        endpoint_url=sim.url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_unsigned_request_is_refused(sim: Simulator) -> None:
    status, headers, body = raw(sim, "POST", "/things/thing-00001/connectivity-data", b"{}")
    assert status == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_unsigned_boto3_client_is_refused(sim: Simulator) -> None:
    unsigned = boto3.Session().client(
        "iot",
        endpoint_url=sim.url,
        region_name="eu-west-1",
        config=Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        unsigned.list_things()
    assert info.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_malformed_authorization_header(sim: Simulator) -> None:
    status, headers, _ = raw(sim, "GET", "/things", Authorization="Basic dXNlcjpwYXNz")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "IncompleteSignatureException")
    status, headers, _ = raw(sim, "GET", "/things", Authorization="AWS4-HMAC-SHA256 Credential=x")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "IncompleteSignatureException")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic abc", "algorithm"),
        ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab", "'Credential'"),
        (
            "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=ab",
            "Credential should",
        ),
    ],
)
def test_parse_authorization_errors(header: str, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        parse_authorization(header)


def test_any_signature_is_accepted_by_default(sim: Simulator) -> None:
    assert client(sim, "ANYKEY", "any-secret").list_things(maxResults=1)["things"]


@pytest.fixture
def strict() -> Any:
    with Simulator(SimulatorConfig(things=3, credentials={KEY: SECRET})) as sim:
        yield sim


def test_strict_credentials(strict: Simulator) -> None:
    good = client(strict, KEY, SECRET)
    assert good.get_thing_connectivity_data(thingName="thing-00001")["thingName"] == "thing-00001"
    # query strings and percent-encoded path segments are signed too
    assert good.list_things(maxResults=2, attributeName="model", attributeValue="m0")
    with pytest.raises(good.exceptions.ResourceNotFoundException):
        good.get_thing_connectivity_data(thingName="a:b_c-d")
    wrong_secret = client(strict, KEY, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        wrong_secret.list_things()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = client(strict, "AKIDUNKNOWN", SECRET)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        unknown.list_things()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    other_region = boto3.Session().client(
        "iot",
        endpoint_url=strict.url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError, match="scoped to a valid region"):
        other_region.list_things()
    assert strict.request_counts()[("ListThings", "InvalidSignatureException")] == 2


def sts_client(sim: Simulator, key: str = KEY, secret: str = SECRET) -> STSClient:
    return boto3.Session().client(
        "sts",
        endpoint_url=sim.url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_assume_role_issues_credentials_the_iot_api_accepts(strict: Simulator) -> None:
    sts = sts_client(strict)
    response = sts.assume_role(RoleArn=ROLE, RoleSessionName="exporter", DurationSeconds=900)
    creds = response["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert response["AssumedRoleUser"]["Arn"] == (
        "arn:aws:sts::123456789012:assumed-role/iot-exporter/exporter"
    )
    # Wall-clock expiry (botocore refreshes on real time), second precision on the wire.
    assert abs(creds["Expiration"].timestamp() - (time.time() + 900)) < 5
    iot = client(strict, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    iot.describe_thing(thingName="thing-00001")
    assert strict.access_key_counts()[creds["AccessKeyId"]] == 1
    assert strict.request_counts()[("AssumeRole", "ok")] == 1
    no_token = client(strict, creds["AccessKeyId"], creds["SecretAccessKey"])
    with pytest.raises(botocore.exceptions.ClientError) as info:
        no_token.describe_thing(thingName="thing-00001")
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    bad_secret = client(strict, creds["AccessKeyId"], "x", creds["SessionToken"])
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidSignatureException"):
        bad_secret.describe_thing(thingName="thing-00001")


def test_assume_role_through_botocore_refreshable_credentials(sim: Simulator) -> None:
    # What an exporter's assume-role support does: a session whose credentials come from STS.
    base = boto3.Session(aws_access_key_id="AKIDBASE", aws_secret_access_key="base-secret")

    def make_sts(*args: Any, **kwargs: Any) -> Any:
        return base.client("sts", endpoint_url=sim.url, region_name="eu-west-1")

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=make_sts,
        source_credentials=base.get_credentials(),
        role_arn=ROLE,
        extra_args={"RoleSessionName": "iot-connectivity-exporter"},
    )
    creds = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    session = boto3.Session()
    session._session._credentials = creds  # type: ignore[attr-defined]
    iot = session.client("iot", endpoint_url=sim.url, region_name="eu-west-1")
    iot.describe_thing(thingName="thing-00001")
    issued = [k for k in sim.access_key_counts() if k.startswith("ASIA")]
    assert len(issued) == 1


def test_expired_temporary_credentials(wait_for: Poll) -> None:
    config = SimulatorConfig(things=2, sts_duration_override_seconds=0.3)
    with Simulator(config) as sim:
        creds = sts_client(sim).assume_role(RoleArn=ROLE, RoleSessionName="short")["Credentials"]
        iot = client(sim, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

        def expired() -> bool:
            try:
                iot.describe_thing(thingName="thing-00001")
            except botocore.exceptions.ClientError as error:
                return error.response["Error"]["Code"] == "ExpiredTokenException"
            return False

        wait_for(expired, timeout=5)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"RoleArn": "not-an-arn-at-all-really", "RoleSessionName": "ok"}, "ValidationError"),
        ({"RoleArn": ROLE, "RoleSessionName": "bad name"}, "ValidationError"),
        ({"RoleArn": ROLE, "RoleSessionName": "ok", "DurationSeconds": 7200}, "ValidationError"),
        ({"RoleArn": ROLE, "RoleSessionName": "ok", "ExternalId": "wrong-id"}, "AccessDenied"),
    ],
)
def test_assume_role_errors(kwargs: dict[str, Any], code: str) -> None:
    config = SimulatorConfig(things=1, sts_max_session_duration=3600, sts_external_id="the-id")
    with Simulator(config) as sim:
        sts = sts_client(sim)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            sts.assume_role(**kwargs)
        assert info.value.response["Error"]["Code"] == code
        assert sts.assume_role(RoleArn=ROLE, RoleSessionName="ok", ExternalId="the-id")


def test_sts_refuses_bad_signatures_and_unknown_actions(strict: Simulator) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sts_client(strict, KEY, "wrong").assume_role(RoleArn=ROLE, RoleSessionName="x1")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        sts_client(strict).get_caller_identity()
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    status, _, body = raw(strict, "POST", "/", b"Action=AssumeRole")
    assert status == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in body
