"""One thing's state after a sequence of observations, under the fleet's rules."""

from __future__ import annotations

from exporter.fleet.connectivity import Observation, ThingState, step


def replay(*observations: Observation, events: bool = False) -> ThingState:
    """The state the observations leave one thing in (event mode's rules if `events`)."""
    state: ThingState | None = None
    for observation in observations:
        state = step(state, observation, events=events).state
    assert state is not None
    return state
