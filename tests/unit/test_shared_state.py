"""The shared state's gate: no name AWS could not have issued becomes a target."""

from __future__ import annotations

import pytest

from exporter.fleet.connectivity import Observation
from exporter.fleet.shared import SharedState
from exporter.fleet.targets import Found, SourceSlot

SOURCE = "thing_group:g"


def state() -> SharedState:
    shared = SharedState((), clock=lambda: 0.0)
    shared.configure(
        [SourceSlot(SOURCE, live=False, max_things=None)], (), events=False, aggregates=()
    )
    return shared


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("pump-7", False),
        ("a:b_c-9", False),
        ("x" * 128, False),
        ("x" * 129, True),
        ("", True),
        ('pump"7', True),
        ("valve\\2", True),
        ("line\nbreak", True),
        ("with space", True),
        ("pümp", True),
    ],
)
def test_found_refuses_a_name_aws_could_not_have_issued(name: str, refused: bool) -> None:
    shared = state()
    assert shared.found(SOURCE, [Found("ok-1"), Found(name)]) == ([name] if refused else [])
    assert shared.targeted() == (1 if refused else 2)
    # An observation of a refused name is ignored like any thing no source targets.
    summary = shared.observed([Observation.ok(name, 0.0, connected=True, timestamp=1.0)])
    assert summary.ignored == (1 if refused else 0)


def test_a_refused_name_is_refused_on_every_page() -> None:
    shared = state()
    assert shared.found(SOURCE, [Found('a"b')]) == ['a"b']
    assert shared.found(SOURCE, [Found('a"b'), Found("c")]) == ['a"b']
    shared.settled(SOURCE, {"c"})
    assert shared.targeted() == 1


def test_a_source_a_reload_removed_mid_pass_changes_nothing() -> None:
    """Its pass may end after the reload: what it still reports is dropped, and the
    counts read afterwards are the new sources' alone."""
    shared = state()
    shared.found(SOURCE, [Found("a")])
    shared.configure(
        [SourceSlot("other", live=False, max_things=None)], (), events=False, aggregates=()
    )
    shared.begin(SOURCE)
    assert shared.found(SOURCE, [Found("b"), Found('bad"name')]) == []
    shared.settled(SOURCE, {"b"})
    assert shared.targeted() == 0
    assert set(shared.counts()) == {"other"}
