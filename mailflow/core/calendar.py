"""Calendar invitations (SPEC §4) and the meeting-time budget (SPEC §2.6).

Meetings become iMIP REQUEST or CANCEL bodies, one per attendee; iMIP REPLY bodies from real clients
become RSVPs; the two-days-a-year rule is judged with its arithmetic spelled out. Pure: every instant
(``dtstamp``, the year of a budget) is an argument; the only outside data read is the zoneinfo database.

The ``icalendar`` library builds, folds, escapes and parses. Written here instead, each with its reason:
VTIMEZONE (icalendar writes RDATE lists, which Outlook ignores), the always-quoted CN and the
comma-separated FEATURE list (icalendar quotes them otherwise) and the recurrence expansion (icalendar
has none).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress
from icalendar.parser import Parameters

__all__ = [
    "PRODID",
    "Attendee",
    "BudgetVerdict",
    "CalendarError",
    "Frequency",
    "Instance",
    "Kind",
    "Meeting",
    "Method",
    "Occurrence",
    "PartStat",
    "Recurrence",
    "Rsvp",
    "Status",
    "durations_by_year",
    "invitation",
    "meeting_budget",
    "occurrences",
    "read_reply",
    "zone_for",
]

PRODID = "-//mailflow//mailflow//EN"
"""The PRODID of every calendar the service writes."""

_UTC_NAMES = frozenset({"UTC", "ETC/UTC", "Z"})
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)")
_EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+")
_TEL = re.compile(r"tel:\+[0-9][0-9\-.()]{4,30}")
_URL = re.compile(r"https?://[^\s\"<>]+")
_PIN = re.compile(r"[A-Za-z0-9#*\-]{1,32}")
_TZID = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]{0,30}(?:/[A-Za-z0-9_+\-]{1,30}){0,2}")
_MAX_STEPS = 5000
_HORIZON_DAYS = 36525
"""Recurrences are expanded a century at most: far past any series a group holds."""
_YEARS = range(1971, 3000)
_MAX_INTERVAL = 99


class CalendarError(ValueError):
    """A meeting cannot be written as given, or a calendar body cannot be read as an iMIP REPLY."""


class Method(enum.StrEnum):
    """The iTIP methods the service sends."""

    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


class Kind(enum.StrEnum):
    """How members join a meeting."""

    WEB = "web"
    PHONE = "phone"


class Frequency(enum.StrEnum):
    """The recurrence frequencies a facilitator can ask for."""

    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class Status(enum.StrEnum):
    """A meeting's iCalendar STATUS."""

    CONFIRMED = "CONFIRMED"
    TENTATIVE = "TENTATIVE"
    CANCELLED = "CANCELLED"


class PartStat(enum.StrEnum):
    """An attendee's participation status (RFC 5545 §3.2.12)."""

    NEEDS_ACTION = "NEEDS-ACTION"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    TENTATIVE = "TENTATIVE"
    DELEGATED = "DELEGATED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Recurrence:
    """A weekly or monthly rule, bounded by ``until`` (an aware instant, written in UTC) or ``count``.

    ``byday`` holds RFC 5545 weekday codes: ``("TU",)`` for weekly rules, ``("2TU",)`` or ``("-1FR",)``
    for "the second Tuesday" or "the last Friday" of a month; empty means the start's weekday (weekly)
    or day of the month (monthly).
    """

    frequency: Frequency
    interval: int = 1
    byday: tuple[str, ...] = ()
    until: datetime | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        """Refuse rules that are unbounded or that clients would read differently."""
        if (self.until is None) == (self.count is None):
            raise CalendarError("a recurrence needs exactly one of until and count")
        if self.until is not None and self.until.tzinfo is None:
            raise CalendarError("a recurrence's until must be an aware datetime")
        if self.count is not None and self.count < 1:
            raise CalendarError("a recurrence's count must be at least 1")
        if not 1 <= self.interval <= _MAX_INTERVAL:
            raise CalendarError(f"a recurrence's interval must be 1 to {_MAX_INTERVAL}")
        for code in self.byday:
            found = _BYDAY.fullmatch(code)
            if found is None:
                raise CalendarError(f"{code!r} is not a weekday code such as TU, 2TU or -1FR")
            if found.group(1) and self.frequency is Frequency.WEEKLY:
                raise CalendarError(f"a weekly rule takes plain weekdays, not {code!r}")


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


