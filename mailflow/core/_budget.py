"""The meeting-time budget (SPEC §2.6): the two-days-a-year rule, judged with its arithmetic spelled out.

Private to :mod:`mailflow.core.calendar`, which re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """Whether a proposed meeting fits the group's yearly meeting time, with the sentence that says why."""

    allowed: bool
    year: int
    booked: timedelta
    proposed: timedelta
    budget: timedelta
    reason: str


def meeting_budget(
    year: int,
    booked: Iterable[timedelta],
    proposed: timedelta | Iterable[timedelta],
    *,
    days: int = 2,
    hours_per_day: float = 8,
) -> BudgetVerdict:
    """Judge the two-days-a-year rule (SPEC §2.6) for a proposed meeting or series in one year.

    Args:
        year: the calendar year judged.
        booked: the durations of the group's meetings held or scheduled in that year, the proposal excluded.
        proposed: the proposed meeting's duration, or the durations of a series' occurrences in that year.
        days: the days a year participation may take.
        hours_per_day: the hours in one such day.

    Returns:
        The verdict; reaching the budget exactly is allowed, passing it is not.
    """
    parts = [proposed] if isinstance(proposed, timedelta) else list(proposed)
    booked_total = sum(booked, timedelta(0))
    proposed_total = sum(parts, timedelta(0))
    total = booked_total + proposed_total
    day = timedelta(hours=hours_per_day)
    budget = day * days
    count_words = {1: "one day", 2: "two days", 3: "three days"}
    allowance = f"{_hours(budget)} ({count_words.get(days, f'{days} days')} of {_hours(day)}) a year allows"
    if len(parts) == 1:
        what = f"this {_hours(proposed_total)} meeting"
    else:
        what = f"these {len(parts)} meetings ({_hours(proposed_total)} in all)"
    allowed = total <= budget
    if allowed:
        verb = "brings" if len(parts) == 1 else "bring"
        reason = f"{what} {verb} the group's meetings in {year} to {_hours(total)}, within the {allowance}"
    else:
        reason = f"{what} would bring the group's meetings in {year} to {_hours(total)}, over the {allowance}"
    return BudgetVerdict(allowed, year, booked_total, proposed_total, budget, reason)


def _hours(amount: timedelta) -> str:
    """A duration as people write it: "3 h", "1 h 30 min", "45 min"."""
    hours, minutes = divmod(int(amount.total_seconds()) // 60, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
