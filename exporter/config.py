"""The YAML config: frozen pydantic models, loading, and every error at once with its path."""

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, NoReturn, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from exporter.yamlfile import (
    ERROR_TYPE,
    ConfigError,
    ListOfModels,
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
MODES = ("live", "index")
DEFAULT_DISCOVERY_INTERVAL = 300.0
DEFAULT_AGGREGATES_INTERVAL = 60.0
# Most things one discovery source may name: a query that matches the whole account by
# mistake must not grow memory, series and calls without bound. The static list has no
# cap: its size is written in the file.
DEFAULT_MAX_THINGS = 100_000
MAX_MAX_THINGS = 10_000_000
DEFAULT_MAX_BUCKETS = 100
MAX_BUCKETS = 10_000  # GetBucketsAggregation's own limit
# Requests per second each AWS operation may spend, well under AWS's quotas, which the
# account's devices and back-ends share: 25 per second for ListThingsInThingGroup, 10 for
# ListThings and ListThingGroups. AWS documents no rate for the fleet-index queries, so
# theirs leave room for other callers. GetThingConnectivityData's budget is
# poll.max_requests_per_second, against a quota of 350.
POLL_OPERATION = "GetThingConnectivityData"
DEFAULT_BUDGETS: dict[str, float] = {
    "SearchIndex": 10.0,
    "ListThingsInThingGroup": 5.0,
    "ListThings": 2.0,
    "ListThingGroups": 2.0,
    "DescribeThingGroup": 2.0,
    "GetStatistics": 1.0,
    "GetBucketsAggregation": 1.0,
    # Lifecycle events (events.*). SQS has no practical quota on these; the budgets cap
    # what a runaway loop could cost. Each ReceiveMessage brings up to 10 events, so
    # 50/s is 500 events/s before the consumers wait; raise it for a busier queue.
    "ReceiveMessage": 50.0,
    "DeleteMessageBatch": 50.0,
    "GetQueueAttributes": 1.0,
}
# events.*: consumer threads long-polling the queue, and the keys the dedupe set keeps.
DEFAULT_EVENT_CONSUMERS = 1
MAX_EVENT_CONSUMERS = 16
DEFAULT_DEDUPE_KEYS = 100_000
MAX_DEDUPE_KEYS = 10_000_000
# SQS's own bounds for a visibility timeout: 0 to 12 hours.
MAX_VISIBILITY_TIMEOUT = 43_200.0
# A ReceiveMessage long poll: SQS allows up to 20 s. The longest wait costs least; a shorter
# one lets a consumer that a reload closed end sooner (it finishes its current poll first).
DEFAULT_EVENT_WAIT_TIME = 20.0
MIN_EVENT_WAIT_TIME = 1.0
MAX_EVENT_WAIT_TIME = 20.0

# The sources the exporter names itself, with what they are; a discovery source may not
# take one of these names (exporter.sources checks that its own names are all here).
RESERVED_SOURCE_NAMES = {
    "static": "the static list's source",
    "live": "the live poller",
    "aggregates": "the fleet aggregates' source",
    "events": "the lifecycle events' source",
}

# Label names the exporter or Prometheus already sets on the series, with why.
RESERVED_LABELS = {
    "thing_name": "the exporter sets it",
    "reason": "the exporter sets it",
    "error_code": "the exporter sets it",
    "job": "Prometheus sets it when it scrapes",
    "instance": "Prometheus sets it when it scrapes",
    "query": "the exporter sets it on the fleet aggregates",
}
# Labels iot_thing_info always carries; no registry attribute may take them.
INFO_LABELS = ("thing_name", "thing_type")

_FROM_FILE = "from_file"  # validation-context key: the data came from YAML, not Python code
_DERIVED = object()  # staleness not given: derive it from the interval

THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
# Thing group and thing type names follow the thing-name rule.
_REGISTRY_NAME_RE = THING_NAME_RE
_ATTRIBUTE_NAME_RE = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
_ATTRIBUTE_VALUE_RE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
_SOURCE_NAME_RE = re.compile(r"[a-zA-Z0-9_.:/=-]{1,128}")
_AGGREGATION_FIELD_RE = re.compile(
    r"thingTypeName|thingGroupNames|attributes\.[a-zA-Z0-9_.,@/:#-]{1,128}"
)
MAX_QUERY_LENGTH = 2048
_QUERY_RE = re.compile(f"[^\x00-\x1f\x7f]{{1,{MAX_QUERY_LENGTH}}}")
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
    if not _is_number(value) or _from_file(info):
        fail(f"{expected}, got {show(value)}{_unit_hint(value)}")
    return float(value)


def _from_file(info: ValidationInfo) -> bool:
    """Validating a YAML file (where a bare number is no duration), not Python values."""
    return bool(info.context and info.context.get(_FROM_FILE))


def _unit_hint(value: Any) -> str:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        return ""
    written = f"{int(value)}s" if isinstance(value, int) else format_duration(value)
    return f"; write {written}"


def _seconds_within(minimum: float | None = None, maximum: float | None = None) -> AfterValidator:
    """A duration's bounds, each inclusive and each optional."""

    def check(seconds: float) -> float:
        if minimum is not None and seconds < minimum:
            fail(f"must be at least {format_duration(minimum)}, got {format_duration(seconds)}")
        if maximum is not None and seconds > maximum:
            fail(f"must be at most {format_duration(maximum)}, got {format_duration(seconds)}")
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


def _label_name_problem(value: Any) -> str | None:
    """What is wrong with a label name, or None; the static list's fast path asks too."""
    if not isinstance(value, str):
        return f"expected a label name (a string), got {show(value)}"
    if _LABEL_NAME_RE.fullmatch(value) is None:
        return f"invalid label name {show(value)}: use letters, digits and _, not a digit first"
    if value in RESERVED_LABELS:
        return f'reserved label name "{value}": {RESERVED_LABELS[value]}'
    if value.startswith("__"):
        return f'reserved label name "{value}": names starting with __ belong to Prometheus'
    return None


def _label_name(value: Any) -> str:
    problem = _label_name_problem(value)
    if problem is not None:
        fail(problem)
    return str(value)


def _label_value(value: Any) -> str:
    if isinstance(value, str) or _is_number(value):
        return _text(value)
    _not_a_string(value)


def _error(loc: tuple[int | str, ...], message: str) -> InitErrorDetails:
    custom = PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})
    return {"type": custom, "loc": loc, "input": None}


