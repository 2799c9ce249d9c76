"""The start time, its time zone and the meeting's duration, as written in a scheduling mail.

Private to :mod:`mailflow.core.when`, which re-exports :func:`zone_for_abbreviation`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailflow.core._when_fields import _Notes, _Text
from mailflow.core._when_words import (
    _ABBREVIATIONS,
    _AT,
    _BARE_MINUTES,
    _DURATIONS,
    _EARLIEST_H_TIME,
    _H_TIME,
    _MAX_DURATION,
    _RANGE,
    _REGIONS,
    _TIME_PATTERNS,
    _WORD_DURATION,
    _WORD_MINUTES,
    _ZONE,
    _long,
    _number,
)
from mailflow.core.calendar import CalendarError, zone_for


def zone_for_abbreviation(abbreviation: str, default_tz: str, year: int) -> str | None:
    """The IANA zone meant by an abbreviation such as CET, BST or UTC, or None when it is not known.

    The network's zone wins when it goes by that abbreviation in ``year`` (CET for a network in
    Europe/Paris is Europe/Paris).
    """
    known = _ABBREVIATIONS.get(abbreviation.upper())
    if known is None:
        return None
    if known[1] is not None and abbreviation.upper() in _zone_names(default_tz, year):
        return default_tz
    return known[0]


@dataclass(frozen=True, slots=True)
class _Time:
    """A time read from the text, with the zone written right after it and the end of a written range."""

    value: time
    zone: str
    start: int
    end: int
    until: time | None = None


def _zone_names(tzid: str, year: int) -> set[str]:
    if not _valid_zone(tzid):
        return set()
    zone = zone_for(tzid)
    return {datetime(year, month, 15, tzinfo=zone).tzname() or "" for month in (1, 7)}


def _valid_zone(name: str) -> bool:
    try:
        zone_for(name)
    except CalendarError:
        return False
    return True


def _times(text: _Text) -> list[_Time]:
    found = [_time(m) for pattern in _TIME_PATTERNS for m in text.take(pattern)]
    for match in list(_H_TIME.finditer(text.value)):
        # "14h30" is a time after "at" or when no other time was written; "1h30" is then a duration.
        if _AT.search(text.value[: match.start()]) or (
            not found and int(match.group("h")) >= _EARLIEST_H_TIME
        ):
            text.blank(match.start(), match.end())
            found.append(_time(match))
    found.sort(key=lambda t: t.start)
    merged: list[_Time] = []
    for item in map(lambda t: _with_zone(text, t), found):  # noqa: C417
        previous = merged[-1] if merged else None
        if (
            previous
            and previous.until is None
            and previous.value < item.value
            and _RANGE.fullmatch(text.value[previous.end : item.start])
        ):
            merged[-1] = _Time(
                previous.value, previous.zone or item.zone, previous.start, item.end, item.value
            )
        else:
            merged.append(item)
    return merged


def _with_zone(text: _Text, item: _Time) -> _Time:
    """The time with the zone written right after it ("14:00 CET", "2pm (Brussels time)"), if any."""
    gap = re.compile(r"[ \t]{0,3}\(?[ \t]{0,2}").match(text.value, item.end)
    zone = _ZONE.match(text.value, gap.end() if gap else item.end)
    if zone is None or _zone_of(zone) is None:
        return item
    text.blank(zone.start(), zone.end())
    return _Time(item.value, zone.group(), item.start, zone.end())


def _time(match: re.Match[str]) -> _Time:
    groups = match.groupdict()
    if groups.get("noon"):
        return _Time(time(12), "", match.start(), match.end())
    hour = int(groups["h"])
    meridiem = (groups.get("ap") or "").lower().replace(".", "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    return _Time(time(hour, int(groups.get("mi") or 0)), "", match.start(), match.end())


def _zone_of(match: re.Match[str]) -> tuple[str, bool | None] | None:
    """The zone a _ZONE match names: (IANA zone or abbreviation, written as daylight time), or None."""
    groups = match.groupdict()
    if groups["offset"]:
        hours = int(groups["oh"])
        if (groups["om"] and int(groups["om"])) or hours > 14:
            return None
        # The Etc/GMT zones count the other way: UTC+1 is Etc/GMT-1.
        sign = "-" if groups["sign"] == "+" else "+"
        return ("UTC" if hours == 0 else f"Etc/GMT{sign}{hours}", None)
    if groups["abbr"]:
        return (groups["abbr"], _ABBREVIATIONS[groups["abbr"]][1])
    if groups["iana"]:
        names = [groups["iana"]]
    else:
        names = [f"{region}/{groups['city'].title().replace(' ', '_')}" for region in _REGIONS]
    return next(((name, None) for name in names if _valid_zone(name)), None)


def _zone(times: list[_Time], text: _Text, default_tz: str, today: date, notes: _Notes) -> str:
    """The meeting's zone: the one written after the time, in a Zone field or elsewhere, or the default.

    Several zones are fine only when each time carries its own ("14:00 CET / 13:00 GMT"): _start then
    checks that they name one instant. A Zone field or a sentence naming another zone is a problem.
    """
    attached = _resolved([t.zone for t in times if t.zone], default_tz, today, notes)
    general = _resolved(
        [m.group() for m in _ZONE.finditer(text.value) if _zone_of(m) is not None], default_tz, today, notes
    )
    listed = attached + [z for z in general if z not in attached]
    if not listed:
        notes.assumptions.append(f"no time zone was written: {default_tz} time assumed")
        return default_tz
    conflicting = len(general) > 1 or bool(attached and set(general) - set(attached))
    if conflicting or (len(attached) > 1 and not all(t.zone for t in times)):
        notes.problem("timezone", f"more than one time zone was found ({', '.join(listed)}): write one")
    return listed[0]


def _resolved(written: list[str], default_tz: str, today: date, notes: _Notes) -> list[str]:
    resolved: list[str] = []
    for raw in written:
        match = _ZONE.fullmatch(raw.strip(" ()"))
        zone = _zone_of(match) if match else None
        if zone is None:
            continue
        tzid = zone_for_abbreviation(zone[0], default_tz, today.year) or zone[0]
        if tzid not in resolved:
            resolved.append(tzid)
        if zone[1] is not None:
            notes.assumptions.append(f"{zone[0]} read as {tzid} time")
    return resolved


def _start(day: date | None, times: list[_Time], tzid: str, notes: _Notes) -> datetime | None:
    if not times:
        notes.problem("time", "no start time was found: write it like “14:00”")
        return None
    if day is None:
        return None
    if len({_instant(day, t, tzid) for t in times}) > 1:
        listed = ", ".join(f"{t.value:%H:%M}" for t in times)
        notes.problem("time", f"more than one start time was found ({listed}): write one")
        return None
    zone = zone_for(tzid)
    local = datetime.combine(day, times[0].value, tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        notes.problem(
            "time", f"{local:%H:%M} does not exist on {_long(day)} in {tzid}: the clocks go forward"
        )
        return None
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        notes.assumptions.append(f"{local:%H:%M} happens twice on {_long(day)} in {tzid}: the first is meant")
    _season_note(local, times[0].zone, notes)
    return local


def _instant(day: date, item: _Time, tzid: str) -> datetime:
    match = _ZONE.fullmatch(item.zone.strip(" ()")) if item.zone else None
    zone = _zone_of(match) if match else None
    if zone is not None:
        tzid = _ABBREVIATIONS.get(zone[0], zone)[0]
    return datetime.combine(day, item.value, tzinfo=zone_for(tzid)).astimezone(UTC)


def _season_note(local: datetime, written: str, notes: _Notes) -> None:
    """Say so when "CET" is written for a summer date (or "CEST" for a winter one): clock time is kept."""
    abbreviation = written.strip(" ()").split("/")[0].strip()
    daylight = _ABBREVIATIONS.get(abbreviation, ("", None))[1]
    if daylight is not None and bool(local.dst()) != daylight:
        offset = local.strftime("%z")
        notes.assumptions.append(
            f"{abbreviation} on {_long(local.date())} is {local.tzname()} (UTC{offset[:3]}:{offset[3:]}): "
            "the clock time written is kept"
        )


def _duration(
    fields: dict[str, list[str]], sources: list[_Text], times: list[_Time], notes: _Notes
) -> timedelta | None:
    found = [
        datetime.combine(date.min, t.until) - datetime.combine(date.min, t.value)
        for t in times
        if t.until is not None
    ]
    if "duration" in fields:
        sources = [_Text(" ; ".join(fields["duration"]))]
        bare = re.fullmatch(r"\s*(\d{1,3})\s*", " ".join(fields["duration"]))
        if bare and int(bare.group(1)) < _BARE_MINUTES:
            notes.problem(
                "duration", f"is “{bare.group(1)}” hours or minutes? Write “90 minutes” or “2 hours”"
            )
            return None
        if bare:
            found.append(timedelta(minutes=int(bare.group(1))))
    for source in sources:
        found.extend(_durations(source))
    distinct = sorted(set(found))
    if not distinct:
        notes.problem("duration", "no duration was found: write it like “90 minutes” or “1h30”")
        return None
    if len(distinct) > 1:
        listed = ", ".join(f"{int(d.total_seconds()) // 60} min" for d in distinct)
        notes.problem("duration", f"more than one duration was found ({listed}): write one")
        return None
    if not timedelta(0) < distinct[0] <= _MAX_DURATION:
        notes.problem("duration", "a meeting lasts more than nothing and less than a day")
        return None
    return distinct[0]


def _durations(text: _Text) -> list[timedelta]:
    found: list[timedelta] = []
    for pattern, unit in _DURATIONS:
        for match in text.take(pattern):
            groups = match.groupdict()
            if groups.get("h") is not None:
                found.append(timedelta(hours=int(groups["h"]), minutes=int(groups["m"])))
            elif groups.get("n") is not None:
                amount = groups["n"].replace(",", ".")
                number = float(amount) if amount[0].isdigit() else _number(amount)
                found.append(timedelta(minutes=round(number * unit)))
            else:
                found.append(timedelta(minutes=unit))
    found.extend(timedelta(minutes=_WORD_MINUTES[m.group("w").lower()]) for m in text.take(_WORD_DURATION))
    return found
