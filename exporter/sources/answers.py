"""Reading AWS's answers: thing names, registry info and timestamps in list and search entries.

Shared by the sources that read them (live.py, registry.py, index.py), so each rule is
written once: an odd value is refused here rather than taken as a thing's state.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from exporter.fleet.targets import RegistryInfo

# A host clock may lag AWS's; a timestamp a day ahead of ours is not skew but nonsense.
MAX_CLOCK_SKEW_SECONDS = 86_400.0


def plausible_timestamp(seconds: float, observed_at: float) -> bool:
    """Finite, after the epoch, and not beyond any clock skew into the future."""
    return math.isfinite(seconds) and 0 < seconds <= observed_at + MAX_CLOCK_SKEW_SECONDS


class InfoReader:
    """Reads a thing's registry info from a ListThings or SearchIndex entry.

    Infos are shared: 100,000 things of a few types and sites need a few objects, not
    100,000, and every string is interned for the same reason.
    """

    def __init__(self, attributes: Sequence[str]) -> None:
        self._attributes = tuple(attributes)
        self._shared: dict[RegistryInfo, RegistryInfo] = {}

    def __call__(self, entry: Mapping[str, Any]) -> RegistryInfo:
        thing_type = entry.get("thingTypeName")
        attributes = entry.get("attributes")
        if not isinstance(attributes, dict):
            attributes = {}
        info = RegistryInfo(
            _text(thing_type),
            tuple(_text(attributes.get(name)) for name in self._attributes),
        )
        return self._shared.setdefault(info, info)


def _text(value: object) -> str:
    return sys.intern(value) if isinstance(value, str) else ""


def thing_name(entry: object) -> str | None:
    """The thing name in one list entry (a bare name or a mapping), or None if it has none."""
    name = entry.get("thingName") if isinstance(entry, dict) else entry
    return sys.intern(name) if isinstance(name, str) and name else None
