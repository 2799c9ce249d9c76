"""Meetings by email: a facilitator (or an approver) schedules, changes or cancels with a subject command.

``MEETING <group>`` schedules; the body says when, how long, and how to join, as fields or in free text::

    When: 12 March 2027, 14:00 CET
    Duration: 90 minutes
    Kind: web
    Link: https://meet.example/circular
    Title: Spring exchange
    Repeat: every second Tuesday for six months      (optional: a series)

``MEETING UPDATE <id>`` changes the fields given (``Occurrence: <date>`` moves one occurrence of a series);
``MEETING CANCEL <id>`` cancels (``Occurrence: <date>`` cancels one occurrence). Every answer goes to the
sender: a confirmation with what was understood, or a reply naming what is missing or why it was refused.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from mailflow.app.events import record_event
from mailflow.app.meetings import MeetingRefusedError, Meetings, MeetingSpec, overrides_of
from mailflow.app.work import Work
from mailflow.core import calendar as cal
from mailflow.core.meetings import local_long
from mailflow.core.model import Intent
from mailflow.core.plans import Mail
from mailflow.core.when import Schedule, read_schedule
from mailflow.store import repo
from mailflow.store.schema import Attendance, Contact, Group, Meeting

_OCCURRENCE = re.compile(r"(?im)^[ \t>]*occurrence[ \t]*[:=][ \t]*(?P<value>.+?)[ \t]*$")


def handle_meeting(work: Work, intent: Intent, contact: Contact) -> None:
    """A meeting command from the text of a mail."""
    action, _, argument = intent.topic.partition(" ")
    try:
        if action == "schedule":
            _schedule(work, intent, contact)
            return
        meeting = work.session.get(Meeting, int(argument), with_for_update=True) if argument else None
        if meeting is None:
            _reply(
                work,
                contact,
                f"We know no meeting #{argument}. The confirmation of each meeting gives its number.",
            )
            return
        group = work.session.get_one(Group, meeting.group_id)
        if not work.leads(contact, group):
            _not_allowed(work, contact, group)
            return
        if action == "cancel":
            _cancel(work, contact, meeting)
        else:
            _update(work, contact, meeting)
    except MeetingRefusedError as refused:
        record_event(
            work.session,
            "meeting_refused",
            work.now,
            actor=contact.email,
            inbound=work.inbound,
            detail=str(refused),
        )
        _reply(work, contact, f"We could not do this: {refused}.".replace("..", "."))


def _today(work: Work) -> Any:  # noqa: ANN401 - a date
    return work.now.astimezone(ZoneInfo(work.runtime.settings.network.timezone)).date()


def _schedule(work: Work, intent: Intent, contact: Contact) -> None:
    session = work.session
    group = repo.group_by_slug(session, intent.group_slug) if intent.group_slug else None
    if group is None:
        named = f'"{intent.group_text}"' if intent.group_text else "no group"
        _reply(
            work,
            contact,
            f"The subject names {named}: write MEETING followed by the group, e.g. MEETING circular.",
        )
        return
    if not work.leads(contact, group):
        _not_allowed(work, contact, group)
        return
    proposal = read_schedule(
        work.parsed.text, today=_today(work), default_tz=work.runtime.settings.network.timezone
    )
    if not proposal.complete or proposal.start is None or proposal.duration is None or proposal.kind is None:
        problems = [p.message for p in proposal.problems] or ["the date, time, length and kind of meeting"]
        _reply(work, contact, "Some details are missing or unclear:", problems=problems, group=group)
        return
    spec = MeetingSpec(
        start=proposal.start,
        duration=proposal.duration,
        kind=proposal.kind,
        tzid=proposal.tzid,
        title=proposal.title,
        join_url=proposal.join_url,
        dial_in=proposal.dial_in,
        pin=proposal.pin,
        recurrence=proposal.recurrence,
    )
    meetings = Meetings(session, work.runtime, work.now, work.mailer)
    meeting = meetings.schedule(group, spec, actor=contact.email)
    _confirm(work, contact, meetings, meeting, group, what="scheduled", assumptions=proposal.assumptions)


def _occurrence(work: Work, meeting: Meeting) -> datetime | None:
    """The original start of the occurrence an ``Occurrence:`` line names, or None when there is none.

    Raises:
        MeetingRefusedError: the line names no occurrence of the series.
    """
    found = _OCCURRENCE.search(work.parsed.text)
    if found is None:
        return None
    value = found["value"]
    read = read_schedule(
        f"When: {value}, 12:00\nDuration: 1 hour", today=_today(work), default_tz=meeting.tzid
    )
    if read.start is None:
        raise MeetingRefusedError(f'"{value}" is not a date we could read')
    meetings = Meetings(work.session, work.runtime, work.now, work.mailer)
    core = meetings.core(meeting)
    zone = ZoneInfo(meeting.tzid) if meeting.tzid != "UTC" else None
    for instance in cal.occurrences(core, overrides_of(work.session, meeting.id)):
        local = instance.recurrence_id.astimezone(zone) if zone else instance.recurrence_id
        if local.date() == read.start.date():
            return instance.recurrence_id
    raise MeetingRefusedError(f"meeting #{meeting.id} has no occurrence on {read.start.date():%d %B %Y}")


def _update(work: Work, contact: Contact, meeting: Meeting) -> None:
    meetings = Meetings(work.session, work.runtime, work.now, work.mailer)
    proposal = read_schedule(work.parsed.text, today=_today(work), default_tz=meeting.tzid)
    occurrence = _occurrence(work, meeting)
    group = meetings.group_of(meeting)
    if occurrence is not None:
        start = proposal.start if _has_time(proposal) else None
        meetings.move_occurrence(meeting, occurrence, start, proposal.duration, actor=contact.email)
        _confirm(work, contact, meetings, meeting, group, what="updated", assumptions=proposal.assumptions)
        return
    changes: dict[str, Any] = {}
    if _has_time(proposal):
        changes["start"] = proposal.start
    if proposal.duration is not None:
        changes["duration"] = proposal.duration
    for key in ("join_url", "dial_in", "pin", "title"):
        if getattr(proposal, key):
            changes[key] = getattr(proposal, key)
    if not changes:
        _reply(
            work,
            contact,
            f"We found nothing to change in meeting #{meeting.id}. "
            "Write the new details as in the example below.",
            group=group,
        )
        return
    meetings.update(meeting, changes, actor=contact.email)
    _confirm(work, contact, meetings, meeting, group, what="updated", assumptions=proposal.assumptions)


def _has_time(proposal: Schedule) -> bool:
    return proposal.start is not None and not any(p.field in {"date", "time"} for p in proposal.problems)


def _cancel(work: Work, contact: Contact, meeting: Meeting) -> None:
    meetings = Meetings(work.session, work.runtime, work.now, work.mailer)
    occurrence = _occurrence(work, meeting)
    meetings.cancel(meeting, actor=contact.email, occurrence=occurrence)
    group = meetings.group_of(meeting)
    _confirm(work, contact, meetings, meeting, group, what="cancelled", assumptions=(), occurrence=occurrence)


def _confirm(
    work: Work,
    contact: Contact,
    meetings: Meetings,
    meeting: Meeting,
    group: Group,
    *,
    what: str,
    assumptions: tuple[str, ...],
    occurrence: datetime | None = None,
) -> None:
    invited = work.session.scalar(
        select(func.count(Attendance.id)).where(
            Attendance.meeting_id == meeting.id, Attendance.occurrence == "", Attendance.invited
        )
    )
    context = meetings.context(
        meeting, group, meetings.core(meeting, group), overrides_of(work.session, meeting.id)
    )
    context |= {
        "what": what,
        "assumptions": list(assumptions),
        "invited": invited or 0,
        "occurrence": local_long(occurrence, meeting.tzid) if occurrence else None,
    }
    work.mailer.queue(Mail("meeting_confirmed", contact.email, context, answers_sender=True))


def _not_allowed(work: Work, contact: Contact, group: Group) -> None:
    record_event(
        work.session,
        "meeting_not_allowed",
        work.now,
        group_id=group.id,
        actor=contact.email,
        inbound=work.inbound,
    )
    _reply(
        work,
        contact,
        f"Only the facilitator of {group.name} (or the secretariat) can schedule or change its meetings "
        "by email. If you would like a meeting, please write to the facilitator.",
    )


def _reply(
    work: Work,
    contact: Contact,
    reason: str,
    *,
    problems: list[str] | None = None,
    group: Group | None = None,
) -> None:
    context = {
        "reason": reason,
        "problems": problems or [],
        "group": {"slug": group.slug, "name": group.name} if group else None,
    }
    work.mailer.queue(Mail("meeting_help", contact.email, context, answers_sender=True))
