"""iMIP REPLY bodies, as real clients send them, read into RSVPs.

Private to :mod:`mailflow.core.calendar`, which re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from icalendar import Calendar, Component

from mailflow.core._calendar_types import _EMAIL, CalendarError, PartStat


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
