"""The outbox pacer spaces deliveries to the configured rate (with a hand-moved clock)."""

from __future__ import annotations

from mailflow.app.outbox import Pacer


class FakeTime:
    """A monotonic clock and a sleep that only move when told."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_deliveries_across_calls():
    """At 30 a minute (Microsoft 365), deliveries are two seconds apart; the first goes at once."""
    fake = FakeTime()
    pacer = Pacer(30, clock=fake.clock, sleep=fake.sleep)
    pacer.wait()
    fake.now += 0.5
    pacer.wait()
    pacer.wait()
    assert [1.5, 2.0] == fake.slept


def test_pacer_does_not_wait_after_a_quiet_spell():
    """A delivery after a long pause goes at once."""
    fake = FakeTime()
    pacer = Pacer(30, clock=fake.clock, sleep=fake.sleep)
    pacer.wait()
    fake.now += 60
    pacer.wait()
    assert [] == fake.slept


def test_no_limit_never_waits():
    """A rate of 0 means no limit."""
    fake = FakeTime()
    pacer = Pacer(0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):
        pacer.wait()
    assert [] == fake.slept
