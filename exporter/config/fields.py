"""What the config's sections share: field types, their validators, list rules, error building.

Every validator words its own error, so an operator reads what is wrong and where, and
every problem in a file is reported at once (pydantic gathers them; `reraise` merges
problems found by hand into the same list).
"""

import math
import re
from collections.abc import Callable, Hashable
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from exporter.config.durations import format_prometheus_duration as shown
from exporter.config.durations import parse_prometheus_duration
from exporter.config.yamlfile import ERROR_TYPE, fail, mapping_or_empty, number_text, show
from exporter.names import THING_NAME_RE

MIN_INTERVAL = 1.0
MODES = ("live", "index")
# Label names the exporter or Prometheus already sets on the series, with why.
RESERVED_LABELS = {
    "thing_name": "the exporter sets it",
    "reason": "the exporter sets it",
    "error_code": "the exporter sets it",
    "job": "Prometheus sets it when it scrapes",
    "instance": "Prometheus sets it when it scrapes",
    "query": "the exporter sets it on the fleet aggregates",
}
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Thing group and thing type names follow the thing-name rule.
_REGISTRY_NAME_RE = THING_NAME_RE
_ATTRIBUTE_NAME_RE = re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}")
_ATTRIBUTE_VALUE_RE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
_SOURCE_NAME_RE = re.compile(r"[a-zA-Z0-9_.:/=-]{1,128}")
MAX_QUERY_LENGTH = 2048
_QUERY_RE = re.compile(f"[^\x00-\x1f\x7f]{{1,{MAX_QUERY_LENGTH}}}")

FROM_FILE = "from_file"  # validation-context key: the data came from YAML, not Python code


def is_number(value: Any) -> bool:
    # YAML's true/false are Python ints; never let them pass as numbers.
    return isinstance(value, int | float) and not isinstance(value, bool)


def not_a_string(value: Any) -> NoReturn:
    hint = " (quote it: YAML reads yes, no, on, off, true, false as booleans)"
    fail(f"expected a string, got {show(value)}{hint if isinstance(value, bool) else ''}")


def as_text(value: Any) -> str:
    """A string; a YAML number counts as the text it was written as (floor: 3 is "3")."""
    if isinstance(value, str):
        return value
    if is_number(value):
        return number_text(value)
    not_a_string(value)


def matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
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


def check_not_empty(value: str) -> str:
    if not value:
        fail("must not be empty")
    return value


def _duration(value: Any, info: ValidationInfo) -> float:
    """Seconds from a duration string; Python callers may also give seconds as a number."""
    expected = "expected a duration such as 30s"
    if isinstance(value, str):
        try:
            return parse_prometheus_duration(value)
        except ValueError:
            fail(f"{expected}, got {show(value)}")
    if not is_number(value) or from_file(info):
        fail(f"{expected}, got {show(value)}{_unit_hint(value)}")
    return float(value)


def from_file(info: ValidationInfo) -> bool:
    """Validating a YAML file (where a bare number is no duration), not Python values."""
    return bool(info.context and info.context.get(FROM_FILE))


def _unit_hint(value: Any) -> str:
    if not is_number(value) or not math.isfinite(value) or value < 0:
        return ""
    written = f"{int(value)}s" if isinstance(value, int) else shown(value)
    return f"; write {written}"


def seconds_within(minimum: float | None = None, maximum: float | None = None) -> AfterValidator:
    """A duration's bounds, each inclusive and each optional."""

    def check(seconds: float) -> float:
        if minimum is not None and seconds < minimum:
            fail(f"must be at least {shown(minimum)}, got {shown(seconds)}")
        if maximum is not None and seconds > maximum:
            fail(f"must be at most {shown(maximum)}, got {shown(seconds)}")
        return seconds

    return AfterValidator(check)


def _check_positive_duration(seconds: float) -> float:
    if seconds <= 0:
        fail(f"must be longer than 0s, got {shown(seconds)}")
    return seconds


def number_in(low: float, high: float, *, low_open: bool = False) -> BeforeValidator:
    bounds = f"greater than {low} and at most {high}" if low_open else f"between {low} and {high}"

    def check(value: Any) -> float:
        if not is_number(value):
            fail(f"expected a number, got {show(value)}")
        # Written so that NaN fails too.
        if not ((low < value if low_open else low <= value) and value <= high):
            fail(f"must be {bounds}, got {show(value)}")
        return float(value)

    return BeforeValidator(check)


def integer_in(low: int, high: int) -> BeforeValidator:
    def check(value: Any) -> int:
        if not is_number(value) or not isinstance(value, int):
            fail(f"expected an integer, got {show(value)}")
        if not low <= value <= high:
            fail(f"must be between {low} and {high}, got {show(value)}")
        return int(value)

    return BeforeValidator(check)


