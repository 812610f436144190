"""The YAML config: frozen pydantic models, loading, and every error at once with its path."""

import math
import os
import re
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from exporter.yamlfile import (
    ERROR_TYPE,
    ConfigError,
    StrictSection,
    fail,
    load_yaml,
    mapping_or_empty,
    number_text,
    read_config_text,
    show,
    validate_document,
)

DEFAULT_ROLE_SESSION_NAME = "iot-connectivity-exporter"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0
DEFAULT_INTERVAL = 60.0
MIN_INTERVAL = 1.0
DEFAULT_MAX_REQUESTS_PER_SECOND = 50.0
# AWS raises the 350 TPS quota on request; beyond this a typo is likelier than a real quota.
MAX_REQUESTS_PER_SECOND = 10_000
DEFAULT_CONCURRENCY = 16
MAX_CONCURRENCY = 512
STALENESS_INTERVALS = 3
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES = 10

# Label names the exporter or Prometheus already sets on the series, with why.
RESERVED_LABELS = {
    "thing_name": "the exporter sets it",
    "reason": "the exporter sets it",
    "error_code": "the exporter sets it",
    "job": "Prometheus sets it when it scrapes",
    "instance": "Prometheus sets it when it scrapes",
}

_FROM_FILE = "from_file"  # validation-context key: the data came from YAML, not Python code
_DERIVED = object()  # staleness not given: derive it from the interval

_THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# botocore's own check, so a region it would refuse is caught at config time.
_REGION_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
_ROLE_ARN_RE = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}", re.ASCII
)
_SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)

