"""The first meeting's date and the repetition written with it ("every second Tuesday for six months").

Private to :mod:`mailflow.core.when`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailflow.core._when_fields import _Notes, _Text
from mailflow.core._when_words import (
    _BARE_WEEKDAY,
    _CODES,
    _DATE_PATTERNS,
    _DAY_NAMES,
    _LAST_SAFE_MONTHDAY,
    _MONTH_NAMES,
    _MONTHLY,
    _MONTHLY_NTH,
    _MONTHS,
    _ORDINALS,
    _RELATIVE,
    _SPAN,
    _STEPS,
    _TIMES_COUNT,
    _UNTIL,
    _WEEKDAYS,
    _WEEKLY,
    _WEEKLY_ON,
    _WORD_INTERVALS,
    _YEARS_AHEAD,
    _long,
    _number,
)
from mailflow.core.calendar import CalendarError, Frequency, Recurrence, zone_for


@dataclass(frozen=True, slots=True)
class _Rule:
    """A repetition as written, before the start is known."""

    frequency: Frequency
    interval: int
    weekdays: tuple[int, ...] = ()
    ordinal: int = 0
    until: tuple[int | None, int, int] | None = None
    span: tuple[int, str] | None = None
    count: int | None = None


def _rule(text: _Text, notes: _Notes) -> _Rule | None:
    if found := text.take(_MONTHLY_NTH):
        g = found[0].groupdict()
        ordinal = _ORDINALS[(g["ord"] or g["ord2"]).lower()]
        weekday = _WEEKDAYS[(g["wd"] or g["wd2"]).lower()]
        rule = _Rule(Frequency.MONTHLY, _number(g["n"] or g["n2"] or "1"), (weekday,), ordinal)
    elif found := text.take(_WEEKLY_ON):
        g = found[0].groupdict()
        days = tuple(sorted({_WEEKDAYS[w.lower()] for w in (g["wd"], g["wd2"]) if w}))
        rule = _Rule(Frequency.WEEKLY, _number(g["n"] or "1"), days)
        if g["n"] and g["n"].lower() in _STEPS:
            notes.assumptions.append(
                f"“{found[0].group().strip()}” read as every {rule.interval} weeks; for a monthly meeting "
                "write “the second Tuesday of every month”"
            )
    elif found := text.take(_WEEKLY):
        g = found[0].groupdict()
        rule = _Rule(
            Frequency.WEEKLY, _WORD_INTERVALS[g["word"].lower()] if g["word"] else _number(g["n"] or "1")
        )
    elif found := text.take(_MONTHLY):
        g = found[0].groupdict()
        rule = _Rule(
            Frequency.MONTHLY, _WORD_INTERVALS[g["word"].lower()] if g["word"] else _number(g["n"] or "1")
        )
    else:
        return None
    return _rule_end(text, rule)


def _rule_end(text: _Text, rule: _Rule) -> _Rule:
    for keyword in _UNTIL.finditer(text.value):
        for pattern in _DATE_PATTERNS:
            if (match := pattern.match(text.value, keyword.end())) is not None:
                text.blank(keyword.start(), match.end())
                return dataclasses.replace(rule, until=_date_parts(match))
    if found := text.take(_SPAN):
        unit = found[0].group("unit").lower().rstrip("s")
        return dataclasses.replace(rule, span=(_number(found[0].group("n")), unit))
    if found := text.take(_TIMES_COUNT):
        return dataclasses.replace(rule, count=_number(found[0].group("n")))
    return rule


def _date_parts(match: re.Match[str]) -> tuple[int | None, int, int]:
    groups = match.groupdict()
    month = _MONTHS[groups["mn"].lower()] if groups.get("mn") else int(groups["m"])
    year = int(groups["y"]) if groups.get("y") else None
    return (year, month, int(groups["d"]))


def _resolve(parts: tuple[int | None, int, int], after: date) -> date:
    """The date itself, or for a date without a year the first such date on or after ``after``."""
    year, month, day = parts
    if year is not None:
        return date(year, month, day)
    # Nine years always hold a 29 February.
    for candidate_year in range(after.year, after.year + 9):
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if candidate >= after:
            return candidate
    raise ValueError(f"{day}/{month} is not a date")


def _day(text: _Text, today: date, rule: _Rule | None, notes: _Notes) -> date | None:
    days: dict[date, str] = {}
    for pattern in _DATE_PATTERNS:
        for match in text.take(pattern):
            found = _written_day(match, today, notes)
            if found is not None:
                days.setdefault(found, match.group().strip())
    for match in text.take(_RELATIVE):
        if match.group("word"):
            found = today + timedelta(days=0 if match.group("word").lower() == "today" else 1)
        else:
            found = _next_weekday(today, _WEEKDAYS[match.group("wd").lower()])
        days.setdefault(found, match.group().strip())
    if len(days) > 1:
        listed = " and ".join(_long(d) for d in sorted(days))
        notes.problem("date", f"more than one date was found ({listed}): write only the first meeting's date")
        return None
    if not days:
        return _implied_day(text, today, rule, notes)
    found = next(iter(days))
    if found < today:
        notes.problem("date", f"{_long(found)} is in the past")
        return None
    return found


def _written_day(match: re.Match[str], today: date, notes: _Notes) -> date | None:
    parts = _date_parts(match)
    written = match.group().strip()
    try:
        found = _resolve(parts, today)
    except ValueError:
        notes.problem("date", f"“{written}” is not a date in the calendar")
        return None
    weekday = match.group("wd")
    if weekday and _WEEKDAYS[weekday.lower()] != found.weekday():
        written_day = f"{found.day} {_MONTH_NAMES[found.month - 1]} {found.year}"
        notes.problem("date", f"{written_day} is a {_DAY_NAMES[found.weekday()]}, not a {weekday}")
    if match.groupdict().get("sep") == "/" and parts[1] <= 12 and parts[2] <= 12 and parts[1] != parts[2]:
        notes.assumptions.append(f"{written} read day first, as {_long(found)}")
    if parts[0] is None:
        notes.assumptions.append(f"“{written}” read as {_long(found)}")
    if found.year > today.year + _YEARS_AHEAD:
        notes.problem("date", f"{_long(found)} is more than {_YEARS_AHEAD} years ahead")
        return None
    return found


def _implied_day(text: _Text, today: date, rule: _Rule | None, notes: _Notes) -> date | None:
    """The first meeting's day when no date is written: from the rule's weekday, or a bare weekday."""
    if rule is not None and rule.weekdays:
        weekday = rule.weekdays[0]
    elif found := text.take(_BARE_WEEKDAY):
        weekday = _WEEKDAYS[found[0].group("wd").lower()]
    else:
        notes.problem("date", "no date was found: write it like “12 March 2027”")
        return None
    day = _next_weekday(today, weekday)
    if rule is not None and rule.ordinal:
        day = _first_nth_weekday(today + timedelta(days=1), weekday, rule.ordinal)
    notes.assumptions.append(f"no date was written: the first meeting is on {_long(day)}")
    return day


def _next_weekday(after: date, weekday: int) -> date:
    """The first such weekday strictly after ``after`` ("next Tuesday" said on a Tuesday is a week on)."""
    return after + timedelta(days=(weekday - after.weekday() - 1) % 7 + 1)


def _first_nth_weekday(after: date, weekday: int, ordinal: int) -> date:
    month = date(after.year, after.month, 1)
    while (candidate := _nth_weekday(month, weekday, ordinal)) is None or candidate < after:
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return candidate


def _nth_weekday(month: date, weekday: int, ordinal: int) -> date | None:
    if ordinal > 0:
        day = month + timedelta(days=(weekday - month.weekday()) % 7 + 7 * (ordinal - 1))
    else:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        last = following - timedelta(days=1)
        day = last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-ordinal - 1))
    return day if day.month == month.month else None


def _recurrence(rule: _Rule, start: datetime | None, tzid: str, notes: _Notes) -> Recurrence | None:
    if start is None:
        return None
    until = _until(rule, start, tzid)
    problem = _rule_mismatch(rule, start) or (until if isinstance(until, str) else "")
    if problem:
        notes.problem("recurrence", problem)
        return None
    byday = tuple(f"{rule.ordinal}{_CODES[d]}" if rule.ordinal else _CODES[d] for d in rule.weekdays)
    try:
        return Recurrence(
            frequency=rule.frequency,
            interval=rule.interval,
            byday=byday,
            until=until if isinstance(until, datetime) else None,
            count=rule.count,
        )
    except CalendarError as error:
        notes.problem("recurrence", str(error))
        return None


def _until(rule: _Rule, start: datetime, tzid: str) -> datetime | str | None:
    """The series' UNTIL in UTC, None when it ends by a count, or a sentence saying what is wrong."""
    if rule.until is not None:
        return _until_date(rule.until, start, tzid)
    if rule.span is not None:
        return _until_span(rule.span, start, tzid)
    if rule.count is None:
        return "the series has no end: add “until 30 June 2027” or “for six months”"
    return None


