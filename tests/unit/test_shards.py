"""Ownership: every thing has exactly one shard, the split is even, and bad flags say why."""

from __future__ import annotations

import re
from collections import Counter

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from exporter.fleet.shards import POD_NAME_ENV, SHARD_ENV, Shard, ShardError, owner, shard_from
from exporter.names import THING_NAME_RE

thing_names = st.from_regex(THING_NAME_RE, fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.sets(thing_names, max_size=50), st.integers(1, 16))
def test_every_thing_has_exactly_one_owner(names: set[str], total: int) -> None:
    for name in names:
        owners = [k for k in range(total) if Shard(k, total).owns(name)]
        assert owners == [owner(name, total)]


@pytest.mark.parametrize("total", range(1, 17))
@pytest.mark.parametrize(
    "pattern", ["thing-{:05d}", "plant-a:pump_{}", "{:x}", "SENSOR{:07d}-eu"], ids=str
)
def test_the_split_of_100000_names_is_within_a_tenth_of_even(pattern: str, total: int) -> None:
    shares = Counter(owner(pattern.format(i), total) for i in range(100_000))
    even = 100_000 / total
    assert sorted(shares) == list(range(total))
    assert all(abs(n - even) <= 0.1 * even for n in shares.values()), shares


def test_the_owner_is_the_same_in_every_process() -> None:
    # CRC-32 of the UTF-8 name, fixed for ever: unlike Python's hash(), no process salts it,
    # so every shard agrees on every owner (and a release never moves things by itself).
    names = ("thing-00001", "pump-7", "gate:2")
    assert [owner(name, 3) for name in names] == [2, 2, 2]
    assert [owner(name, 16) for name in names] == [2, 3, 5]


def test_one_shard_owns_everything() -> None:
    assert Shard().whole
    assert Shard().owns("anything")
    assert Shard(0, 1).share(10.0) == 10.0


def test_a_shard_spends_its_share_of_each_budget() -> None:
    assert Shard(1, 4).share(100.0) == 25.0


@pytest.mark.parametrize(
    ("ordinal", "total", "message"),
    [
        (3, 3, "--shard must be between 0 and 2 (--total-shards=3 counts from 0), got 3"),
        (-1, 2, "--shard must be between 0 and 1 (--total-shards=2 counts from 0), got -1"),
        (0, 0, "--total-shards must be between 1 and 256, got 0"),
        (0, 257, "--total-shards must be between 1 and 256, got 257"),
    ],
)
def test_a_shard_out_of_range_is_a_clear_error(ordinal: int, total: int, message: str) -> None:
    with pytest.raises(ShardError) as caught:
        Shard(ordinal, total)
    assert str(caught.value) == message


@pytest.mark.parametrize("total", [2, 3, 5, 7, 16, 17, 100, 256])
def test_the_id_prefixes_cover_every_thing_id_exactly_once(total: int) -> None:
    owners: Counter[str] = Counter()
    for k in range(total):
        for prefix in Shard(k, total).id_prefixes():
            # A one-digit prefix stands for its sixteen two-digit ones.
            expanded = [prefix] if len(prefix) == 2 else [prefix + d for d in "0123456789abcdef"]
            owners.update(expanded)
    assert sorted(owners) == [f"{p:02x}" for p in range(256)]
    assert set(owners.values()) == {1}


@pytest.mark.parametrize("total", [2, 3, 5, 7, 16])
def test_the_id_ranges_split_the_fleet_within_a_prefix_of_even(total: int) -> None:
    sizes = []
    for k in range(total):
        prefixes = Shard(k, total).id_prefixes()
        sizes.append(sum(1 if len(p) == 2 else 16 for p in prefixes))
    assert max(sizes) - min(sizes) <= 1


def test_one_process_reads_the_whole_index() -> None:
    assert Shard().id_prefixes() == ()


@pytest.mark.parametrize(
    ("flag", "total", "environ", "expected"),
    [
        pytest.param(None, 1, {}, Shard(0, 1), id="one process, nothing given"),
        pytest.param(2, 3, {SHARD_ENV: "1"}, Shard(2, 3), id="the flag wins"),
        pytest.param(None, 4, {SHARD_ENV: "3", POD_NAME_ENV: "x-1"}, Shard(3, 4), id="index"),
        pytest.param(
            None,
            4,
            {SHARD_ENV: "", POD_NAME_ENV: "iot-exporter-2"},
            Shard(2, 4),
            id="no pod-index label: the pod name's ordinal",
        ),
        pytest.param(
            None,
            4,
            {POD_NAME_ENV: "release-3-exporter-1"},
            Shard(1, 4),
            id="the ordinal that ends the name, not another number in it",
        ),
    ],
)
def test_the_shard_comes_from_the_flag_the_pod_index_or_the_pod_name(
    flag: int | None, total: int, environ: dict[str, str], expected: Shard
) -> None:
    assert shard_from(flag, total, environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "--total-shards=3 needs this process's shard: --shard, or IOT_EXPORTER_SHARD"),
        ({SHARD_ENV: "two"}, "IOT_EXPORTER_SHARD: expected a whole number, 0 or more, got 'two'"),
        ({POD_NAME_ENV: "exporter"}, "'exporter' does not end in -N"),
        ({POD_NAME_ENV: "exporter-7"}, "--shard must be between 0 and 2"),
    ],
)
def test_a_shard_that_cannot_be_found_is_a_clear_error(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ShardError, match=re.escape(message)):
        shard_from(None, 3, environ)
