"""The target set: sources' answers merged, last good answers kept, the cap, reloads."""

from __future__ import annotations

import pytest

from exporter.fleet.targets import Found, RegistryInfo, SourceCount, SourceSlot, Targets

GROUP = SourceSlot("thing_group:a", live=True, max_things=3)
QUERY = SourceSlot("query:q", live=False, max_things=None)


def found(*names: str, info: RegistryInfo | None = None) -> list[Found]:
    return [Found(name, info) for name in names]


def test_a_thing_named_by_several_sources_is_one_target() -> None:
    targets = Targets([GROUP, QUERY])
    assert targets.extend(GROUP.name, found("x", "y")) == ["x", "y"]
    assert targets.extend(QUERY.name, found("y", "z")) == ["z"]
    assert targets.sorted_names() == ["x", "y", "z"]
    # Live if any source naming it is live.
    assert sorted(targets.live_names()) == ["x", "y"]


def test_a_thing_leaves_only_when_no_source_names_it() -> None:
    targets = Targets([GROUP, QUERY])
    targets.extend(GROUP.name, found("x", "y"))
    targets.extend(QUERY.name, found("y"))
    assert targets.settle(GROUP.name, {"x"}) == []  # y is still the query's
    assert "y" in targets
    assert targets.settle(QUERY.name, set()) == ["y"]
    assert targets.sorted_names() == ["x"]
    assert targets.count(GROUP.name) == SourceCount(things=1, refused=0)


def test_settling_is_the_only_way_things_leave_so_a_failed_pass_keeps_the_last_list() -> None:
    targets = Targets([GROUP])
    targets.extend(GROUP.name, found("x", "y"))
    targets.settle(GROUP.name, {"x", "y"})
    # A pass that got one page and then failed reports what it found, never settles.
    targets.extend(GROUP.name, found("x"))
    assert targets.sorted_names() == ["x", "y"]


def test_the_cap_refuses_new_things_and_keeps_those_already_shown() -> None:
    targets = Targets([GROUP])  # max_things 3
    targets.extend(GROUP.name, found("a", "b", "c", "d", "e"))
    targets.settle(GROUP.name, {"a", "b", "c", "d", "e"})
    assert targets.sorted_names() == ["a", "b", "c"]
    assert targets.count(GROUP.name) == SourceCount(things=3, refused=2)
    # Next pass: "a" is gone, a new "0" comes first in name order; the kept ones stay.
    targets.extend(GROUP.name, found("0", "b", "c", "d"))
    assert targets.sorted_names() == ["a", "b", "c"]  # full until "a" leaves
    targets.settle(GROUP.name, {"0", "b", "c", "d"})
    assert targets.sorted_names() == ["b", "c"]
    assert targets.count(GROUP.name) == SourceCount(things=2, refused=2)
    targets.extend(GROUP.name, found("0", "b", "c", "d"))
    targets.settle(GROUP.name, {"0", "b", "c", "d"})
    assert targets.sorted_names() == ["0", "b", "c"]
    assert targets.count(GROUP.name) == SourceCount(things=3, refused=1)


def test_a_thing_another_source_holds_still_counts_against_the_cap() -> None:
    targets = Targets([GROUP, QUERY])
    targets.extend(QUERY.name, found("a", "b", "c", "d"))
    targets.extend(GROUP.name, found("a", "b", "c", "d"))
    assert targets.count(GROUP.name) == SourceCount(things=3, refused=0)
    targets.settle(GROUP.name, {"a", "b", "c", "d"})
    assert targets.count(GROUP.name) == SourceCount(things=3, refused=1)
    assert len(targets) == 4  # the query names "d"


def test_registry_info_is_taken_from_whichever_source_has_it() -> None:
    targets = Targets([GROUP, QUERY])
    pump = RegistryInfo("pump", ("plant-a",))
    targets.extend(QUERY.name, found("x", info=pump))
    targets.extend(GROUP.name, found("x"))  # a listing without info keeps the info
    assert targets.things["x"].info == pump
    valve = RegistryInfo("valve", ("plant-a",))
    targets.extend(QUERY.name, found("x", info=valve))
    assert targets.things["x"].info == valve


def test_reconfigure_keeps_what_kept_sources_found_and_drops_removed_sources() -> None:
    targets = Targets([GROUP, QUERY])
    targets.extend(GROUP.name, found("x", "y"))
    targets.extend(QUERY.name, found("y", "z"))
    other = SourceSlot("thing_type:t", live=True, max_things=None)
    left = targets.reconfigure([SourceSlot(QUERY.name, live=True, max_things=None), other])
    assert sorted(left) == ["x"]
    assert targets.sorted_names() == ["y", "z"]
    assert sorted(targets.live_names()) == ["y", "z"]  # the query became live
    assert targets.count(QUERY.name).things == 2
    assert targets.count(other.name).things == 0


def test_duplicate_source_names_are_a_bug() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Targets([GROUP, GROUP])


def test_sorted_names_follow_changes() -> None:
    targets = Targets([QUERY])
    targets.extend(QUERY.name, found("b"))
    assert targets.sorted_names() == ["b"]
    targets.extend(QUERY.name, found("a"))
    assert targets.sorted_names() == ["a", "b"]
    targets.settle(QUERY.name, {"a"})
    assert targets.sorted_names() == ["a"]


def test_a_failed_pass_s_refusals_are_not_added_to_the_next_pass() -> None:
    targets = Targets([GROUP])
    names = ("a", "b", "c", "d", "e")
    targets.begin(GROUP.name)
    targets.extend(GROUP.name, found(*names))  # the pass fails here: it never settles
    targets.begin(GROUP.name)
    targets.extend(GROUP.name, found(*names))
    targets.settle(GROUP.name, set(names))
    assert targets.count(GROUP.name) == SourceCount(things=3, refused=2)
