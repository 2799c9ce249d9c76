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

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.parser import Parameters

from mailflow.core._budget import BudgetVerdict, meeting_budget
from mailflow.core._calendar_types import (
    CalendarError,
    Frequency,
    Kind,
    Method,
    PartStat,
    Recurrence,
    Status,
    _check_address,
    zone_for,
)
from mailflow.core._ics_reply import Rsvp, read_reply
from mailflow.core._meeting import (
    Attendee,
    Instance,
    Meeting,
    Occurrence,
    _check_overrides,
    durations_by_year,
    occurrences,
)
from mailflow.core._vtimezone import _vtimezone

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
    "invitations",
    "meeting_budget",
    "occurrences",
    "read_reply",
    "zone_for",
]

PRODID = "-//mailflow//mailflow//EN"
"""The PRODID of every calendar the service writes."""


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


_PLACEHOLDER = "attendee.placeholder@invalid.example"


def invitations(
    meeting: Meeting,
    attendees: Sequence[Attendee],
    method: Method | str,
    dtstamp: datetime,
    overrides: Sequence[Occurrence] = (),
    *,
    occurrence: datetime | None = None,
) -> list[bytes]:
    """What :func:`invitation` gives for each of ``attendees``, byte for byte, at a fraction of the cost.

    The calendar is written once, for a placeholder attendee; each body then gets the attendee's own ATTENDEE
    lines in place of the placeholder's. A content line is folded on its own, so the result is the same.
    """
    if not attendees:
        return []
    for attendee in attendees:
        _check_address(attendee.email, "attendee")
    stand_in = Attendee(email=_PLACEHOLDER)
    template = invitation(meeting, stand_in, method, dtstamp, overrides, occurrence=occurrence)
    cancelled = _method(method) is Method.CANCEL or occurrence is not None
    status = Status.CANCELLED if cancelled else meeting.status
    placeholder = _attendee_line(stand_in, status)
    if template.count(placeholder) < 1:  # pragma: no cover - the placeholder is always written
        raise CalendarError("the invitation template lost its attendee line")
    return [template.replace(placeholder, _attendee_line(attendee, status)) for attendee in attendees]


def _attendee_line(attendee: Attendee, status: Status) -> bytes:
    """The folded ATTENDEE content line (with its CRLF) :func:`_event` writes for ``attendee``."""
    event = Event()
    event.add("attendee", _address(attendee.email, _attendee_params(attendee, status)))
    body = bytes(event.to_ical())
    return body[len(b"BEGIN:VEVENT\r\n") : -len(b"END:VEVENT\r\n")]


def _attendee_params(attendee: Attendee, status: Status) -> dict[str, str | None]:
    return {
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": attendee.partstat.value,
        "RSVP": "TRUE" if status is not Status.CANCELLED else None,
        "CN": attendee.name or attendee.email,
    }


def _method(method: Method | str) -> Method:
    try:
        return Method(str(method).upper())
    except ValueError:
        raise CalendarError(f"the method {method!r} is not REQUEST or CANCEL") from None


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
    event.add("attendee", _address(attendee.email, _attendee_params(attendee, status)))
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