@dataclass(frozen=True, slots=True)
class Rsvp:
    """One attendee's answer read from an iMIP REPLY.

    Attributes:
        uid: the meeting's UID.
        recurrence_id: the occurrence answered, in UTC, or None for the whole meeting.
        email: the attendee's address, lowercased, without ``mailto:``.
        partstat: the answer; an unknown value reads as NEEDS-ACTION (RFC 5545 §3.2.12).
        sequence: the SEQUENCE the reply answers (0 when absent).
        dtstamp: when the client wrote the reply, in UTC, or None when absent.
        comment: the attendee's note (COMMENT), or "".
    """

    uid: str
    recurrence_id: datetime | None
    email: str
    partstat: PartStat
    sequence: int
    dtstamp: datetime | None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """Whether a proposed meeting fits the group's yearly meeting time, with the sentence that says why."""

    allowed: bool
    year: int
    booked: timedelta
    proposed: timedelta
    budget: timedelta
    reason: str


def invitation(
    meeting: Meeting,
    attendee: Attendee,
    method: Method | str,
    dtstamp: datetime,
    overrides: Sequence[Occurrence] = (),
    *,
    occurrence: datetime | None = None,
) -> bytes:
    """The iCalendar body of one iMIP message to one attendee (SPEC §4).

    Args:
        meeting: the meeting, or the master of a recurring series.
        attendee: the one member this message goes to.
        method: REQUEST for a new or changed meeting, CANCEL for a cancellation.
        dtstamp: when the message is written (aware); written in UTC.
        overrides: moved and cancelled occurrences of a recurring meeting: cancelled ones become EXDATEs
            in the master, moved ones extra VEVENTs with their RECURRENCE-ID.
        occurrence: with CANCEL, the original start of the one occurrence cancelled; the whole meeting
            is cancelled when None.

    Returns:
        The calendar as bytes: CRLF line ends, folded at 75 octets, VTIMEZONE before the VEVENTs.

    Raises:
        CalendarError: the arguments do not describe a meeting a client could show.
    """
    method = _method(method)
    if dtstamp.tzinfo is None:
        raise CalendarError("DTSTAMP must be an aware datetime")
    _check_address(attendee.email, "attendee")
    if method is Method.REQUEST and meeting.status is Status.CANCELLED:
        raise CalendarError("a cancelled meeting is sent with CANCEL, not REQUEST")
    known = _check_overrides(meeting, overrides)
    if occurrence is not None and (method is not Method.CANCEL or occurrence.astimezone(UTC) not in known):
        raise CalendarError("occurrence= names an occurrence of a recurring meeting to CANCEL")
    zone = zone_for(meeting.tzid)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method.value)
    if zone is not UTC:
        cal.add_component(_vtimezone(meeting.tzid, meeting.start))
    stamp = dtstamp.astimezone(UTC)
    write = functools.partial(_event, meeting, attendee, stamp=stamp, zone=zone)
    if occurrence is not None:
        change = known[occurrence.astimezone(UTC)]
        start = change.start if change and change.start else occurrence
        duration = change.duration if change and change.duration else meeting.duration
        cal.add_component(write(start=start, duration=duration, status=Status.CANCELLED, original=occurrence))
        return bytes(cal.to_ical())
    status = meeting.status if method is Method.REQUEST else Status.CANCELLED
    cal.add_component(
        _master(write(start=meeting.start, duration=meeting.duration, status=status), meeting, overrides)
    )
    # A CANCEL of the whole series removes its moved occurrences with it; only a REQUEST lists them.
    moved = [o for o in overrides if not o.cancelled] if method is Method.REQUEST else []
    for change in moved:
        start = change.start or change.recurrence_id
        duration = change.duration or meeting.duration
        cal.add_component(write(start=start, duration=duration, status=status, original=change.recurrence_id))
    return bytes(cal.to_ical())


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


