"""The fleet-index pager: a target source read through SearchIndex, 100 things a call.

Each page names things with their registry info and, in index mode, their connectivity
(`connectivity.connected`, `.timestamp`, `.disconnectReason`), so one pass both discovers
and observes. AWS's quirks are the fleet state's to handle (fleet/connectivity.py): the
index may lag live state, and it drops the timestamp and reason of a thing disconnected
for about an hour. Only things whose client ID is their thing name have connectivity in the index.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from exporter.aws.calls import AwsCalls, CallFailed
from exporter.fleet.connectivity import BatchSummary, Observation, valid_reason
from exporter.fleet.sessions import session_in
from exporter.fleet.targets import Found
from exporter.names import INDEX_NAME
from exporter.sources.answers import InfoReader, plausible_timestamp, thing_name
from exporter.sources.base import PassOutcome, Source, Updates

# AWS: "The maximum number of terms in a query is 12" (fleet indexing query syntax).
MAX_QUERY_TERMS = 12
LIST_GROUPS_PAGE = 250
SEARCH_PAGE = 100  # SearchIndex's largest page
# The error code of a static-list thing the index does not return (it does not exist, or
# was never indexed), reported as a failed observation like a missing thing in live mode.
NOT_INDEXED = "NotIndexed"


def quoted(value: str) -> str:
    """A term value as a phrase: names may hold ':' and '-', which the syntax reads as operators."""
    return f'"{value}"'


# Sharded, a query of names leaves this many terms for the shard's thingId prefixes.
SHARDED_NAME_TERMS = 6
_QUOTED = re.compile(r'"[^"]*"')
_OPERATORS = {"AND", "OR", "NOT", "-"}


def any_of(field: str, values: Sequence[str], terms: int = MAX_QUERY_TERMS) -> list[str]:
    """Queries matching any of `values` in `field`, each of at most `terms` terms."""
    return [
        " OR ".join(f"{field}:{quoted(value)}" for value in values[start : start + terms])
        for start in range(0, len(values), terms)
    ]


def query_terms(query: str) -> int:
    """At least as many terms as AWS counts in `query`: every word but the operators, so
    `field:(a OR b)` counts 3 where AWS counts 2, and a query built from it stays within
    the limit."""
    words = re.split(r"[\s()]+", _QUOTED.sub('"x"', query))
    return sum(1 for word in words if word and word.upper() not in _OPERATORS)


def narrowed_to(
    queries: Callable[[AwsCalls], Sequence[str]], prefixes: Sequence[str]
) -> Callable[[AwsCalls], list[str]]:
    """The same queries, narrowed to the things whose thingId starts with one of `prefixes`
    (a shard's share of the index), each within AWS's limit on terms; unchanged when
    `prefixes` is empty (one process owns every thing)."""

    def narrowed(calls: AwsCalls) -> list[str]:
        if not prefixes:
            return list(queries(calls))
        out: list[str] = []
        for query in queries(calls):
            room = max(1, MAX_QUERY_TERMS - query_terms(query))
            for start in range(0, len(prefixes), room):
                ids = " OR ".join(f"thingId:{prefix}*" for prefix in prefixes[start : start + room])
                out.append(f"({query}) AND ({ids})" if query.strip() != "*" else ids)
        return out

    return narrowed


def observation_of(entry: Mapping[str, Any], name: str, observed_at: float) -> Observation:
    """A thing's connectivity in a SearchIndex entry; an odd entry is a failed observation."""
    connectivity = entry.get("connectivity")
    if connectivity is None:
        # Never connected, or connected with a client ID other than its name: the index
        # has no connectivity for it, which reads as never connected.
        return Observation.ok(name, observed_at, connected=False)
    if not isinstance(connectivity, dict) or not isinstance(connectivity.get("connected"), bool):
        return Observation.failed(name, observed_at, "InvalidResponse")
    timestamp = connectivity.get("timestamp")
    seconds: float | None = None
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        seconds = timestamp / 1000.0  # the index gives epoch milliseconds
        if not plausible_timestamp(seconds, observed_at):
            return Observation.failed(name, observed_at, "InvalidResponse")
    elif timestamp is not None:
        return Observation.failed(name, observed_at, "InvalidResponse")
    return Observation.ok(
        name,
        observed_at,
        connected=connectivity["connected"],
        timestamp=seconds,
        reason=valid_reason(connectivity.get("disconnectReason")),
        session=session_in(name, connectivity) if connectivity["connected"] else None,
    )


class IndexPager(Source):
    """Pages a target source's fleet-index queries.

    With `observe`, each page's connectivity goes to the fleet (index mode); without, the
    pages only discover (a live-mode source whose registry listing lacks registry info).
    `fixed` names a source whose things are given, not found (the static list): it only
    looks them up, and one the index does not return is reported as not indexed.
    """

    def __init__(
        self,
        name: str,
        where: str,
        queries: Callable[[AwsCalls], Sequence[str]],
        calls: AwsCalls,
        *,
        interval: float,
        observe: bool,
        info: InfoReader | None,
        fixed: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.where = where
        self.interval = interval
        self._queries = queries
        self._calls = calls
        self.observes = observe
        self._info = info
        self._fixed = frozenset(fixed) if fixed is not None else None
        self._clock = clock

    def run(self, updates: Updates) -> PassOutcome:
        seen: set[str] = set()
        summary = BatchSummary()
        invalid: list[str] = []
        try:
            for query in self._queries(self._calls):
                for page in self._calls.pages(
                    "SearchIndex", indexName=INDEX_NAME, queryString=query, maxResults=SEARCH_PAGE
                ):
                    found, observations = self._read(page)
                    refused = updates.found(self.name, found)
                    invalid.extend(refused)
                    seen.update(item.name for item in found if item.name not in refused)
                    if observations:
                        summary += updates.observed(observations)
        except CallFailed as failure:
            return PassOutcome.failed_call(
                failure, things=len(seen), summary=summary, invalid_names=invalid
            )
        if self._fixed is not None:
            missing = self._fixed - seen
            if self.observes and missing:
                now = self._clock()
                summary += updates.observed(
                    [Observation.failed(n, now, NOT_INDEXED, not_found=True) for n in missing]
                )
            seen = set(self._fixed)
        updates.settled(self.name, seen)
        return PassOutcome(ok=True, things=len(seen), summary=summary, invalid_names=tuple(invalid))

    def _read(self, page: Mapping[str, Any]) -> tuple[list[Found], list[Observation]]:
        entries = page.get("things")
        if not isinstance(entries, list):
            raise self._calls.refused("SearchIndex", "InvalidResponse")
        now = self._clock()
        found: list[Found] = []
        observations: list[Observation] = []
        for entry in entries:
            name = thing_name(entry)
            if name is None or not isinstance(entry, dict):
                continue
            if self._fixed is not None and name not in self._fixed:
                continue  # search is case-insensitive: "Pump-1" answers for "pump-1"
            found.append(Found(name, self._info(entry) if self._info is not None else None))
            if self.observes:
                observations.append(observation_of(entry, name, now))
        return found, observations


def thing_group_queries(
    group: str, *, recursive: bool, terms: int = MAX_QUERY_TERMS
) -> Callable[[AwsCalls], list[str]]:
    """The queries for a group's things: the group itself (DescribeThingGroup tells a group
    that does not exist, which a query alone would answer with no things), and with
    recursive its descendants, listed by ListThingGroups. A thing document names only the
    groups the thing is directly in, so every descendant is asked for by name."""

    def queries(calls: AwsCalls) -> list[str]:
        calls.call("DescribeThingGroup", thingGroupName=group)
        groups = [group]
        if recursive:
            groups.extend(_descendants(calls, group))
        return any_of("thingGroupNames", groups, terms)

    return queries


def _descendants(calls: AwsCalls, group: str) -> Iterator[str]:
    for page in calls.pages(
        "ListThingGroups", parentGroup=group, recursive=True, maxResults=LIST_GROUPS_PAGE
    ):
        for entry in page.get("thingGroups") or ():
            name = entry.get("groupName") if isinstance(entry, dict) else None
            if isinstance(name, str) and name:
                yield name


def fixed_queries(queries: list[str]) -> Callable[[AwsCalls], list[str]]:
    """Queries that need no call to build."""
    return lambda calls: queries