_DURATION_RE = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_DAY_MS = 86_400_000
_UNITS_MS = (
    ("y", 365 * _DAY_MS),
    ("w", 7 * _DAY_MS),
    ("d", _DAY_MS),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
# Prometheus keeps durations as int64 nanoseconds; agree with it on what is too long.
_MAX_DURATION_MS = (2**63 - 1) // 1_000_000


# --- durations --------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as 1h30m, 5m, 30s, 500ms, 1d, 1w, 1y, or 0."""
    if text == "0":
        return 0.0
    match = _DURATION_RE.fullmatch(text) if text else None
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    total_ms = sum(
        int(count) * size
        for count, (_, size) in zip(match.groups(), _UNITS_MS, strict=True)
        if count is not None
    )
    if total_ms > _MAX_DURATION_MS:
        raise ValueError(f"duration out of range: {text!r}")
    return total_ms / 1000


def format_duration(seconds: float) -> str:
    """The Prometheus spelling of a duration, to the millisecond: 90 -> 1m30s."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    remaining = round(seconds * 1000)
    if remaining == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS_MS:
        # As in Prometheus: 90d reads better than 12w6d, so y and w only when exact.
        if unit in ("y", "w") and remaining % size:
            continue
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# --- field validators -------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # YAML's true/false are Python ints; never let them pass as numbers.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _not_a_string(value: Any) -> NoReturn:
    hint = " (quote it: YAML reads yes, no, on, off, true, false as booleans)"
    fail(f"expected a string, got {show(value)}{hint if isinstance(value, bool) else ''}")


def _text(value: Any) -> str:
    """A string; a YAML number counts as the text it was written as (floor: 3 is "3")."""
    if isinstance(value, str):
        return value
    if _is_number(value):
        return number_text(value)
    _not_a_string(value)


def _matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """Check a whole string against pattern; message has a {got} for the value."""

    def check(value: str) -> str:
        if pattern.fullmatch(value) is None:
            fail(message.format(got=show(value)))
        return value

    return AfterValidator(check)


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        fail(f"expected an http:// or https:// URL, got {show(value)}")
    return value


def _check_not_empty(value: str) -> str:
    if not value:
        fail("must not be empty")
    return value


def _duration(value: Any, info: ValidationInfo) -> float:
    """Seconds from a duration string; Python callers may also give seconds as a number."""
    expected = "expected a duration such as 30s"
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            fail(f"{expected}, got {show(value)}")
    from_file = bool(info.context and info.context.get(_FROM_FILE))
    if not _is_number(value) or from_file:
        fail(f"{expected}, got {show(value)}{_unit_hint(value)}")
    return float(value)


def _unit_hint(value: Any) -> str:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        return ""
    written = f"{int(value)}s" if isinstance(value, int) else format_duration(value)
    return f"; write {written}"


def _at_least(minimum: float) -> AfterValidator:
    def check(seconds: float) -> float:
        if seconds < minimum:
            fail(f"must be at least {format_duration(minimum)}, got {format_duration(seconds)}")
        return seconds

    return AfterValidator(check)


def _check_positive_duration(seconds: float) -> float:
    if seconds <= 0:
        fail(f"must be longer than 0s, got {format_duration(seconds)}")
    return seconds


def _number_in(low: float, high: float, *, low_open: bool = False) -> BeforeValidator:
    bounds = f"greater than {low} and at most {high}" if low_open else f"between {low} and {high}"

    def check(value: Any) -> float:
        if not _is_number(value):
            fail(f"expected a number, got {show(value)}")
        # Written so that NaN fails too.
        if not ((low < value if low_open else low <= value) and value <= high):
            fail(f"must be {bounds}, got {show(value)}")
        return float(value)

    return BeforeValidator(check)


def _integer_in(low: int, high: int) -> BeforeValidator:
    def check(value: Any) -> int:
        if not _is_number(value) or not isinstance(value, int):
            fail(f"expected an integer, got {show(value)}")
        if not low <= value <= high:
            fail(f"must be between {low} and {high}, got {show(value)}")
        return int(value)

    return BeforeValidator(check)


def _label_name(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"expected a label name (a string), got {show(value)}")
    if _LABEL_NAME_RE.fullmatch(value) is None:
        fail(f"invalid label name {show(value)}: use letters, digits and _, not a digit first")
    if value in RESERVED_LABELS:
        fail(f'reserved label name "{value}": {RESERVED_LABELS[value]}')
    if value.startswith("__"):
        fail(f'reserved label name "{value}": names starting with __ belong to Prometheus')
    return value


def _label_value(value: Any) -> str:
    if isinstance(value, str) or _is_number(value):
        return _text(value)
    _not_a_string(value)


def _things(value: Any) -> Any:
    if value is None or (isinstance(value, list | tuple) and not value):
        fail("list at least one thing")
    if not isinstance(value, list | tuple):
        fail(f"expected a list of things, got {show(value)}")
    return tuple(value)


Text = Annotated[str, BeforeValidator(_text)]
Region = Annotated[
    Text, _matching(_REGION_RE, "expected an AWS region such as eu-west-1, got {got}")
]
Url = Annotated[Text, AfterValidator(_check_url)]
RoleArn = Annotated[
    Text,
    _matching(
        _ROLE_ARN_RE,
        "expected an IAM role ARN such as arn:aws:iam::123456789012:role/name, got {got}",
    ),
]
ExternalId = Annotated[
    Text,
    # No {got}: an external ID is a secret shared with the role's owner.
    _matching(
        _EXTERNAL_ID_RE,
        "must be 2 to 1224 letters, digits or + = , . @ : / _ - (the value is not shown:"
        " an external ID is a shared secret)",
    ),
]
SessionName = Annotated[
    Text, _matching(_SESSION_NAME_RE, "must be 2 to 64 letters, digits or + = , . @ _ -, got {got}")
]
Duration = Annotated[float, BeforeValidator(_duration)]
Timeout = Annotated[Duration, AfterValidator(_check_positive_duration)]
ThingName = Annotated[
    Text,
    _matching(_THING_NAME_RE, "invalid thing name {got}: use 1 to 128 letters, digits or : _ -"),
]
LabelName = Annotated[str, BeforeValidator(_label_name)]
LabelValue = Annotated[str, BeforeValidator(_label_value)]
Labels = Annotated[dict[LabelName, LabelValue], mapping_or_empty("label names to values")]


# --- models -----------------------------------------------------------------------------------


class AwsSettings(StrictSection):
    """How to reach AWS; credentials come from boto3's standard chain unless a role is given."""

    region: Region | None = None
    endpoint_url: Url | None = None
    sts_endpoint_url: Url | None = None
    profile: Annotated[Text, AfterValidator(_check_not_empty)] | None = None
    role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    role_session_name: SessionName = DEFAULT_ROLE_SESSION_NAME
    connect_timeout: Timeout = DEFAULT_CONNECT_TIMEOUT
    read_timeout: Timeout = DEFAULT_READ_TIMEOUT

    @field_validator("external_id")
    @classmethod
    def _external_id_needs_role(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A role_arn that failed its own check is missing from info.data: one error is enough.
        if value is not None and "role_arn" in info.data and info.data["role_arn"] is None:
            fail("only allowed together with role_arn")
        return value


class PollSettings(StrictSection):
    """How often and how hard to poll; the request budget protects the shared API quota."""

    interval: Annotated[Duration, _at_least(MIN_INTERVAL)] = DEFAULT_INTERVAL
    max_requests_per_second: Annotated[
        float, _number_in(0, MAX_REQUESTS_PER_SECOND, low_open=True)
    ] = DEFAULT_MAX_REQUESTS_PER_SECOND
    concurrency: Annotated[int, _integer_in(1, MAX_CONCURRENCY)] = DEFAULT_CONCURRENCY
    staleness: Duration = Field(default=_DERIVED, validate_default=True)
    max_retries: Annotated[int, _integer_in(0, MAX_RETRIES)] = DEFAULT_MAX_RETRIES

    @field_validator("staleness", mode="wrap")
    @classmethod
    def _staleness(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> float:
        # interval is absent from info.data when it failed its own check.
        interval: float | None = info.data.get("interval")
        if value is _DERIVED:
            return STALENESS_INTERVALS * (DEFAULT_INTERVAL if interval is None else interval)
        staleness: float = handler(value)
        if interval is not None and staleness < interval:
            fail(
                f"must be at least poll.interval ({format_duration(interval)}),"
                f" got {format_duration(staleness)}"
            )
        return staleness


class ThingSettings(StrictSection):
    """One thing to poll, with labels for its iot_thing_connected series."""

    name: ThingName
    labels: Labels = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):  # booleans too, so the name check explains them
            return {"name": data}
        if not isinstance(data, dict | cls):
            fail(f"expected a thing name or a mapping with name and labels, got {show(data)}")
        return data


class Config(StrictSection):
    """The whole config file."""

    aws: AwsSettings = Field(default_factory=AwsSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    labels: Labels = Field(default_factory=dict)
    things: Annotated[tuple[ThingSettings, ...], BeforeValidator(_things)]

    @field_validator("things", mode="wrap")
    @classmethod
    def _unique_things(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Checked on the raw items so duplicates show even when another thing is invalid.
        duplicates = list(_duplicate_things(value))
        try:
            things = handler(value)
        except ValidationError as exc:
            _reraise(cls.__name__, exc.errors(), duplicates)
        if duplicates:
            _reraise(cls.__name__, [], duplicates)
        return things

    def label_names(self) -> tuple[str, ...]:
        """Every configured label name, static and per thing, sorted."""
        names = set(self.labels).union(*(thing.labels for thing in self.things))
        return tuple(sorted(names))


def _raw_thing_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else item
    if isinstance(name, ThingSettings):
        return name.name
    if isinstance(name, str) or _is_number(name):
        return _text(name)
    return None


def _duplicate_things(items: Any) -> Iterator[InitErrorDetails]:
    if not isinstance(items, list | tuple):
        return
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        name = _raw_thing_name(item)
        if name is None or _THING_NAME_RE.fullmatch(name) is None:
            continue  # an invalid name has its own error
        if name in first:
            message = f'duplicate thing "{name}" (first at things[{first[name]}])'
            yield {
                "type": PydanticCustomError(ERROR_TYPE, "{message}", {"message": message}),
                "loc": (index, "name"),
                "input": item,
            }
        else:
            first[name] = index


def _reraise(title: str, errors: list[ErrorDetails], extra: list[InitErrorDetails]) -> NoReturn:
    details = [_init_details(error) for error in errors]
    raise ValidationError.from_exception_data(title, [*details, *extra])


def _init_details(error: ErrorDetails) -> InitErrorDetails:
    if error["type"] == ERROR_TYPE:
        custom = PydanticCustomError(ERROR_TYPE, "{message}", {"message": error["msg"]})
        return {"type": custom, "loc": error["loc"], "input": error["input"]}
    details: InitErrorDetails = {
        "type": error["type"],
        "loc": error["loc"],
        "input": error["input"],
    }
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


# --- errors -----------------------------------------------------------------------------------


# --- loading ----------------------------------------------------------------------------------


def parse_config(text: str, source: str = "<config>") -> Config:
    """The config in YAML text; ConfigError lists everything wrong with it, in file order."""
    document = load_yaml(text, source)
    if document.data is None:
        raise ConfigError(["the file is empty: it needs at least a list of things"], source)
    if not isinstance(document.data, dict):
        problem = f"expected a mapping at the top level, got {show(document.data)}"
        raise ConfigError([problem], source)
    return validate_document(Config, document, source, context={_FROM_FILE: True})


def load_config(path: str | os.PathLike[str]) -> Config:
    """The config in a YAML file; ConfigError also when the file cannot be read."""
    return parse_config(*read_config_text(path))
