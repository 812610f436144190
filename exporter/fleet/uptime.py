"""Time connected: each thing's seconds connected, and how long sessions last before they end.

Pure logic. A thing's connected seconds advance at each observation that shows it (they
are a counter: they never go back), from the connect time AWS reports, never from before
the exporter first saw the thing; a disconnect closes them at AWS's disconnect time.
Session lengths are taken when a thing's shown state goes from connected to disconnected:
AWS's disconnect time minus its connect time, by the reason AWS gives.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

# From a reconnect loop (seconds) to a device that stays up for weeks.
SESSION_BUCKETS = (
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86_400.0, 7 * 86_400.0,
)  # fmt: skip


def accrued(
    seconds: float,
    cursor: float | None,
    *,
    known: bool,
    was_at: float | None,
    connected: bool,
    timestamp: float | None,
    at: float,
) -> tuple[float, float | None]:
    """A thing's connected seconds and their cursor after an observation at `at` that shows
    it `connected` (or not) since AWS's `timestamp`.

    `cursor` is the instant the seconds are counted up to while the thing is connected
    (None while it is not); `was_at` is the shown state's timestamp before (its last
    disconnect, when not connected). Nothing is ever taken back: a disconnect AWS dates
    before the cursor (a lagging index kept showing the thing connected) adds nothing.
    """
    if cursor is not None:
        end = at if connected else min(timestamp if timestamp is not None else at, at)
        seconds += max(0.0, end - cursor)
        return seconds, (max(cursor, at) if connected else None)
    if not connected:
        return seconds, None
    if not known or timestamp is None:
        return seconds, at  # first sight: its past is not ours to count
    start = max(timestamp, was_at) if was_at is not None else timestamp
    return seconds + max(0.0, at - start), max(start, at)


class SessionDurations:
    """A histogram of session lengths, by the reason the session ended."""

    def __init__(self, known_reasons: Iterable[str] = ()) -> None:
        # Per reason: the count in each bucket (the last is +Inf), and the sum.
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        for reason in known_reasons:
            self._reason(reason)

    def observe(self, reason: str, seconds: float) -> None:
        counts = self._reason(reason)
        counts[bisect.bisect_left(SESSION_BUCKETS, seconds)] += 1
        self.sums[reason] += seconds

    def _reason(self, reason: str) -> list[int]:
        counts = self.buckets.get(reason)
        if counts is None:
            counts = self.buckets[reason] = [0] * (len(SESSION_BUCKETS) + 1)
            self.sums[reason] = 0.0
        return counts
