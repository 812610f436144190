"""metrics: what /metrics shows, and how much of it a large fleet costs."""

from typing import Annotated, Any

from pydantic import BeforeValidator

from exporter.config.fields import PositiveDuration, integer_in
from exporter.config.yamlfile import StrictSection, fail, show

# Every thing's series; only the things in trouble; none (fleet counts and aggregates).
PER_THING = ("all", "problems", "none")
DEFAULT_PROBLEMS_WINDOW = 3600.0
DEFAULT_MAX_PROBLEM_THINGS = 10_000
MAX_MAX_PROBLEM_THINGS = 10_000_000


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


class MetricsSettings(StrictSection):
    """What /metrics shows."""

    per_thing: PerThing = "all"
    # problems: a thing stays listed this long after its last trouble.
    problems_window: PositiveDuration = DEFAULT_PROBLEMS_WINDOW
    # problems: the most things listed; a mass outage never floods the page.
    max_problem_things: Annotated[int, integer_in(1, MAX_MAX_PROBLEM_THINGS)] = (
        DEFAULT_MAX_PROBLEM_THINGS
    )
