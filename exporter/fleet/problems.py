"""Which things a page of problems lists: under the cap, the longest-disconnected first."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from exporter.fleet.connectivity import ThingState

Problem = tuple[str, ThingState]


def ranked(problems: Sequence[Problem], cap: int) -> tuple[list[Problem], int]:
    """At most `cap` of `problems`, and how many things in trouble were left out.

    In a mass outage the page keeps what an operator looks at first: the things
    disconnected longest, then those whose observation fails, then those that came back
    most recently. Only things still in trouble count as left out: one that came back
    and did not fit is no longer a problem an alert should page on.
    """
    if len(problems) <= cap:
        return list(problems), 0
    # The ranking reads every problem's priority once; counting its groups on the way
    # spares a second pass over what may be half a million things.
    groups = [0, 0, 0]

    def counted(problem: Problem) -> tuple[int, float, str]:
        rank = priority(problem)
        groups[rank[0]] += 1
        return rank

    kept = heapq.nsmallest(cap, problems, key=counted)
    in_trouble_now = groups[0] + groups[1]  # disconnected or failing; group 2 came back
    return kept, max(0, in_trouble_now - cap)


def priority(problem: Problem) -> tuple[int, float, str]:
    """Smaller first; the name breaks ties so the page is the same for the same state."""
    name, state = problem
    if not state.connected and state.timestamp is not None:
        return 0, state.timestamp, name  # disconnected since then
    at = state.trouble_at if state.trouble_at is not None else math.inf
    return (1 if state.last_error is not None else 2), -at, name
