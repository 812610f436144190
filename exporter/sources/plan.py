"""plan(): the sources a config asks for, and which AWS API each uses in which mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporter.aws.calls import AwsCalls
from exporter.config import Config
from exporter.config.discovery import (
    AttributeFilterSettings,
    QuerySettings,
    TargetSourceSettings,
    ThingGroupSettings,
    ThingTypeSettings,
)
from exporter.fleet.targets import STATIC_SOURCE, SourceSlot
from exporter.sources.aggregates import AggregatesSource
from exporter.sources.answers import InfoReader
from exporter.sources.base import Source, Wiring
from exporter.sources.events import EventSource
from exporter.sources.index import (
    MAX_QUERY_TERMS,
    SHARDED_NAME_TERMS,
    IndexPager,
    any_of,
    fixed_queries,
    narrowed_to,
    quoted,
    thing_group_queries,
)
from exporter.sources.live import LivePoller, warn_if_budget_too_small
from exporter.sources.registry import (
    Listing,
    RegistryLister,
    attribute_listing,
    group_listing,
    type_listing,
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a config asks for: the target sources' slots, the static list, and the jobs to run."""

    slots: tuple[SourceSlot, ...]
    sources: tuple[Source, ...]
    static: tuple[str, ...] = ()  # the static list: targets from the start, no pass needed

    def source(self, name: str) -> Source:
        """The source of that name; KeyError if the plan has none."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def with_source(self, source: Source, slot: SourceSlot | None = None) -> Plan:
        """This plan and one more source; `slot` if the source names things."""
        slots = self.slots if slot is None else (*self.slots, slot)
        return Plan(slots, (*self.sources, source), self.static)


def _where(config: Config, settings: TargetSourceSettings) -> str:
    for key in ("thing_groups", "thing_types", "attributes", "queries"):
        items: tuple[TargetSourceSettings, ...] = getattr(config.discovery, key)
        if settings in items:
            return f"discovery.{key}[{items.index(settings)}]"
    raise ValueError(f"{settings!r} is not in the config")


def _listing(settings: TargetSourceSettings) -> Listing | None:
    """How the registry lists the source's things; None when only the index can (a query:
    the index pager reads it, observing nothing in live mode)."""
    if isinstance(settings, ThingGroupSettings):
        return group_listing(settings.name, recursive=settings.recursive)
    if isinstance(settings, ThingTypeSettings):
        return type_listing(settings.name)
    if isinstance(settings, AttributeFilterSettings):
        return attribute_listing(settings.attribute, settings.value, settings.thing_type)
    if isinstance(settings, QuerySettings):
        return None
    raise TypeError(f"not a discovery source: {settings!r}")


def _index_queries(
    settings: TargetSourceSettings, group_terms: int
) -> Callable[[AwsCalls], Sequence[str]]:
    if isinstance(settings, ThingGroupSettings):
        return thing_group_queries(settings.name, recursive=settings.recursive, terms=group_terms)
    if isinstance(settings, ThingTypeSettings):
        return fixed_queries([f"thingTypeName:{quoted(settings.name)}"])
    if isinstance(settings, AttributeFilterSettings):
        query = f"attributes.{settings.attribute}:{quoted(settings.value)}"
        if settings.thing_type:
            query += f" AND thingTypeName:{quoted(settings.thing_type)}"
        return fixed_queries([query])
    if isinstance(settings, QuerySettings):
        return fixed_queries([settings.query])
    raise TypeError(f"not a discovery source: {settings!r}")


def plan(config: Config, wiring: Wiring) -> Plan:
    """The sources a config asks for.

    A source in index mode pages the fleet index every poll.interval, discovering and
    observing at once. In live mode it lists its things every discovery.interval, through
    the registry's list APIs, unless registry labels are wanted and its listing has none
    (a thing group, the static list): then through the index. The live poller polls every
    thing a live-mode source names.
    """
    calls, stop, clock, shard = wiring.calls, wiring.stop, wiring.clock, wiring.shard
    # Registry info is read only when the config asks for registry labels: reading it
    # for every thing of every page would cost CPU for series nobody shows.
    info = (
        InfoReader([item.attribute for item in config.registry.attributes])
        if config.registry is not None
        else None
    )
    wants_info = config.registry is not None
    index_mode = config.poll.mode == "index"
    # Sharded, a source read through the index asks only for this shard's thingIds, and a
    # thing-group query leaves room in AWS's twelve terms for them.
    prefixes = shard.id_prefixes()
    group_terms = MAX_QUERY_TERMS if shard.whole else SHARDED_NAME_TERMS
    slots: list[SourceSlot] = []
    sources: list[Source] = []
    if config.things:
        # The static list's things are owned by name: a shard looks up only its own.
        names = [name for name in config.things.names if shard.owns(name)]
        slots.append(SourceSlot(STATIC_SOURCE, live=not index_mode, max_things=None))
        if (index_mode or wants_info) and names:
            sources.append(
                IndexPager(
                    STATIC_SOURCE,
                    "things",
                    fixed_queries(any_of("thingName", names)),
                    calls,
                    interval=config.poll.interval if index_mode else config.discovery.interval,
                    observe=index_mode,
                    info=info,
                    fixed=names,
                    clock=clock,
                )
            )
    for settings in config.discovery.sources:
        name, where = settings.source, _where(config, settings)
        live = config.mode_of(settings) == "live"
        group = settings.name if isinstance(settings, ThingGroupSettings) else None
        listing = _listing(settings)
        if live and listing is not None and (listing.carries_info or not wants_info):
            sources.append(
                RegistryLister(
                    name, where, listing, calls, interval=config.discovery.interval, info=info
                )
            )
            by_name = True
        else:
            sources.append(
                IndexPager(
                    name,
                    where,
                    narrowed_to(_index_queries(settings, group_terms), prefixes),
                    calls,
                    interval=config.discovery.interval if live else config.poll.interval,
                    observe=not live,
                    info=info,
                    clock=clock,
                )
            )
            by_name = False
        slots.append(
            SourceSlot(
                name,
                live=live,
                max_things=config.max_things_of(settings),
                group=group,
                by_name=by_name,
            )
        )
    if any(slot.live for slot in slots):
        poll = config.poll
        sources.append(
            LivePoller(
                calls,
                interval=poll.interval,
                concurrency=poll.concurrency,
                stop=stop,
                clock=clock,
                socket_information=poll.socket_information,
            )
        )
        if not index_mode:
            # The static list is known now; what discovery adds is checked once it reported.
            warn_if_budget_too_small(
                len(config.things), poll.max_requests_per_second, poll.interval
            )
    # Fleet aggregates count whole queries, not a shard's things: shard 0 alone counts
    # them, so a sum over shards never counts them twice.
    if config.aggregates.queries and wiring.shard.ordinal == 0:
        sources.append(
            AggregatesSource(config.aggregates.queries, calls, interval=config.aggregates.interval)
        )
    if config.events is not None and wiring.events is not None:
        sources.append(
            EventSource(
                config.events.for_shard(shard.ordinal),
                wiring.events,
                stop=stop,
                clock=clock,
                shard=shard,
            )
        )
    return Plan(tuple(slots), tuple(sources), config.things.names)
