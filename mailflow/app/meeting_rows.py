"""Meeting rows and the calendar's view of them: the conversions every meeting use case shares."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.core import calendar as cal
from mailflow.store.schema import Attendance, Meeting, MeetingOccurrence

_TEL_CHARS = re.compile(r"[^0-9+]")
_STAMP = "%Y%m%dT%H%M%SZ"


def tel_uri(number: str) -> str:
    """A dial-in number as ``tel:+…`` ("+32 2 123 45 67" -> "tel:+3221234567"); "" stays ""."""
    if not number.strip():
        return ""
    digits = _TEL_CHARS.sub("", number.removeprefix("tel:"))
    return f"tel:{digits if digits.startswith('+') else '+' + digits.lstrip('0')}"


def occurrence_key(recurrence_id: datetime | None) -> str:
    """The attendance key of one occurrence ("" for the whole meeting)."""
    return "" if recurrence_id is None else recurrence_id.astimezone(UTC).strftime(_STAMP)


def _recurrence(row: Meeting) -> cal.Recurrence | None:
    if not row.frequency:
        return None
    return cal.Recurrence(
        frequency=cal.Frequency(row.frequency),
        interval=row.interval,
        byday=tuple(filter(None, row.byday.split(","))),
        until=row.until,
        count=row.count,
    )


def to_core(row: Meeting, organizer_name: str, organizer_email: str) -> cal.Meeting:
    """The calendar's view of a stored meeting."""
    return cal.Meeting(
        uid=row.uid,
        sequence=row.sequence,
        summary=row.title,
        start=row.starts_at.astimezone(ZoneInfo(row.tzid)) if row.tzid != "UTC" else row.starts_at,
        duration=timedelta(minutes=row.duration_minutes),
        tzid=row.tzid,
        kind=cal.Kind(row.kind),
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        description=row.description,
        join_url=row.join_url,
        dial_in=row.dial_in,
        pin=row.pin,
        recurrence=_recurrence(row),
        status=cal.Status.CANCELLED if row.status == "cancelled" else cal.Status.CONFIRMED,
    )


def overrides_of(session: Session, meeting_id: int) -> list[cal.Occurrence]:
    """The moved and cancelled occurrences of a series."""
    rows = session.scalars(
        select(MeetingOccurrence)
        .where(MeetingOccurrence.meeting_id == meeting_id)
        .order_by(MeetingOccurrence.recurrence_id)
    )
    return [
        cal.Occurrence(
            recurrence_id=row.recurrence_id,
            start=row.starts_at,
            duration=timedelta(minutes=row.duration_minutes) if row.duration_minutes else None,
            cancelled=row.cancelled,
        )
        for row in rows
    ]


def recurrence_columns(rule: cal.Recurrence | None) -> dict[str, Any]:
    """The columns that store a recurrence rule (empty ones for a single meeting)."""
    if rule is None:
        return {"frequency": "", "interval": 1, "byday": "", "until": None, "count": None}
    return {
        "frequency": rule.frequency.value,
        "interval": rule.interval,
        "byday": ",".join(rule.byday),
        "until": rule.until.astimezone(UTC) if rule.until else None,
        "count": rule.count,
    }


def last_end(meeting: cal.Meeting, overrides: Sequence[cal.Occurrence]) -> datetime:
    """When the meeting's last occurrence ends, in UTC."""
    instances = cal.occurrences(meeting, overrides)
    if not instances:
        return meeting.start.astimezone(UTC)
    return max(i.start + i.duration for i in instances).astimezone(UTC)


def budget_refusal(
    session: Session,
    group_id: int,
    proposal: cal.Meeting,
    overrides: Sequence[cal.Occurrence],
    excluding: int | None,
    *,
    days: int,
    hours_per_day: float,
) -> str:
    """Why ``proposal`` would take the group past its meeting days in a year, or "" when it fits (SPEC §2.6).

    The group's other meetings that are not cancelled count, each occurrence in the year it falls in;
    ``excluding`` is the meeting being changed, counted only as the proposal.
    """
    for year, durations in sorted(cal.durations_by_year(proposal, overrides).items()):
        booked: list[timedelta] = []
        for other in session.scalars(
            select(Meeting).where(Meeting.group_id == group_id, Meeting.status != "cancelled")
        ):
            if other.id != excluding:
                core = to_core(other, "", proposal.organizer_email)
                booked.extend(cal.durations_by_year(core, overrides_of(session, other.id)).get(year, []))
        verdict = cal.meeting_budget(year, booked, durations, days=days, hours_per_day=hours_per_day)
        if not verdict.allowed:
            return verdict.reason[:1].upper() + verdict.reason[1:] + "."
    return ""


def describe(meeting: Meeting) -> str:
    """A meeting in one line, for the audit trail."""
    return f"meeting {meeting.id} {meeting.uid} seq {meeting.sequence}: {meeting.starts_at.isoformat()}"


def series_attendance(
    session: Session, meeting_id: int, email: str, *, invited: bool = False
) -> Attendance | None:
    """The attendee's row for the whole meeting (not one occurrence), only if still invited when asked."""
    query = select(Attendance).where(
        Attendance.meeting_id == meeting_id, Attendance.email == email, Attendance.occurrence == ""
    )
    return session.scalar(query.where(Attendance.invited) if invited else query)


def new_attendance(meeting_id: int, contact_id: int, email: str, now: datetime) -> Attendance:
    """An invited attendee's row for the whole meeting, not answered yet."""
    return Attendance(
        meeting_id=meeting_id,
        contact_id=contact_id,
        email=email,
        occurrence="",
        partstat=cal.PartStat.NEEDS_ACTION.value,
        invited=True,
        updated_at=now,
    )
