"""things and labels: the static list of things, and the labels their series carry."""

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from exporter.config.fields import (
    Labels,
    Text,
    as_text,
    error_at,
    init_details,
    is_number,
    label_name_problem,
    matching,
    reraise,
)
from exporter.config.yamlfile import ListOfModels, StrictSection, fail, show
from exporter.names import THING_NAME_RE

ThingName = Annotated[
    Text,
    matching(THING_NAME_RE, "invalid thing name {got}: use 1 to 128 letters, digits or : _ -"),
]


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


def static_things(value: Any, context: Mapping[str, Any] | None) -> StaticThings:
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
                errors.append(error_at((index, "name"), message))
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
            errors.extend(init_details(error, prefix=(index,)) for error in exc.errors())
            continue
        name = sys.intern(thing.name)
        names.append(name)
        if thing.labels:
            labels[name] = thing.labels
    if errors:
        reraise("things", [], errors)
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
        if label_name_problem(key) is not None or not (type(raw) is str or is_number(raw)):
            return None
        pairs.append((sys.intern(key), sys.intern(as_text(raw))))
    key = tuple(sorted(pairs))
    found = shared.get(key)
    if found is None:
        found = shared[key] = dict(pairs)
    return sys.intern(name), found


def _raw_thing_name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else item
    if isinstance(name, ThingSettings):
        return name.name
    if isinstance(name, str) or is_number(name):
        return as_text(name)
    return None
