"""Meetings as invitations describe them, the members they go to, and their occurrences.

Private to :mod:`mailflow.core.calendar`, which re-exports the public names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailflow.core._calendar_types import (
    CalendarError,
    Frequency,
    Kind,
    PartStat,
    Recurrence,
    Status,
    _check_address,
    zone_for,
)
from mailflow.core._recurrence import _rule_days

_TEL = re.compile(r"tel:\+[0-9][0-9\-.()]{4,30}")
_URL = re.compile(r"https?://[^\s\"<>]+")
_PIN = re.compile(r"[A-Za-z0-9#*\-]{1,32}")
_YEARS = range(1971, 3000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Meeting:
    """One meeting, or the master of a recurring series, as invitations describe it."""

    uid: str
    sequence: int
    summary: str
    start: datetime
    duration: timedelta
    tzid: str
    kind: Kind
    organizer_email: str
    organizer_name: str = ""
    description: str = ""
    join_url: str = ""
    dial_in: str = ""
    pin: str = ""
    recurrence: Recurrence | None = None
    status: Status = Status.CONFIRMED

    def __post_init__(self) -> None:
        """Refuse a meeting that no client could show correctly."""
        if not self.uid or any(c in self.uid for c in "\r\n"):
            raise CalendarError("a meeting needs a UID on one line")
        if self.sequence < 0:
            raise CalendarError("SEQUENCE starts at 0")
        if self.start.tzinfo is None:
            raise CalendarError("a meeting's start must be an aware datetime, never floating")
        if self.start.year not in _YEARS:
            raise CalendarError(f"a meeting's year must be {_YEARS.start} to {_YEARS.stop - 1}")
        if self.duration <= timedelta(0):
            raise CalendarError("a meeting's duration must be positive")
        zone_for(self.tzid)
        _check_address(self.organizer_email, "organizer")
        self._check_access()
        rule = self.recurrence
        if rule is not None and rule.until is not None and rule.until < self.start:
            raise CalendarError("the recurrence ends before the meeting starts")
        if rule is not None and next(_local_starts(self), None) != self.start:
            raise CalendarError("the start must be the first occurrence of the recurrence rule")
        # Outlook moves a monthly meeting on the 29th-31st to a short month's last day; RFC 5545 clients
        # skip that month. Refused, so that every attendee sees the same dates.
        local_day = self.start.astimezone(zone_for(self.tzid)).day
        if rule is not None and rule.frequency is Frequency.MONTHLY and not rule.byday and local_day > 28:
            raise CalendarError("a monthly meeting by date must fall on the 1st to the 28th")

    def _check_access(self) -> None:
        if self.join_url and not _URL.fullmatch(self.join_url):
            raise CalendarError(f"the join link {self.join_url!r} is not an http(s) URL")
        if self.dial_in and not _TEL.fullmatch(self.dial_in):
            raise CalendarError(f"the dial-in {self.dial_in!r} is not a tel:+… number")
        if self.pin and not _PIN.fullmatch(self.pin):
            raise CalendarError("a PIN is up to 32 letters, digits, #, * or -")
        if self.kind is Kind.WEB and not self.join_url:
            raise CalendarError("a web meeting needs a join link")
        if self.kind is Kind.PHONE and not self.dial_in:
            raise CalendarError("a phone meeting needs a dial-in number")


@dataclass(frozen=True, slots=True, kw_only=True)
class Attendee:
    """The member one invitation is addressed to, with the PARTSTAT the service last recorded."""

    email: str
    name: str = ""
    partstat: PartStat = PartStat.NEEDS_ACTION


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """A change to one occurrence of a recurring meeting, named by its original start.

    Either ``cancelled``, or moved to ``start`` and/or given another ``duration``.
    """

    recurrence_id: datetime
    start: datetime | None = None
    duration: timedelta | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        """Refuse an override that says nothing, or both cancels and moves."""
        if self.recurrence_id.tzinfo is None or (self.start is not None and self.start.tzinfo is None):
            raise CalendarError("an occurrence's times must be aware datetimes")
        changed = self.start is not None or self.duration is not None
        if self.cancelled == changed:
            raise CalendarError("an occurrence is either cancelled or moved, not both or neither")
        if self.duration is not None and self.duration <= timedelta(0):
            raise CalendarError("an occurrence's duration must be positive")


@dataclass(frozen=True, slots=True)
class Instance:
    """One occurrence that takes place: its original start and the start and duration it has now."""

    recurrence_id: datetime
    start: datetime
    duration: timedelta


def occurrences(meeting: Meeting, overrides: Sequence[Occurrence] = ()) -> tuple[Instance, ...]:
    """Every occurrence that takes place, moved ones at their new time, cancelled ones left out.

    Raises:
        CalendarError: an override names no occurrence of the meeting.
    """
    known = _check_overrides(meeting, overrides)
    result = []
    for start in _local_starts(meeting):
        change = known.get(start.astimezone(UTC))
        if change is not None and change.cancelled:
            continue
        moved = change.start if change and change.start else start
        duration = change.duration if change and change.duration else meeting.duration
        result.append(Instance(start, moved, duration))
    return tuple(result)


def durations_by_year(meeting: Meeting, overrides: Sequence[Occurrence] = ()) -> dict[int, list[timedelta]]:
    """The durations of a meeting's occurrences, by calendar year of their start in the meeting's zone."""
    zone = zone_for(meeting.tzid)
    years: dict[int, list[timedelta]] = {}
    for instance in occurrences(meeting, overrides):
        years.setdefault(instance.start.astimezone(zone).year, []).append(instance.duration)
    return years


def _check_overrides(meeting: Meeting, overrides: Sequence[Occurrence]) -> dict[datetime, Occurrence | None]:
    """Map each occurrence's UTC start to its override (None when unchanged); refuse stray overrides."""
    if not overrides and meeting.recurrence is None:
        return {}
    if meeting.recurrence is None:
        raise CalendarError("only a recurring meeting has occurrences to move or cancel")
    known: dict[datetime, Occurrence | None] = {s.astimezone(UTC): None for s in _local_starts(meeting)}
    for change in overrides:
        key = change.recurrence_id.astimezone(UTC)
        if key not in known:
            raise CalendarError(f"{change.recurrence_id.isoformat()} is not an occurrence of the meeting")
        if known[key] is not None:
            raise CalendarError(f"the occurrence {change.recurrence_id.isoformat()} is changed twice")
        known[key] = change
    return known


def _local_starts(meeting: Meeting) -> Iterator[datetime]:
    zone = zone_for(meeting.tzid)
    first = meeting.start.astimezone(zone)
    rule = meeting.recurrence
    if rule is None:
        yield first
        return
    for produced, day in enumerate(_rule_days(rule, first.date()), start=1):
        start = datetime.combine(day, first.time(), tzinfo=zone)
        if rule.until is not None and start > rule.until:
            return
        yield start
        if rule.count is not None and produced >= rule.count:
            return
