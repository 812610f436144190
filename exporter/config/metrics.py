"""metrics: what /metrics shows, and how much of it a large fleet costs."""

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from exporter.config.fields import (
    Boolean,
    LabelName,
    PositiveDuration,
    integer_in,
    item_itself,
    list_of,
    unique_by,
)
from exporter.config.yamlfile import StrictSection, fail, show

# Every thing's series; only the things in trouble; none (fleet counts and aggregates).
PER_THING = ("all", "problems", "none")
DEFAULT_PROBLEMS_WINDOW = 3600.0
DEFAULT_MAX_PROBLEM_THINGS = 10_000
MAX_MAX_PROBLEM_THINGS = 10_000_000
# Segments beyond this fold into one: ~18 series each (iot_things twice, the never-connected
# gauge, and a counter per known reason).
DEFAULT_MAX_ROLLUP_SEGMENTS = 1_000
MAX_MAX_ROLLUP_SEGMENTS = 1_000_000
# iot_things and iot_disconnects_total set these themselves.
ROLLUP_RESERVED = ("connected",)


def _per_thing(value: Any) -> str:
    # true and false were the whole choice before `problems`; they keep their meaning.
    if value is True:
        return "all"
    if value is False:
        return "none"
    if not isinstance(value, str) or value not in PER_THING:
        fail(f"expected all, problems or none (true is all, false none), got {show(value)}")
    return value


PerThing = Annotated[str, BeforeValidator(_per_thing)]


def _rollup_label(label: str) -> str:
    if label in ROLLUP_RESERVED:
        fail(f'"{label}" is a label iot_things sets itself; roll up by another')
    return label


RollupLabel = Annotated[LabelName, AfterValidator(_rollup_label)]


class MetricsSettings(StrictSection):
    """What /metrics shows."""

    per_thing: PerThing = "all"
    # problems: a thing stays listed this long after its last trouble.
    problems_window: PositiveDuration = DEFAULT_PROBLEMS_WINDOW
    # problems: the most things listed; a mass outage never floods the page.
    max_problem_things: Annotated[int, integer_in(1, MAX_MAX_PROBLEM_THINGS)] = (
        DEFAULT_MAX_PROBLEM_THINGS
    )
    # Labels to count the fleet by: thing_type, a registry.attributes label, thing_group,
    # or a configured label (Config checks which exist).
    rollup_by: Annotated[
        tuple[RollupLabel, ...], unique_by(item_itself, "label"), list_of("label names")
    ] = ()
    # The most segments with series of their own; the rest fold into one, "(other)".
    max_rollup_segments: Annotated[int, integer_in(1, MAX_MAX_ROLLUP_SEGMENTS)] = (
        DEFAULT_MAX_ROLLUP_SEGMENTS
    )
    # Each shown thing's session: iot_thing_keep_alive_seconds, _session_expiry_seconds
    # and _session_info. Off by default: three more series per connected thing.
    session_details: Boolean = False
