"""Discovery through the registry's list APIs: a target source's things, with no index lag.

ListThingsInThingGroup answers a thing group (recursive on request), ListThings a thing
type or an attribute filter, and SearchIndex a query. Each pass pages through the whole
answer; only a completed pass replaces the source's last good list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.aws.calls import AwsCalls, CallFailed
from exporter.fleet.targets import Found, RegistryInfo
from exporter.sources.answers import InfoReader, thing_name
from exporter.sources.base import PassOutcome, Source, Updates

# The largest page the list APIs give, so a pass takes the fewest calls.
LIST_PAGE = 250


@dataclass(frozen=True, slots=True)
class Listing:
    """How to list one target source's things: the operation, its parameters, its page key."""

    operation: str
    params: Mapping[str, Any]
    key: str  # the list in each page: "things" holds names or entries
    carries_info: bool  # entries have thingTypeName and attributes


def group_listing(group: str, *, recursive: bool) -> Listing:
    params = {"thingGroupName": group, "recursive": recursive, "maxResults": LIST_PAGE}
    return Listing("ListThingsInThingGroup", params, "things", carries_info=False)


def type_listing(thing_type: str) -> Listing:
    params = {"thingTypeName": thing_type, "maxResults": LIST_PAGE}
    return Listing("ListThings", params, "things", carries_info=True)


def attribute_listing(attribute: str, value: str, thing_type: str | None) -> Listing:
    params: dict[str, Any] = {
        "attributeName": attribute,
        "attributeValue": value,
        "maxResults": LIST_PAGE,
    }
    if thing_type is not None:
        params["thingTypeName"] = thing_type
    return Listing("ListThings", params, "things", carries_info=True)


class RegistryLister(Source):
    """A live-mode target source: lists its things every discovery interval."""

    def __init__(
        self,
        name: str,
        where: str,
        listing: Listing,
        calls: AwsCalls,
        *,
        interval: float,
        info: InfoReader | None,
    ) -> None:
        self.name = name
        self.where = where
        self.interval = interval
        self._listing = listing
        self._calls = calls
        self._info = info

    def run(self, updates: Updates) -> PassOutcome:
        seen: set[str] = set()
        invalid: list[str] = []
        try:
            for page in self._pages():
                found = list(self._found(page))
                refused = updates.found(self.name, found)
                invalid.extend(refused)
                seen.update(item.name for item in found if item.name not in refused)
        except CallFailed as failure:
            return PassOutcome.failed_call(failure, things=len(seen), invalid_names=invalid)
        updates.settled(self.name, seen)
        return PassOutcome(ok=True, things=len(seen), invalid_names=tuple(invalid))

    def _pages(self) -> Iterator[dict[str, Any]]:
        listing = self._listing
        return self._calls.pages(listing.operation, **listing.params)

    def _found(self, page: Mapping[str, Any]) -> Iterator[Found]:
        entries = page.get(self._listing.key)
        if not isinstance(entries, list):
            raise self._calls.refused(self._listing.operation, "InvalidResponse")
        read: Callable[[Mapping[str, Any]], RegistryInfo] | None = (
            self._info if self._listing.carries_info and self._info is not None else None
        )
        for entry in entries:
            name = thing_name(entry)
            if name is None:
                continue  # an entry without a name names nothing
            info = read(entry) if read is not None and isinstance(entry, dict) else None
            yield Found(name, info)