def label_name_problem(value: Any) -> str | None:
    """What is wrong with a label name, or None; the static list's fast path asks too."""
    if not isinstance(value, str):
        return f"expected a label name (a string), got {show(value)}"
    if LABEL_NAME_RE.fullmatch(value) is None:
        return f"invalid label name {show(value)}: use letters, digits and _, not a digit first"
    if value in RESERVED_LABELS:
        return f'reserved label name "{value}": {RESERVED_LABELS[value]}'
    if value.startswith("__"):
        return f'reserved label name "{value}": names starting with __ belong to Prometheus'
    return None


def _label_name(value: Any) -> str:
    problem = label_name_problem(value)
    if problem is not None:
        fail(problem)
    return str(value)


def _label_value(value: Any) -> str:
    if isinstance(value, str) or is_number(value):
        return as_text(value)
    not_a_string(value)


def error_at(loc: tuple[int | str, ...], message: str) -> InitErrorDetails:
    custom = PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})
    return {"type": custom, "loc": loc, "input": None}


def list_of(what: str) -> BeforeValidator:
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


def one_of(choices: tuple[str, ...]) -> BeforeValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            fail(f"expected {' or '.join(choices)}, got {show(value)}")
        return value

    return BeforeValidator(check)


Text = Annotated[str, BeforeValidator(as_text)]
Url = Annotated[Text, AfterValidator(_check_url)]
Duration = Annotated[float, BeforeValidator(_duration)]
Interval = Annotated[Duration, seconds_within(MIN_INTERVAL)]
PositiveDuration = Annotated[Duration, AfterValidator(_check_positive_duration)]
GroupName = Annotated[
    Text,
    matching(
        _REGISTRY_NAME_RE, "invalid thing group name {got}: use 1 to 128 letters, digits or : _ -"
    ),
]
TypeName = Annotated[
    Text,
    matching(
        _REGISTRY_NAME_RE, "invalid thing type name {got}: use 1 to 128 letters, digits or : _ -"
    ),
]
AttributeName = Annotated[
    Text,
    matching(
        _ATTRIBUTE_NAME_RE,
        "invalid attribute name {got}: use 1 to 128 letters, digits or _ . , @ / : # -",
    ),
]
AttributeValue = Annotated[
    Text,
    matching(
        _ATTRIBUTE_VALUE_RE,
        "invalid attribute value {got}: use up to 800 letters, digits or _ . , @ / : # = [ ] -",
    ),
]
QueryString = Annotated[
    Text,
    AfterValidator(check_not_empty),
    matching(_QUERY_RE, f"must be one line of at most {MAX_QUERY_LENGTH} characters, got {{got}}"),
]
SourceName = Annotated[
    Text,
    matching(_SOURCE_NAME_RE, "invalid name {got}: use 1 to 128 letters, digits or _ . : / = -"),
]
Mode = Annotated[str, one_of(MODES)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
LabelName = Annotated[str, BeforeValidator(_label_name)]
LabelValue = Annotated[str, BeforeValidator(_label_value)]
Labels = Annotated[dict[LabelName, LabelValue], mapping_or_empty("label names to values")]


# --- list rules -------------------------------------------------------------------------------


def raw_key(key: str, *, plain: bool = True) -> Callable[[Any], str | None]:
    """An item's `key` as written (a model's attribute from Python), or the plain string item."""

    def get(item: Any) -> str | None:
        if plain and isinstance(item, str):
            return item
        found = item.get(key) if isinstance(item, dict) else getattr(item, key, None)
        return found if isinstance(found, str) else None

    return get


def unique_by(
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
                    duplicates.append(error_at((index,), message))
                else:
                    first[seen] = index
        try:
            result = handler(value)
        except ValidationError as exc:
            reraise(exc.title, exc.errors(), duplicates)
        if duplicates:
            reraise(what, [], duplicates)
        return result

    return WrapValidator(check)


def item_itself(item: Any) -> str | None:
    return item if isinstance(item, str) else None


# --- errors found by hand ----------------------------------------------------------------------


def reraise(title: str, errors: list[ErrorDetails], extra: list[InitErrorDetails]) -> NoReturn:
    details = [init_details(error) for error in errors]
    raise ValidationError.from_exception_data(title, [*details, *extra])


def init_details(error: ErrorDetails, prefix: tuple[int | str, ...] = ()) -> InitErrorDetails:
    loc = (*prefix, *error["loc"])
    if error["type"] == ERROR_TYPE:
        custom = PydanticCustomError(ERROR_TYPE, "{message}", {"message": error["msg"]})
        return {"type": custom, "loc": loc, "input": error["input"]}
    details: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details
