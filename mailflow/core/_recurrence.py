"""Recurrence expansion: the days a rule of :class:`~mailflow.core.calendar.Recurrence` falls on.

The rules this service writes (weekly or monthly, WKST=MO, DTSTART on the rule) are expanded to dates;
meetings put their start's wall time on each, so that occurrences keep their local hour across DST
changes (which icalendar, having no expansion, cannot do). Private to :mod:`mailflow.core.calendar`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from mailflow.core._calendar_types import _BYDAY, _WEEKDAYS, Frequency, Recurrence

_MAX_STEPS = 5000
_HORIZON_DAYS = 36525
"""Recurrences are expanded a century at most: far past any series a group holds."""


def _rule_days(rule: Recurrence, first: date) -> Iterator[date]:
    # The bound (about a century of weeks) only stops a rule that never matches again; the caller's
    # until or count ends every real series long before.
    for step in range(_MAX_STEPS):
        reach = rule.interval * step * (7 if rule.frequency is Frequency.WEEKLY else 31)
        if reach > _HORIZON_DAYS:
            return
        if rule.frequency is Frequency.WEEKLY:
            monday = first - timedelta(days=first.weekday()) + timedelta(weeks=rule.interval * step)
            weekdays = sorted(_WEEKDAYS.index(c) for c in rule.byday) or [first.weekday()]
            days = [monday + timedelta(days=d) for d in weekdays]
        else:
            years, month0 = divmod(first.month - 1 + rule.interval * step, 12)
            days = _month_days(rule.byday, first.year + years, month0 + 1, first.day)
        yield from (d for d in days if d >= first)


def _month_days(byday: tuple[str, ...], year: int, month: int, day_of_month: int) -> list[date]:
    if not byday:
        return [date(year, month, day_of_month)] if day_of_month <= _month_length(year, month) else []
    found: set[date] = set()
    for code in byday:
        matched = _BYDAY.fullmatch(code)
        if matched is None:  # Recurrence.__post_init__ already refused it.
            continue
        weekday = _WEEKDAYS.index(matched.group(2))
        ordinals = [int(matched.group(1))] if matched.group(1) else [1, 2, 3, 4, 5]
        found.update(d for n in ordinals if (d := _nth_weekday(year, month, weekday, n)) is not None)
    return sorted(found)


def _month_length(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date | None:
    """The n-th (from 1) or, for negative n, the n-th last weekday of a month, or None."""
    if n > 0:
        first = date(year, month, 1)
        day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    else:
        last = date(year, month, _month_length(year, month))
        day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-n - 1))
    return day if day.month == month else None
