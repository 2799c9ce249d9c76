"""VTIMEZONE by hand, as Outlook reads it: one STANDARD and one DAYLIGHT with yearly RRULEs.

icalendar 7.3's Timezone.from_tzid() and add_missing_timezones() write each transition from 1970 to 2037 as
an RDATE list (and two STANDARD observances); Outlook keeps one STANDARD and one DAYLIGHT with yearly
RRULEs and ignores RDATEs (SPEC §4). Private to :mod:`mailflow.core.calendar`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

from mailflow.core._calendar_types import _WEEKDAYS
from mailflow.core._recurrence import _month_length, _nth_weekday


@dataclass(frozen=True, slots=True)
class _Observance:
    daylight: bool
    name: str
    offset_from: timedelta
    offset_to: timedelta
    onset: datetime
    byday: str = ""


def _vtimezone(tzid: str, start: datetime) -> Timezone:
    zone = ZoneInfo(tzid)
    local = start.astimezone(zone)
    observances = _yearly_observances(tzid, local.year)
    if observances is None:
        # No DST that year (or changes two yearly rules cannot express): the offset in force at the start.
        offset = local.utcoffset() or timedelta(0)
        onset = datetime.combine(date(1970, 1, 1), time(0))
        name = local.tzname() or tzid
        observances = (
            _Observance(daylight=False, name=name, offset_from=offset, offset_to=offset, onset=onset),
        )
    vtimezone = Timezone()
    vtimezone.add("tzid", tzid)
    for observance in observances:
        part = TimezoneDaylight() if observance.daylight else TimezoneStandard()
        part.add("dtstart", observance.onset)
        part.add("tzoffsetfrom", observance.offset_from)
        part.add("tzoffsetto", observance.offset_to)
        part.add("tzname", observance.name)
        if observance.byday:
            part.add(
                "rrule", {"FREQ": "YEARLY", "BYMONTH": observance.onset.month, "BYDAY": observance.byday}
            )
        vtimezone.add_component(part)
    return vtimezone


@functools.cache
def _yearly_observances(tzid: str, year: int) -> tuple[_Observance, ...] | None:
    """STANDARD then DAYLIGHT with yearly rules read from the year's two transitions, or None."""
    zone = ZoneInfo(tzid)
    changes = _transitions(zone, year)
    # DST as Outlook models it: two changes a year, the second undoing the first.
    if len(changes) != 2 or (changes[0][1], changes[0][2]) != (changes[1][2], changes[1][1]):
        return None
    following = _transitions(zone, year + 1)
    observances = []
    for instant, before, after in changes:
        wall = (instant + before).replace(tzinfo=None)
        ordinals = [-1] if wall.day + 7 > _month_length(year, wall.month) else []
        ordinals.append((wall.day - 1) // 7 + 1)
        # Prefer the ordinal that also gives next year's transition ("last Sunday" over "4th Sunday").
        next_walls = [(i + b).date() for i, b, a in following if (b, a) == (before, after)]
        chosen = next(
            (n for n in ordinals if _nth_weekday(year + 1, wall.month, wall.weekday(), n) in next_walls),
            ordinals[0],
        )
        onset_day = _nth_weekday(1970, wall.month, wall.weekday(), chosen) or date(1970, wall.month, 1)
        observances.append(
            _Observance(
                daylight=after > before,
                name=instant.astimezone(zone).tzname() or tzid,
                offset_from=before,
                offset_to=after,
                onset=datetime.combine(onset_day, wall.time()),
                byday=f"{chosen}{_WEEKDAYS[wall.weekday()]}",
            )
        )
    return tuple(sorted(observances, key=lambda o: o.daylight))


def _transitions(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """The UTC instants in a year when the zone's offset changes, with the offsets before and after."""
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    offset = _offset(zone, moment)
    while moment.year == year:
        later = moment + timedelta(days=1)
        if (new := _offset(zone, later)) != offset:
            low, high = moment, later
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if _offset(zone, middle) == new else (middle, high)
            found.append((high.replace(microsecond=0), offset, new))
            offset = new
        moment = later
    return found


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)