def _until_date(parts: tuple[int | None, int, int], start: datetime, tzid: str) -> datetime | str:
    try:
        last = _resolve(parts, start.date())
    except ValueError:
        return "the end date of the series is not a date in the calendar"
    if not start.date() <= last <= start.date().replace(year=start.year + _YEARS_AHEAD, day=28):
        return f"the series should end after its first meeting and within {_YEARS_AHEAD} years"
    return datetime.combine(last, time(23, 59, 59), tzinfo=zone_for(tzid)).astimezone(UTC)


def _until_span(span: tuple[int, str], start: datetime, tzid: str) -> datetime | str:
    amount, unit = span
    if amount * {"year": 365, "month": 31, "week": 7}[unit] > _YEARS_AHEAD * 366:
        return f"a series may run {_YEARS_AHEAD} years at most"
    end = _add_months(start.replace(tzinfo=None), {"year": 12 * amount, "month": amount}.get(unit, 0))
    end += timedelta(weeks=amount if unit == "week" else 0)
    # "For six months" from 9 March ends before 9 September: the last second before is the UNTIL.
    return (end.replace(tzinfo=zone_for(tzid)) - timedelta(seconds=1)).astimezone(UTC)


def _rule_mismatch(rule: _Rule, start: datetime) -> str:
    weekday = start.weekday()
    if rule.weekdays and weekday not in rule.weekdays:
        days = " and ".join(f"{_DAY_NAMES[d]}s" for d in rule.weekdays)
        return f"{_long(start.date())} is a {_DAY_NAMES[weekday]}, but the meetings are on {days}"
    if rule.ordinal and _nth_weekday(start.date().replace(day=1), weekday, rule.ordinal) != start.date():
        return f"{_long(start.date())} is not the day of the month the rule names"
    if rule.frequency is Frequency.MONTHLY and not rule.weekdays and start.day > _LAST_SAFE_MONTHDAY:
        return (
            f"not every month has a day {start.day}: choose a day up to the 28th, or write "
            "“the last Friday of every month”"
        )
    return ""


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later, or that month's last day when it is shorter."""
    years, month0 = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    following = date(year + (month0 + 1) // 12, (month0 + 1) % 12 + 1, 1)
    last_day = (following - timedelta(days=1)).day
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))
