"""discovery: the target sources beyond the static list, and how often they look again."""

from typing import Annotated, Any, ClassVar, Self

from pydantic import model_validator
from pydantic_core import InitErrorDetails

from exporter.config.fields import (
    AttributeName,
    AttributeValue,
    Boolean,
    GroupName,
    Interval,
    Mode,
    QueryString,
    SourceName,
    TypeName,
    error_at,
    integer_in,
    list_of,
    raw_key,
    reraise,
    unique_by,
)
from exporter.config.yamlfile import StrictSection, show

DEFAULT_DISCOVERY_INTERVAL = 300.0
# Most things one discovery source may name: a query that matches the whole account by
# mistake must not grow memory, series and calls without bound. The static list has no
# cap: its size is written in the file.
DEFAULT_MAX_THINGS = 100_000
MAX_MAX_THINGS = 10_000_000
# The sources the exporter names itself, with what they are; a discovery source may not
# take one of these names (exporter.sources checks that its own names are all here).
RESERVED_SOURCE_NAMES = {
    "static": "the static list's source",
    "live": "the live poller",
    "aggregates": "the fleet aggregates' source",
    "events": "the lifecycle events' source",
}
DISCOVERY_LISTS = ("thing_groups", "thing_types", "attributes", "queries")

MaxThings = Annotated[int, integer_in(1, MAX_MAX_THINGS)]


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
        unique_by(raw_key("name"), "thing group"),
        list_of("thing group names or mappings"),
    ] = ()
    thing_types: Annotated[
        tuple[ThingTypeSettings, ...],
        unique_by(raw_key("name"), "thing type"),
        list_of("thing type names or mappings"),
    ] = ()
    attributes: Annotated[
        tuple[AttributeFilterSettings, ...],
        unique_by(_attribute_filter_key, "attribute filter", _describe_attribute_filter),
        list_of("attribute filters (mappings with attribute and value)"),
    ] = ()
    queries: Annotated[
        tuple[QuerySettings, ...],
        unique_by(raw_key("query"), "query"),
        list_of("fleet-index query strings or mappings"),
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
                        error_at(
                            (key, index, "name"),
                            f'"{name}" is the name of {RESERVED_SOURCE_NAMES[name]}; choose'
                            " another",
                        )
                    )
                elif name in first:
                    problems.append(
                        error_at(
                            (key, index),
                            f'source name "{name}" is also {first[name]}\'s: two sources'
                            " cannot share one source label",
                        )
                    )
                else:
                    first[name] = where
        if problems:
            reraise("DiscoverySettings", [], problems)
        return self