def read_reply(data: bytes, *, floating_tz: tzinfo | None = None) -> tuple[Rsvp, ...]:
    """Read the answers in an iMIP REPLY body as Outlook, Exchange, Apple, Gmail or Thunderbird send it.

    Args:
        data: the text/calendar part's decoded bytes (UTF-8; Latin-1 is tolerated).
        floating_tz: the zone for a RECURRENCE-ID written without zone or with an unknown TZID; such a
            reply is refused when None.

    Returns:
        One Rsvp per ATTENDEE of every VEVENT, in the order written.

    Raises:
        CalendarError: the body is not a readable REPLY (no METHOD:REPLY, no VEVENT, no UID or
            attendee, a broken date); never any other exception.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        calendars = Calendar.from_ical(text, multiple=True)
    except Exception as exc:
        # icalendar raises ValueError, KeyError or IndexError on different kinds of damage.
        raise CalendarError(f"the calendar cannot be parsed: {exc}") from exc
    if not calendars:
        raise CalendarError("no complete VCALENDAR in the body")
    answers: list[Rsvp] = []
    for cal in calendars:
        method = str(cal.get("METHOD", "")).strip().upper()
        if method != "REPLY":
            raise CalendarError(f"METHOD is {method or 'missing'}, not REPLY")
        events = cal.walk("VEVENT")
        if not events:
            raise CalendarError("the REPLY has no VEVENT")
        for event in events:
            try:
                answers.extend(_rsvps(event, floating_tz))
            except CalendarError:
                raise
            except Exception as exc:
                raise CalendarError(f"a VEVENT of the REPLY is malformed: {exc}") from exc
    return tuple(answers)


def _rsvps(event: Component, floating_tz: tzinfo | None) -> Iterator[Rsvp]:
    uid = str(event.get("UID", "")).strip()
    if not uid:
        raise CalendarError("the REPLY's VEVENT has no UID")
    recurrence_id = None
    if "RECURRENCE-ID" in event:
        recurrence_id = _utc(event.decoded("RECURRENCE-ID"), floating_tz, "RECURRENCE-ID")
    dtstamp = _utc(event.decoded("DTSTAMP"), UTC, "DTSTAMP") if "DTSTAMP" in event else None
    sequence = int(event.get("SEQUENCE", 0))
    comment = event.get("COMMENT", "")
    comment = (" ".join(str(c) for c in comment) if isinstance(comment, list) else str(comment)).strip()
    attendees = event.get("ATTENDEE", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    if not attendees:
        raise CalendarError("the REPLY names no ATTENDEE")
    for attendee in attendees:
        address = str(attendee).strip()
        if address.lower().startswith("mailto:"):
            address = address[len("mailto:") :].strip()
        if not _EMAIL.fullmatch(address):
            raise CalendarError(f"the ATTENDEE {str(attendee)!r} is not a mail address")
        try:
            partstat = PartStat(str(attendee.params.get("PARTSTAT", PartStat.NEEDS_ACTION)).upper())
        except ValueError:
            partstat = PartStat.NEEDS_ACTION
        yield Rsvp(uid, recurrence_id, address.lower(), partstat, sequence, dtstamp, comment)


def _utc(value: object, floating_tz: tzinfo | None, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise CalendarError(f"{name} is not a date with a time")
    if value.tzinfo is None:
        if floating_tz is None:
            raise CalendarError(f"{name} has no zone that can be resolved")
        value = value.replace(tzinfo=floating_tz)
    return value.astimezone(UTC)


def _method(method: Method | str) -> Method:
    try:
        return Method(str(method).upper())
    except ValueError:
        raise CalendarError(f"the method {method!r} is not REQUEST or CANCEL") from None


def _check_address(address: str, role: str) -> None:
    if not _EMAIL.fullmatch(address):
        raise CalendarError(f"the {role} address {address!r} is not a mail address")


def zone_for(tzid: str) -> tzinfo:
    """The zone an IANA name such as "Europe/Brussels" names; ``datetime.UTC`` for "UTC".

    Raises:
        CalendarError: the name is not a zone of the zoneinfo database.
    """
    if tzid.upper() in _UTC_NAMES:
        return UTC
    # The shape is checked first: ZoneInfo looks an unknown key up as a module path in the tzdata
    # package, and a deep one ("a/a/a/…") exhausts the recursion limit.
    if not _TZID.fullmatch(tzid):
        raise CalendarError(f"{tzid[:80]!r} is not an IANA time zone such as Europe/Brussels")
    try:
        return ZoneInfo(tzid)
    except (ValueError, KeyError, OSError) as exc:
        # ZoneInfoNotFoundError is a KeyError; a folder such as "America/Argentina" is an OSError.
        raise CalendarError(f"{tzid!r} is not an IANA time zone such as Europe/Brussels") from exc


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


def _master(event: Event, meeting: Meeting, overrides: Sequence[Occurrence]) -> Event:
    """Add the series' rule and its cancelled occurrences (as EXDATEs) to the master VEVENT."""
    if meeting.recurrence is not None:
        event.add("rrule", _rrule(meeting.recurrence))
        exdates = [o.recurrence_id.astimezone(zone_for(meeting.tzid)) for o in overrides if o.cancelled]
        if exdates:
            event.add("exdate", exdates)
    return event


