"""Answers from the members' calendars: iMIP REPLY messages update each attendee's RSVP, never answered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.events import record_event
from mailflow.app.meeting_rows import occurrence_key, series_attendance
from mailflow.core import calendar as cal
from mailflow.store.schema import Attendance, Meeting


def record_rsvps(session: Session, now: datetime, calendar_text: str, sender: str) -> int:
    """Apply the answers of an iMIP REPLY from ``sender``; return how many changed an attendance.

    An answer counts only for an invited attendee of a meeting we sent, from that attendee's own address,
    and not for an older SEQUENCE than a later answer already recorded. Nothing is ever mailed back.
    """
    try:
        answers = cal.read_reply(calendar_text.encode("utf-8"))
    except cal.CalendarError as error:
        record_event(session, "rsvp_unreadable", now, actor=sender, detail=str(error))
        return 0
    changed = 0
    for answer in answers:
        meeting = session.scalar(select(Meeting).where(Meeting.uid == answer.uid))
        if meeting is None:
            record_event(session, "rsvp_unknown_meeting", now, actor=sender, detail=answer.uid)
            continue
        if answer.email != sender.lower():
            record_event(
                session,
                "rsvp_wrong_sender",
                now,
                group_id=meeting.group_id,
                actor=sender,
                detail=f"answer for {answer.email} to meeting {meeting.id}",
            )
            continue
        if _answer(session, now, meeting, answer):
            changed += 1
    return changed


def _answer(session: Session, now: datetime, meeting: Meeting, answer: cal.Rsvp) -> bool:
    invited = series_attendance(session, meeting.id, answer.email, invited=True)
    if invited is None:
        record_event(
            session,
            "rsvp_not_invited",
            now,
            group_id=meeting.group_id,
            actor=answer.email,
            detail=f"meeting {meeting.id}",
        )
        return False
    if answer.sequence < meeting.answers_from_sequence:
        # An answer to the meeting before its time changed says nothing about the new time.
        record_event(
            session,
            "rsvp_stale",
            now,
            group_id=meeting.group_id,
            actor=answer.email,
            detail=f"meeting {meeting.id}: answer to sequence {answer.sequence}, time changed at "
            f"{meeting.answers_from_sequence}",
        )
        return False
    key = occurrence_key(answer.recurrence_id)
    row = invited
    if key:
        row = session.scalar(
            select(Attendance).where(
                Attendance.meeting_id == meeting.id,
                Attendance.email == answer.email,
                Attendance.occurrence == key,
            )
        ) or Attendance(
            meeting_id=meeting.id,
            contact_id=invited.contact_id,
            email=answer.email,
            occurrence=key,
            invited=True,
            updated_at=now,
        )
        session.add(row)
    row.partstat, row.answered_at, row.updated_at = answer.partstat.value, now, now
    record_event(
        session,
        "rsvp",
        now,
        group_id=meeting.group_id,
        actor=answer.email,
        detail=f"meeting {meeting.id}{' occurrence ' + key if key else ''}: {answer.partstat.value}",
    )
    return True
