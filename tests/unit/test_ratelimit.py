"""The request budget: even spacing, shared backoff, interruptible waits."""

from __future__ import annotations

import pytest

from exporter.aws.pacing import BACKOFF_INITIAL_SECONDS, BACKOFF_MAX_SECONDS, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_slots_are_evenly_spaced_without_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, wait=clock.wait)
    delays = [limiter.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])


def test_idle_time_is_not_banked_into_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, wait=clock.wait)
    limiter.reserve()
    clock.now += 60  # a long pause between cycles
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.1)


def test_achieved_rate_matches_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(350, clock=clock, wait=clock.wait)
    start = clock.now
    for _ in range(3500):
        assert limiter.acquire()
    assert 3500 / (clock.now - start) == pytest.approx(350, rel=0.01)


def test_throttle_pushes_everyone_back_and_doubles_until_success() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock, wait=clock.wait)
    assert limiter.throttled() == BACKOFF_INITIAL_SECONDS
    assert limiter.reserve() == pytest.approx(BACKOFF_INITIAL_SECONDS)
    assert limiter.throttled() == 2 * BACKOFF_INITIAL_SECONDS
    for _ in range(20):
        limiter.throttled()
    assert limiter.throttled() == BACKOFF_MAX_SECONDS
    limiter.succeeded()
    assert limiter.throttled() == BACKOFF_INITIAL_SECONDS


def test_backoff_stays_capped_however_long_throttling_lasts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock, wait=clock.wait)
    # Hours of throttling with no success in between: 16 workers throttled every 20 s.
    pauses = {limiter.throttled() for _ in range(5000)}
    assert max(pauses) == BACKOFF_MAX_SECONDS
    limiter.succeeded()
    assert limiter.throttled() == BACKOFF_INITIAL_SECONDS


def test_acquire_reports_a_stop_during_the_wait() -> None:
    limiter = RateLimiter(1, wait=lambda seconds: True)
    assert limiter.acquire()  # first slot is immediate
    assert not limiter.acquire()  # second must wait; the stop cuts it short


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0)
