"""The whole config file: its sections, the rules across them, and loading it."""

import os
from typing import Any, Self

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from exporter.config.aggregates import AggregatesSettings
from exporter.config.aws import AwsSettings
from exporter.config.budgets import DEFAULT_BUDGETS, Budgets
from exporter.config.discovery import DISCOVERY_LISTS, DiscoverySettings, TargetSourceSettings
from exporter.config.events import EventsSettings
from exporter.config.fields import FROM_FILE, Labels, error_at, from_file, reraise
from exporter.config.metrics import MetricsSettings
from exporter.config.poll import PollSettings
from exporter.config.registry import RegistrySettings
from exporter.config.things import StaticThings, static_things
from exporter.config.yamlfile import (
    ConfigError,
    StrictSection,
    load_yaml,
    read_config_text,
    show,
    validate_document,
)
from exporter.names import POLL_OPERATION, ROLLUP_OTHER, THING_GROUP_LABEL


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
        return {} if value is None and from_file(info) else value

    @field_validator("things", mode="plain")
    @classmethod
    def static_things(cls, value: Any, info: ValidationInfo) -> StaticThings:
        return static_things(value, info.context)

    @model_validator(mode="wrap")
    @classmethod
    def _names_a_source(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """At least one thing, discovery source or aggregate: checked on the file as written,
        so the error shows beside every other one."""
        none = [] if _names_a_source(data) else [error_at(("things",), NO_SOURCE)]
        try:
            config = handler(data)
        except ValidationError as exc:
            reraise(exc.title, exc.errors(), none)
        if none:
            reraise("Config", [], none)
        return config

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[InitErrorDetails] = []
        promoted = set(self.registry.promote) if self.registry else set()
        clashes = sorted(promoted.intersection(self.label_names()))
        if clashes:
            problems.append(
                error_at(
                    ("registry", "promote"),
                    f"{', '.join(clashes)}: also a configured label; promote another or rename"
                    " the configured one",
                )
            )
        problems.extend(self._rollup_problems())
        if problems:
            reraise("Config", [], problems)
        return self

    def notes(self) -> list[str]:
        """What is valid but likely not meant, for --config.check and the start-up log."""
        notes = []
        queue = self.events.region if self.events is not None else None
        if queue and self.aws.region and queue != self.aws.region:
            notes.append(
                f"events.queue_url: the queue is in {queue}, aws.region is {self.aws.region}:"
                f" the exporter reads the queue in {queue}; check that the things' topic rule"
                " sends there"
            )
        return notes

    def _rollup_problems(self) -> list[InitErrorDetails]:
        """metrics.rollup_by names labels some part of the config gives every thing a value of."""
        info = self.registry.info_labels if self.registry else ()
        configured = self.label_names()
        problems = []
        for index, label in enumerate(self.metrics.rollup_by):
            where = ("metrics", "rollup_by", index)
            if label == THING_GROUP_LABEL and label in info:
                problems.append(
                    error_at(
                        where,
                        "thing_group is also a registry.attributes label; give that one another",
                    )
                )
            elif label == THING_GROUP_LABEL:
                if not self.discovery.thing_groups:
                    problems.append(
                        error_at(where, "thing_group needs discovery.thing_groups: none is listed")
                    )
                elif label in configured:
                    problems.append(
                        error_at(where, "thing_group is also a configured label; rename that one")
                    )
            elif label in info and label in configured:
                problems.append(
                    error_at(
                        where,
                        f'"{label}" is both a registry label and a configured label; rename the'
                        " configured one",
                    )
                )
            elif label in configured and self._labels_the_fold(label):
                problems.append(
                    error_at(
                        where,
                        f'a configured "{label}" label has the value "{ROLLUP_OTHER}", which'
                        " names the segment the cap folds the rest into; choose another value",
                    )
                )
            elif label not in info and label not in configured:
                known = ", ".join((*info, THING_GROUP_LABEL, *configured))
                hint = (
                    "" if self.registry else " (thing_type and attributes need a registry: section)"
                )
                problems.append(
                    error_at(
                        where,
                        f'"{label}" is no label a thing has: roll up by one of {known}{hint}',
                    )
                )
        return problems

    def _labels_the_fold(self, label: str) -> bool:
        values = [self.labels.get(label)]
        values.extend(own.get(label) for own in self.things.labels.values())
        return ROLLUP_OTHER in values

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


def _member(section: dict[str, Any] | BaseModel, key: str) -> Any:
    return section.get(key) if isinstance(section, dict) else getattr(section, key, None)


def _given(value: Any) -> bool:
    if isinstance(value, StaticThings):
        return bool(value.names)
    return value is not None and not (isinstance(value, list | tuple) and not value)


# --- loading ----------------------------------------------------------------------------------


def parse_config(text: str, path: str = "<config>") -> Config:
    """The config in YAML text; ConfigError lists everything wrong with it, in file order."""
    document = load_yaml(text, path)
    if document.data is None:
        raise ConfigError(
            ["the file is empty: it needs a list of things, a discovery source or an aggregate"],
            path,
        )
    if not isinstance(document.data, dict):
        problem = f"expected a mapping at the top level, got {show(document.data)}"
        raise ConfigError([problem], path)
    return validate_document(Config, document, path, context={FROM_FILE: True})


def load_config(path: str | os.PathLike[str]) -> Config:
    """The config in a YAML file; ConfigError also when the file cannot be read."""
    return parse_config(*read_config_text(path))
