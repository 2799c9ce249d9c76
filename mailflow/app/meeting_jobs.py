"""Scheduled meeting mail: reminders to attendees, the facilitator's summary, and the meetings-a-year rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer
from mailflow.app.jobs import Due, Job, facilitator_and_secretariat
from mailflow.app.meetings import Meetings, occurrence_key, overrides_of, to_core
from mailflow.app.runtime import Runtime
from mailflow.core import calendar as cal
from mailflow.core.meetings import local_long
from mailflow.core.plans import Mail
from mailflow.store.repo import facilitator_email
from mailflow.store.schema import Attendance, Contact, Group, Meeting

_GROUP_YEAR = timedelta(days=365)
_QUARTER = _GROUP_YEAR / 4


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


# -- meetings -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Upcoming:
    meeting: Meeting
    group: Group
    core: cal.Meeting
    instance: cal.Instance


def _upcoming(session: Session, runtime: Runtime, now: datetime, within: timedelta) -> Iterator[_Upcoming]:
    """Occurrences of scheduled meetings that start after ``now`` and within ``within`` of it."""
    meetings = session.scalars(
        select(Meeting).where(Meeting.status == "scheduled", Meeting.ends_at > now).order_by(Meeting.id)
    )
    for meeting in meetings:
        group = session.get_one(Group, meeting.group_id)
        core = to_core(meeting, "", runtime.settings.network.address)
        for instance in cal.occurrences(core, overrides_of(session, meeting.id)):
            if now < instance.start <= now + within:
                yield _Upcoming(meeting, group, core, instance)


def _answers(session: Session, meeting_id: int) -> dict[str, dict[str, str]]:
    """Each invited attendee's answers: "" for the series, and per occurrence key."""
    rows = session.scalars(select(Attendance).where(Attendance.meeting_id == meeting_id))
    answers: dict[str, dict[str, str]] = {}
    invited = set()
    for row in rows:
        answers.setdefault(row.email, {})[row.occurrence] = row.partstat
        if row.occurrence == "" and row.invited:
            invited.add(row.email)
    return {email: found for email, found in answers.items() if email in invited}


def _answer(answers: dict[str, str], occurrence: str) -> str:
    return answers.get(occurrence) or answers.get("", cal.PartStat.NEEDS_ACTION.value)


def _context(session: Session, runtime: Runtime, item: _Upcoming, now: datetime) -> dict[str, Any]:
    meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
    context = meetings.context(item.meeting, item.group, item.core, overrides_of(session, item.meeting.id))
    context["when"] = local_long(item.instance.start, item.meeting.tzid)
    context["until"] = local_long(item.instance.start + item.instance.duration, item.meeting.tzid)
    return context


def meeting_reminders(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """Each invited attendee who has not declined is reminded a configured time before each occurrence."""
    within = timedelta(hours=runtime.settings.meetings.remind_hours_before)
    due = []
    for item in _upcoming(session, runtime, now, within):
        occurrence = occurrence_key(item.instance.recurrence_id) if item.meeting.frequency else ""
        context = _context(session, runtime, item, now)
        for email, answers in sorted(_answers(session, item.meeting.id).items()):
            answer = _answer(answers, occurrence)
            if answer == cal.PartStat.DECLINED.value:
                continue
            due.append(
                Due(
                    key=f"meeting-reminder/{item.meeting.id}/{_stamp(item.instance.start)}/{email}",
                    mail=Mail("meeting_reminder", email, {**context, "answer": answer}),
                    event="meeting_reminder_sent",
                    group_id=item.group.id,
                    detail=f"meeting {item.meeting.id} at {_stamp(item.instance.start)}",
                )
            )
    return due


def meeting_summaries(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """The facilitator (else the secretariat) learns who comes, a configured time before each occurrence."""
    within = timedelta(hours=runtime.settings.meetings.summary_hours_before)
    due = []
    for item in _upcoming(session, runtime, now, within):
        occurrence = occurrence_key(item.instance.recurrence_id) if item.meeting.frequency else ""
        attendees = _answers(session, item.meeting.id)
        names = dict(
            session.execute(
                select(Contact.email, Contact.name).where(Contact.email.in_(list(attendees)))
            ).all()
        )
        table: dict[str, list[dict[str, str]]] = {}
        for email, answers in sorted(attendees.items()):
            table.setdefault(_answer(answers, occurrence), []).append(
                {"email": email, "name": names.get(email) or email}
            )
        to = facilitator_email(session, item.group) or runtime.secretariat_address
        context = _context(session, runtime, item, now) | {
            "accepted": table.get(cal.PartStat.ACCEPTED.value, []),
            "tentative": table.get(cal.PartStat.TENTATIVE.value, []),
            "declined": table.get(cal.PartStat.DECLINED.value, []),
            "unanswered": table.get(cal.PartStat.NEEDS_ACTION.value, [])
            + table.get(cal.PartStat.DELEGATED.value, []),
        }
        due.append(
            Due(
                key=f"meeting-summary/{item.meeting.id}/{_stamp(item.instance.start)}/{to}",
                mail=Mail("meeting_summary", to, context),
                event="meeting_summary_sent",
                group_id=item.group.id,
                detail=f"meeting {item.meeting.id} at {_stamp(item.instance.start)}",
            )
        )
    return due


def group_year(group: Group, now: datetime) -> tuple[datetime, datetime]:
    """The group's current year: from the last anniversary of its activation (or creation) to the next."""
    began = group.activated_at or group.created_at
    years = max(0, int((now - began) / _GROUP_YEAR))
    start = began + years * _GROUP_YEAR
    return start, start + _GROUP_YEAR


def meetings_due(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """Facilitators of groups short of meetings in the group's year are reminded, and the secretariat told.

    From the second quarter of the group's year on, once a quarter, while fewer than ``min_per_year`` phone
    or web meetings are held or scheduled in it (SPEC §2.4).
    """
    needed = runtime.settings.meetings.min_per_year
    due: list[Due] = []
    for group in session.scalars(select(Group).where(Group.status == "active", Group.associated.is_(False))):
        start, end = group_year(group, now)
        quarter = int((now - start) / _QUARTER)
        if quarter < 1:
            continue
        count = _meetings_between(session, runtime, group.id, start, end)
        if count >= needed:
            continue
        facilitator = facilitator_email(session, group)
        context = {
            "group": {"slug": group.slug, "name": group.name},
            "count": count,
            "needed": needed,
            "year_start": local_long(start, runtime.settings.network.timezone),
            "year_end": local_long(end, runtime.settings.network.timezone),
            "facilitator": facilitator,
        }
        due += facilitator_and_secretariat(
            f"meetings-due/{group.id}/{_stamp(start)}/q{quarter}",
            "meetings_due",
            context,
            facilitator=facilitator,
            secretariat=runtime.secretariat_address,
            event="meetings_due_reminder",
            group_id=group.id,
            detail=f"{count} of {needed} meetings in the year from {start.date()}",
        )
    return due


def _meetings_between(
    session: Session, runtime: Runtime, group_id: int, start: datetime, end: datetime
) -> int:
    count = 0
    for meeting in session.scalars(
        select(Meeting).where(Meeting.group_id == group_id, Meeting.status == "scheduled")
    ):
        core = to_core(meeting, "", runtime.settings.network.address)
        count += sum(start <= i.start < end for i in cal.occurrences(core, overrides_of(session, meeting.id)))
    return count


JOBS: dict[str, Job] = {
    "meeting_reminders": meeting_reminders,
    "meeting_summaries": meeting_summaries,
    "meetings_due": meetings_due,
}
"""Every scheduled job, in the order a tick runs them."""