def _list_of(what: str) -> BeforeValidator:
    """A YAML list; an all-commented-out one (null) is empty."""

    def check(value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            fail(f"expected a list of {what}, got {show(value)}")
        return tuple(value)

    return BeforeValidator(check)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(f"expected true or false, got {show(value)}")
    return value


def _one_of(choices: tuple[str, ...]) -> BeforeValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            fail(f"expected {' or '.join(choices)}, got {show(value)}")
        return value

    return BeforeValidator(check)


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
Interval = Annotated[Duration, _seconds_within(MIN_INTERVAL)]
Timeout = Annotated[Duration, AfterValidator(_check_positive_duration)]
ThingName = Annotated[
    Text,
    _matching(THING_NAME_RE, "invalid thing name {got}: use 1 to 128 letters, digits or : _ -"),
]
GroupName = Annotated[
    Text,
    _matching(
        _REGISTRY_NAME_RE, "invalid thing group name {got}: use 1 to 128 letters, digits or : _ -"
    ),
]
TypeName = Annotated[
    Text,
    _matching(
        _REGISTRY_NAME_RE, "invalid thing type name {got}: use 1 to 128 letters, digits or : _ -"
    ),
]
AttributeName = Annotated[
    Text,
    _matching(
        _ATTRIBUTE_NAME_RE,
        "invalid attribute name {got}: use 1 to 128 letters, digits or _ . , @ / : # -",
    ),
]
AttributeValue = Annotated[
    Text,
    _matching(
        _ATTRIBUTE_VALUE_RE,
        "invalid attribute value {got}: use up to 800 letters, digits or _ . , @ / : # = [ ] -",
    ),
]
QueryString = Annotated[
    Text,
    AfterValidator(_check_not_empty),
    _matching(_QUERY_RE, f"must be one line of at most {MAX_QUERY_LENGTH} characters, got {{got}}"),
]
SourceName = Annotated[
    Text,
    _matching(_SOURCE_NAME_RE, "invalid name {got}: use 1 to 128 letters, digits or _ . : / = -"),
]
AggregationField = Annotated[
    Text,
    _matching(
        _AGGREGATION_FIELD_RE,
        "expected thingTypeName, thingGroupNames or attributes.NAME, got {got}",
    ),
]
Mode = Annotated[str, _one_of(MODES)]
MaxThings = Annotated[int, _integer_in(1, MAX_MAX_THINGS)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
LabelName = Annotated[str, BeforeValidator(_label_name)]
LabelValue = Annotated[str, BeforeValidator(_label_value)]
Labels = Annotated[dict[LabelName, LabelValue], mapping_or_empty("label names to values")]


# --- list rules -------------------------------------------------------------------------------


def _raw(key: str, *, plain: bool = True) -> Callable[[Any], str | None]:
    """An item's `key` as written (a model's attribute from Python), or the plain string item."""

    def get(item: Any) -> str | None:
        if plain and isinstance(item, str):
            return item
        found = item.get(key) if isinstance(item, dict) else getattr(item, key, None)
        return found if isinstance(found, str) else None

    return get


def _unique_by(
    key: Callable[[Any], Hashable | None],
    what: str,
    describe: Callable[[Any], str] = lambda seen: f'"{seen}"',
) -> WrapValidator:
    """Refuse an item whose key an earlier item has; checked on the raw items, so a
    duplicate shows even while another item is invalid."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        duplicates: list[InitErrorDetails] = []
        if isinstance(value, list | tuple):
            first: dict[Hashable, int] = {}
            for index, item in enumerate(value):
                seen = key(item)
                if seen is None:
                    continue
                if seen in first:
                    message = f"duplicate {what} {describe(seen)} (first at [{first[seen]}])"
                    duplicates.append(_error((index,), message))
                else:
                    first[seen] = index
        try:
            result = handler(value)
        except ValidationError as exc:
            _reraise(exc.title, exc.errors(), duplicates)
        if duplicates:
            _reraise(what, [], duplicates)
        return result

    return WrapValidator(check)


def _itself(item: Any) -> str | None:
    return item if isinstance(item, str) else None


def _attribute_filter_key(item: Any) -> tuple[str, str | None, str | None] | None:
    keys = ("attribute", "value", "thing_type")
    if isinstance(item, dict):
        parts = tuple(item.get(key) for key in keys)
    else:
        parts = tuple(getattr(item, key, None) for key in keys)
    attribute, value, thing_type = parts
    if not isinstance(attribute, str) or not all(isinstance(p, str | None) for p in parts):
        return None
    return attribute, value, thing_type


def _describe_attribute_filter(key: tuple[str, str | None, str | None]) -> str:
    # Quoted parts: a value may hold "=" or spaces, and must not read as another filter.
    attribute, value, thing_type = key
    shown = f"{attribute}={show(value)}"
    return f"{shown} of thing type {show(thing_type)}" if thing_type is not None else shown


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

    mode: Mode = "live"
    interval: Interval = DEFAULT_INTERVAL
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
    """One thing of the static list, with labels for its iot_thing_connected series."""

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


@dataclass(frozen=True, slots=True)
class StaticThings(ListOfModels):
    """The config's own list of things: names in file order, and the labels some carry.

    Plain names rather than a model per thing: a file of 100,000 names loads in a fraction
    of the time and memory, and a thing without labels costs no more than its name.
    """

    ITEM_MODEL = ThingSettings

    names: tuple[str, ...] = ()
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


class TargetSourceSettings(StrictSection):
    """What every discovery source may override: its mode and its cap on things."""

    # The key a bare string in the list stands for ("plant-a" is {name: plant-a}); None: a
    # mapping is needed.
    SHORT_FORM_KEY: ClassVar[str | None] = None

    mode: Mode | None = None
    max_things: MaxThings | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        key = cls.SHORT_FORM_KEY
        return {key: data} if key is not None and isinstance(data, str) else data

    @property
    def source(self) -> str:
        """The source="..." label of the source's metrics: its kind and what it selects."""
        raise NotImplementedError


class ThingGroupSettings(TargetSourceSettings):
    """discovery.thing_groups[]: a group's things, and with recursive its descendants' too."""

    SHORT_FORM_KEY = "name"

    name: GroupName
    recursive: Boolean = False

    @property
    def source(self) -> str:
        return f"thing_group:{self.name}"


class ThingTypeSettings(TargetSourceSettings):
    """discovery.thing_types[]: every thing of one type."""

    SHORT_FORM_KEY = "name"

    name: TypeName

    @property
    def source(self) -> str:
        return f"thing_type:{self.name}"


class AttributeFilterSettings(TargetSourceSettings):
    """discovery.attributes[]: the things whose attribute has a value, optionally of one type."""

    attribute: AttributeName
    value: AttributeValue
    thing_type: TypeName | None = None

    @property
    def source(self) -> str:
        of_type = f",thing_type:{self.thing_type}" if self.thing_type else ""
        return f"attribute:{self.attribute}={self.value}{of_type}"


class QuerySettings(TargetSourceSettings):
    """discovery.queries[]: the things a fleet-index query matches."""

    SHORT_FORM_KEY = "query"

    query: QueryString
    name: SourceName | None = None

    @property
    def source(self) -> str:
        return self.name or f"query:{self.query}"


class DiscoverySettings(StrictSection):
    """Target sources beyond the static list, and how often they look again."""

    interval: Interval = DEFAULT_DISCOVERY_INTERVAL
    max_things: MaxThings = DEFAULT_MAX_THINGS
    thing_groups: Annotated[
        tuple[ThingGroupSettings, ...],
        _unique_by(_raw("name"), "thing group"),
        _list_of("thing group names or mappings"),
    ] = ()
    thing_types: Annotated[
        tuple[ThingTypeSettings, ...],
        _unique_by(_raw("name"), "thing type"),
        _list_of("thing type names or mappings"),
    ] = ()
    attributes: Annotated[
        tuple[AttributeFilterSettings, ...],
        _unique_by(_attribute_filter_key, "attribute filter", _describe_attribute_filter),
        _list_of("attribute filters (mappings with attribute and value)"),
    ] = ()
    queries: Annotated[
        tuple[QuerySettings, ...],
        _unique_by(_raw("query"), "query"),
        _list_of("fleet-index query strings or mappings"),
    ] = ()

    @property
    def sources(self) -> tuple[TargetSourceSettings, ...]:
        """Every discovery source, in the order the file lists their kinds."""
        return (*self.thing_groups, *self.thing_types, *self.attributes, *self.queries)

    @model_validator(mode="after")
    def _distinct_source_names(self) -> Self:
        # A source's name is its metrics' source label and its scheduler job: two alike
        # would share one set of series and one job.
        problems: list[InitErrorDetails] = []
        first: dict[str, str] = {}
        for key in ("thing_groups", "thing_types", "attributes", "queries"):
            items: tuple[TargetSourceSettings, ...] = getattr(self, key)
            for index, settings in enumerate(items):
                name, where = settings.source, f"discovery.{key}[{index}]"
                if name in RESERVED_SOURCE_NAMES:
                    problems.append(
                        _error(
                            (key, index, "name"),
                            f'"{name}" is the name of {RESERVED_SOURCE_NAMES[name]}; choose'
                            " another",
                        )
                    )
                elif name in first:
                    problems.append(
                        _error(
                            (key, index),
                            f'source name "{name}" is also {first[name]}\'s: two sources'
                            " cannot share one source label",
                        )
                    )
                else:
                    first[name] = where
        if problems:
            _reraise("DiscoverySettings", [], problems)
        return self


class RegistryAttribute(StrictSection):
    """registry.attributes[]: a registry attribute carried on iot_thing_info as a label."""

    attribute: AttributeName
    label: LabelName

    @field_validator("label")
    @classmethod
    def _not_info_label(cls, label: str) -> str:
        if label in INFO_LABELS:
            fail(f'label "{label}" is iot_thing_info\'s own; choose another')
        return label

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        if _LABEL_NAME_RE.fullmatch(data) is None:
            fail(
                f"attribute {show(data)} is not a valid label name: write"
                f" {{attribute: {data}, label: NAME}} with a NAME of letters, digits and _"
            )
        return {"attribute": data, "label": data}


class RegistrySettings(StrictSection):
    """Labels from the thing registry: iot_thing_info carries them; a few are promoted."""

    attributes: Annotated[
        tuple[RegistryAttribute, ...],
        _unique_by(_raw("attribute"), "attribute"),
        _list_of("attribute names or mappings"),
    ] = ()
    promote: Annotated[
        tuple[LabelName, ...], _unique_by(_itself, "label"), _list_of("label names")
    ] = ()

    @field_validator("attributes")
    @classmethod
    def _labels_distinct(
        cls, attributes: tuple[RegistryAttribute, ...]
    ) -> tuple[RegistryAttribute, ...]:
        seen: dict[str, str] = {}
        for item in attributes:
            if item.label in seen:
                fail(
                    f'label "{item.label}" is given to both "{seen[item.label]}"'
                    f' and "{item.attribute}"'
                )
            seen[item.label] = item.attribute
        return attributes

    @field_validator("promote")
    @classmethod
    def _promote_known(cls, promote: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        attributes: tuple[RegistryAttribute, ...] | None = info.data.get("attributes")
        if attributes is None:
            return promote  # attributes has its own error
        known = ("thing_type", *(item.label for item in attributes))
        for label in promote:
            if label not in known:
                fail(
                    f'cannot promote "{label}": it is neither thing_type nor a label of'
                    f" registry.attributes ({', '.join(known)})"
                )
        return promote

    @property
    def info_labels(self) -> tuple[str, ...]:
        """iot_thing_info's labels besides thing_name: thing_type, then each attribute's."""
        return ("thing_type", *(item.label for item in self.attributes))


class AggregateQuerySettings(StrictSection):
    """aggregates.queries[]: counts over the things a fleet-index query matches."""

    name: SourceName
    query: QueryString = "*"
    by: Annotated[
        tuple[AggregationField, ...],
        _unique_by(_itself, "field"),
        _list_of("fields such as thingTypeName or attributes.site"),
    ] = ()
    # Most buckets (reasons, or values of a `by` field) kept per field: an attribute with a
    # value per thing must not become a series per thing.
    max_buckets: Annotated[int, _integer_in(1, MAX_BUCKETS)] = DEFAULT_MAX_BUCKETS


class AggregatesSettings(StrictSection):
    """Fleet-wide counts from the index, each query costing a few calls per interval."""

    interval: Interval = DEFAULT_AGGREGATES_INTERVAL
    queries: Annotated[
        tuple[AggregateQuerySettings, ...],
        _unique_by(_raw("name", plain=False), "aggregate name"),
        _list_of("aggregate queries (mappings with name and query)"),
    ] = ()


class ClientIdSettings(StrictSection):
    """events.client_id: how a lifecycle event's client ID names a thing (by default, itself)."""

    prefix: Text = ""
    suffix: Text = ""


class EventsSettings(StrictSection):
    """Lifecycle events from an SQS queue an IoT topic rule fills: exact disconnect counts."""

    queue_url: Url
    endpoint_url: Url | None = None
    consumers: Annotated[int, _integer_in(1, MAX_EVENT_CONSUMERS)] = DEFAULT_EVENT_CONSUMERS
    client_id: ClientIdSettings = Field(default_factory=ClientIdSettings)
    # None keeps the queue's own visibility timeout.
    visibility_timeout: (
        Annotated[Duration, _seconds_within(maximum=MAX_VISIBILITY_TIMEOUT)] | None
    ) = None
    dedupe_keys: Annotated[int, _integer_in(1_000, MAX_DEDUPE_KEYS)] = DEFAULT_DEDUPE_KEYS
    wait_time: Annotated[Duration, _seconds_within(MIN_EVENT_WAIT_TIME, MAX_EVENT_WAIT_TIME)] = (
        DEFAULT_EVENT_WAIT_TIME
    )


class MetricsSettings(StrictSection):
    """What /metrics shows."""

    per_thing: Boolean = True


def _operation(value: Any) -> str:
    if value == POLL_OPERATION:
        fail(f"{POLL_OPERATION}'s budget is poll.max_requests_per_second; set it there")
    if not isinstance(value, str) or value not in DEFAULT_BUDGETS:
        close = difflib.get_close_matches(str(value), DEFAULT_BUDGETS, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"one of {', '.join(DEFAULT_BUDGETS)}"
        fail(f"unknown AWS operation {show(value)} ({hint})")
    return value


Budgets = Annotated[
    dict[
        Annotated[str, BeforeValidator(_operation)],
        Annotated[float, _number_in(0, MAX_REQUESTS_PER_SECOND, low_open=True)],
    ],
    mapping_or_empty("AWS operations to requests per second"),
]


class Config(StrictSection):
    """The whole config file."""

    aws: AwsSettings = Field(default_factory=AwsSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    labels: Labels = Field(default_factory=dict)
    things: StaticThings = Field(default_factory=StaticThings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    registry: RegistrySettings | None = None
    aggregates: AggregatesSettings = Field(default_factory=AggregatesSettings)
    budgets: Budgets = Field(default_factory=dict)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    events: EventsSettings | None = None

    @field_validator("registry", "events", mode="before")
    @classmethod
    def _written_empty(cls, value: Any, info: ValidationInfo) -> Any:
        # "registry:" or "events:" with every key under it commented out still asks for the
        # section: the registry's defaults, or events' error naming what is missing.
        return {} if value is None and _from_file(info) else value

    @field_validator("things", mode="plain")
    @classmethod
    def _static_things(cls, value: Any, info: ValidationInfo) -> StaticThings:
        return _static_things(value, info.context)

    @model_validator(mode="wrap")
    @classmethod
    def _names_a_source(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """At least one thing, discovery source or aggregate: checked on the file as written,
        so the error shows beside every other one."""
        none = [] if _names_a_source(data) else [_error(("things",), NO_SOURCE)]
        try:
            config = handler(data)
        except ValidationError as exc:
            _reraise(exc.title, exc.errors(), none)
        if none:
            _reraise("Config", [], none)
        return config

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[InitErrorDetails] = []
        promoted = set(self.registry.promote) if self.registry else set()
        clashes = sorted(promoted.intersection(self.label_names()))
        if clashes:
            problems.append(
                _error(
                    ("registry", "promote"),
                    f"{', '.join(clashes)}: also a configured label; promote another or rename"
                    " the configured one",
                )
            )
        if problems:
            _reraise("Config", [], problems)
        return self

    def label_names(self) -> tuple[str, ...]:
        """Every configured label name, static and per thing, sorted."""
        names = set(self.labels).union(*self.things.labels.values())
        return tuple(sorted(names))

    def budget(self, operation: str) -> float:
        """Requests per second `operation` may spend."""
        if operation == POLL_OPERATION:
            return self.poll.max_requests_per_second
        return self.budgets.get(operation, DEFAULT_BUDGETS[operation])

    def mode_of(self, source: TargetSourceSettings) -> str:
        """The source's own mode, or poll.mode."""
        return source.mode or self.poll.mode

    def max_things_of(self, source: TargetSourceSettings) -> int:
        """The source's own cap on things, or discovery.max_things."""
        return source.max_things or self.discovery.max_things


NO_SOURCE = "list at least one thing, or name a discovery source or an aggregate query"


def _names_a_source(data: Any) -> bool:
    """Whether the raw config names anything to watch. A malformed section counts as
    naming something: it has an error of its own."""
    if not isinstance(data, dict):
        return True
    candidates = [data.get("things")]
    for key, lists in (("discovery", DISCOVERY_LISTS), ("aggregates", ("queries",))):
        section = data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict | BaseModel):
            return True
        candidates.extend(_member(section, name) for name in lists)
    return any(_given(value) for value in candidates)


DISCOVERY_LISTS = ("thing_groups", "thing_types", "attributes", "queries")


def _member(section: dict[str, Any] | BaseModel, key: str) -> Any:
    return section.get(key) if isinstance(section, dict) else getattr(section, key, None)


def _given(value: Any) -> bool:
    if isinstance(value, StaticThings):
        return bool(value.names)
    return value is not None and not (isinstance(value, list | tuple) and not value)


def _static_things(value: Any, context: Mapping[str, Any] | None) -> StaticThings:
    """The static list, checked item by item; every problem is reported with its index.

    A plain name, the common case in a large file, costs one regular expression; anything
    else goes through ThingSettings for its wording.
    """
    if isinstance(value, StaticThings):
        return value
    if value is None:
        return StaticThings()
    if not isinstance(value, list | tuple):
        fail(f"expected a list of things, got {show(value)}")
    names: list[str] = []
    labels: dict[str, Mapping[str, str]] = {}
    first: dict[str, int] = {}
    errors: list[InitErrorDetails] = []
    shared: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
    plain_name = THING_NAME_RE.fullmatch
    for index, item in enumerate(value):
        # Duplicates are found on the names as written, so one shows even when its item
        # has another problem.
        raw = item if type(item) is str else _raw_thing_name(item)
        if raw is not None and plain_name(raw):
            if raw in first:
                message = f'duplicate thing "{raw}" (first at things[{first[raw]}])'
                errors.append(_error((index, "name"), message))
                continue
            first[raw] = index
        if type(item) is str and plain_name(item):
            names.append(sys.intern(item))
            continue
        plain = _plain_thing(item, shared)
        if plain is not None:
            names.append(plain[0])
            if plain[1]:
                labels[plain[0]] = plain[1]
            continue
        try:
            thing = ThingSettings.model_validate(item, context=context)
        except ValidationError as exc:
            errors.extend(_init_details(error, prefix=(index,)) for error in exc.errors())
            continue
        name = sys.intern(thing.name)
        names.append(name)
        if thing.labels:
            labels[name] = thing.labels
    if errors:
        _reraise("things", [], errors)
    return StaticThings(tuple(names), labels)


def _plain_thing(
    item: Any, shared: dict[tuple[tuple[str, str], ...], Mapping[str, str]]
) -> tuple[str, Mapping[str, str]] | None:
    """A {name, labels} mapping that needs no message, checked by hand; None sends it to
    ThingSettings, whose validators word every problem.

    Things with the same labels share one mapping, so a site label on 100,000 things
    costs a mapping per site, not per thing.
    """
    if type(item) is not dict or not item.keys() <= {"name", "labels"}:
        return None
    name, given = item.get("name"), item.get("labels", {})
    if type(name) is not str or not THING_NAME_RE.fullmatch(name) or type(given) is not dict:
        return None
    pairs: list[tuple[str, str]] = []
    for key, raw in given.items():
        if _label_name_problem(key) is not None or not (type(raw) is str or _is_number(raw)):
            return None
        pairs.append((sys.intern(key), sys.intern(_text(raw))))
    key = tuple(sorted(pairs))
    found = shared.get(key)
    if found is None:
        found = shared[key] = dict(pairs)
    return sys.intern(name), found


def _raw_thing_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else item
    if isinstance(name, ThingSettings):
        return name.name
    if isinstance(name, str) or _is_number(name):
        return _text(name)
    return None


def _reraise(title: str, errors: list[ErrorDetails], extra: list[InitErrorDetails]) -> NoReturn:
    details = [_init_details(error) for error in errors]
    raise ValidationError.from_exception_data(title, [*details, *extra])


def _init_details(error: ErrorDetails, prefix: tuple[int | str, ...] = ()) -> InitErrorDetails:
    loc = (*prefix, *error["loc"])
    if error["type"] == ERROR_TYPE:
        custom = PydanticCustomError(ERROR_TYPE, "{message}", {"message": error["msg"]})
        return {"type": custom, "loc": loc, "input": error["input"]}
    details: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


# --- loading ----------------------------------------------------------------------------------


def parse_config(text: str, source: str = "<config>") -> Config:
    """The config in YAML text; ConfigError lists everything wrong with it, in file order."""
    document = load_yaml(text, source)
    if document.data is None:
        raise ConfigError(
            ["the file is empty: it needs a list of things, a discovery source or an aggregate"],
            source,
        )
    if not isinstance(document.data, dict):
        problem = f"expected a mapping at the top level, got {show(document.data)}"
        raise ConfigError([problem], source)
    return validate_document(Config, document, source, context={_FROM_FILE: True})


def load_config(path: str | os.PathLike[str]) -> Config:
    """The config in a YAML file; ConfigError also when the file cannot be read."""
    return parse_config(*read_config_text(path))
