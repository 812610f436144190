"""Which things to poll and the labels each carries, from the config's static list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from exporter.config import Config


@dataclass(frozen=True, slots=True)
class Targets:
    """The things one poll cycle covers, in config order, with their merged labels."""

    names: tuple[str, ...]
    labels: Mapping[str, Mapping[str, str]]
    label_names: tuple[str, ...]


def resolve_targets(config: Config) -> Targets:
    """Static labels apply to every thing; a thing's own label of the same name wins."""
    labels = {thing.name: {**config.labels, **thing.labels} for thing in config.things}
    names = tuple(thing.name for thing in config.things)
    return Targets(names=names, labels=labels, label_names=config.label_names())
