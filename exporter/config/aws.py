"""aws: how to reach AWS, with credentials from boto3's chain unless a role is given."""

import re
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo, field_validator

from exporter.config.fields import PositiveDuration, Text, Url, check_not_empty, matching
from exporter.config.yamlfile import StrictSection, fail

DEFAULT_ROLE_SESSION_NAME = "iot-connectivity-exporter"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0

# botocore's own check, so a region it would refuse is caught at config time.
_REGION_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
_ROLE_ARN_RE = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII
)
_SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)

Region = Annotated[
    Text, matching(_REGION_RE, "expected an AWS region such as eu-west-1, got {got}")
]
RoleArn = Annotated[
    Text,
    matching(
        _ROLE_ARN_RE,
        "expected an IAM role ARN such as arn:aws:iam::123456789012:role/name, got {got}",
    ),
]
ExternalId = Annotated[
    Text,
    # No {got}: an external ID is a secret shared with the role's owner.
    matching(
        _EXTERNAL_ID_RE,
        "must be 2 to 1224 letters, digits or + = , . @ : / _ - (the value is not shown:"
        " an external ID is a shared secret)",
    ),
]
SessionName = Annotated[
    Text, matching(_SESSION_NAME_RE, "must be 2 to 64 letters, digits or + = , . @ _ -, got {got}")
]


class AwsSettings(StrictSection):
    """How to reach AWS; credentials come from boto3's standard chain unless a role is given."""

    region: Region | None = None
    endpoint_url: Url | None = None
    sts_endpoint_url: Url | None = None
    profile: Annotated[Text, AfterValidator(check_not_empty)] | None = None
    role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    role_session_name: SessionName = DEFAULT_ROLE_SESSION_NAME
    connect_timeout: PositiveDuration = DEFAULT_CONNECT_TIMEOUT
    read_timeout: PositiveDuration = DEFAULT_READ_TIMEOUT

    @field_validator("external_id")
    @classmethod
    def _external_id_needs_role(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A role_arn that failed its own check is missing from info.data: one error is enough.
        if value is not None and "role_arn" in info.data and info.data["role_arn"] is None:
            fail("only allowed together with role_arn")
        return value