def _event(
    meeting: Meeting,
    attendee: Attendee,
    *,
    stamp: datetime,
    zone: tzinfo,
    start: datetime,
    duration: timedelta,
    status: Status,
    original: datetime | None = None,
) -> Event:
    event = Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", stamp)
    event.add("sequence", meeting.sequence)
    if original is not None:
        event.add("recurrence-id", original.astimezone(zone))
    # Aware arithmetic in one ZoneInfo is wall-clock arithmetic; the end is found in UTC instead.
    event.add("dtstart", start.astimezone(zone))
    event.add("dtend", (start.astimezone(UTC) + duration).astimezone(zone))
    event.add("summary", meeting.summary)
    event.add("description", _description(meeting))
    event.add("location", _location(meeting))
    event.add("status", status.value)
    event.add("transp", "OPAQUE")
    if meeting.join_url:
        event.add("url", meeting.join_url)
        # FEATURE goes in as a list: one string "AUDIO,PHONE" would be written quoted, as a single
        # value, where RFC 7986 wants a comma-separated list.
        event.add(
            "conference",
            meeting.join_url,
            parameters=Parameters(VALUE="URI", FEATURE=["VIDEO"], LABEL="Join the web meeting"),
        )
    if meeting.dial_in:
        label = f"Dial in (PIN {meeting.pin})" if meeting.pin else "Dial in"
        event.add(
            "conference",
            meeting.dial_in,
            parameters=Parameters(VALUE="URI", FEATURE=["AUDIO", "PHONE"], LABEL=label),
        )
    event.add("organizer", _address(meeting.organizer_email, {"CN": meeting.organizer_name or None}))
    params = {
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": attendee.partstat.value,
        "RSVP": "TRUE" if status is not Status.CANCELLED else None,
        "CN": attendee.name or attendee.email,
    }
    event.add("attendee", _address(attendee.email, params))
    return event


class _QuotedCN(Parameters):
    """Parameters that always quote CN.

    icalendar quotes CN only when it holds a space or punctuation; SPEC §4 asks for a quoted CN on every
    address.
    """

    # icalendar annotates its tuple with its exact length, so a longer one needs the ignore.
    always_quoted = (*Parameters.always_quoted, "CN")  # type: ignore[assignment]


def _address(email: str, params: dict[str, str | None]) -> vCalAddress:
    # SPEC §4: the scheme is written in lowercase, whatever the caller passed.
    address = vCalAddress(f"mailto:{email}")
    address.params = _QuotedCN({k: v for k, v in params.items() if v is not None})
    return address


def _phone(meeting: Meeting) -> str:
    number = meeting.dial_in.removeprefix("tel:")
    return f"{number}, PIN {meeting.pin}" if meeting.pin else number


def _description(meeting: Meeting) -> str:
    lines = [meeting.description.strip(), ""] if meeting.description.strip() else []
    if meeting.join_url:
        lines.append(f"Join the web meeting: {meeting.join_url}")
    if meeting.dial_in:
        lines.append(f"Dial in by phone: {_phone(meeting)}")
    return "\n".join(lines)


def _location(meeting: Meeting) -> str:
    parts = [meeting.join_url] if meeting.join_url else []
    if meeting.dial_in:
        parts.append(f"Phone {_phone(meeting)}")
    return " / ".join(parts)


def _rrule(rule: Recurrence) -> dict[str, object]:
    parts: dict[str, object] = {"FREQ": rule.frequency.value, "INTERVAL": rule.interval}
    if rule.byday:
        parts["BYDAY"] = list(rule.byday)
    if rule.until is not None:
        parts["UNTIL"] = rule.until.astimezone(UTC)
    else:
        parts["COUNT"] = rule.count
    return parts


# Recurrence expansion: the rules this service writes (weekly or monthly, WKST=MO, DTSTART on the rule)
# expanded in the meeting's wall time, so that occurrences keep their local hour across DST changes.


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


# VTIMEZONE by hand: icalendar 7.3's Timezone.from_tzid() and add_missing_timezones() write each
# transition from 1970 to 2037 as an RDATE list (and two STANDARD observances); Outlook keeps one
# STANDARD and one DAYLIGHT with yearly RRULEs and ignores RDATEs (SPEC §4).


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


def _hours(amount: timedelta) -> str:
    """A duration as people write it: "3 h", "1 h 30 min", "45 min"."""
    hours, minutes = divmod(int(amount.total_seconds()) // 60, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"
