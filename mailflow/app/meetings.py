"""Meetings: schedule, change and cancel them, invite the members, follow joins and leaves.

Every change commits in the caller's transaction together with its invitations in the outbox, so a crash
leaves either the old meeting and no mail or the new one with all its mail. The iCalendar itself is written by
the pure :mod:`mailflow.core.calendar`; this module keeps the rows and decides who gets what.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailflow.app.events import record_event
from mailflow.app.meeting_rows import (
    budget_refusal,
    describe,
    last_end,
    new_attendance,
    occurrence_key,
    overrides_of,
    recurrence_columns,
    series_attendance,
    tel_uri,
    to_core,
)
from mailflow.app.runtime import Runtime
from mailflow.core import calendar as cal
from mailflow.core.meetings import local_long, meeting_context
from mailflow.core.plans import CalendarPart, Mail
from mailflow.errors import MailflowError
from mailflow.store.schema import Attendance, Contact, Group, Meeting, MeetingOccurrence, Membership

if TYPE_CHECKING:
    from mailflow.app.effects import Mailer

log = logging.getLogger("mailflow.meetings")

__all__ = [
    "MeetingRefusedError",
    "MeetingSpec",
    "Meetings",
    "occurrence_key",
    "overrides_of",
    "tel_uri",
    "to_core",
]


class MeetingRefusedError(MailflowError):
    """A meeting change that the network's rules or the calendar refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class MeetingSpec:
    """A meeting as a facilitator or the operator asks for it."""

    start: datetime
    duration: timedelta
    kind: cal.Kind
    tzid: str
    title: str = ""
    join_url: str = ""
    dial_in: str = ""
    pin: str = ""
    description: str = ""
    recurrence: cal.Recurrence | None = None


class Meetings:
    """The meeting use cases inside one transaction: a session, the runtime, the time and a mailer."""

    def __init__(self, session: Session, runtime: Runtime, now: datetime, mailer: Mailer) -> None:
        """Work in ``session`` at ``now``; mail goes through ``mailer`` (the unit of work's)."""
        self.session, self.runtime, self.now, self.mailer = session, runtime, now, mailer

    # -- reading ---------------------------------------------------------------------------------------

    def group_of(self, meeting: Meeting) -> Group:
        """The meeting's group."""
        return self.session.get_one(Group, meeting.group_id)

    def organizer_name(self, group: Group) -> str:
        """The CN of ORGANIZER: the facilitator by name, else the group."""
        facilitator = self.session.get(Contact, group.facilitator_id) if group.facilitator_id else None
        if facilitator is not None and facilitator.name:
            return f"{facilitator.name} ({group.name})"
        return f"{group.name} ({self.runtime.settings.network.name})"

    def core(self, meeting: Meeting, group: Group | None = None) -> cal.Meeting:
        """The calendar's view of ``meeting``."""
        group = group or self.group_of(meeting)
        return to_core(meeting, self.organizer_name(group), self.runtime.settings.network.address)

    def _members(self, group_id: int) -> list[Contact]:
        return list(
            self.session.scalars(
                select(Contact)
                .join(Membership, Membership.contact_id == Contact.id)
                .where(Membership.group_id == group_id, Membership.status == "active")
                .order_by(Contact.email)
            )
        )

    def _attendances(self, meeting_id: int) -> list[Attendance]:
        return list(
            self.session.scalars(
                select(Attendance)
                .where(Attendance.meeting_id == meeting_id, Attendance.occurrence == "", Attendance.invited)
                .order_by(Attendance.email)
            )
        )

    def check_budget(
        self, group: Group, proposal: cal.Meeting, overrides: Sequence[cal.Occurrence], excluding: int | None
    ) -> None:
        """Refuse a proposal that takes the group past its days of meetings in any year (SPEC §2.6)."""
        limits = self.runtime.settings.meetings
        reason = budget_refusal(
            self.session,
            group.id,
            proposal,
            overrides,
            excluding,
            days=limits.days_per_year,
            hours_per_day=limits.hours_per_day,
        )
        if reason:
            raise MeetingRefusedError(reason)

    # -- changing --------------------------------------------------------------------------------------

    def schedule(self, group: Group, spec: MeetingSpec, *, actor: str) -> Meeting:
        """Create a meeting and invite every active member.

        Raises:
            MeetingRefusedError: the group is closed, the meeting cannot be written, or it breaks the budget.
        """
        if group.status == "closed":
            raise MeetingRefusedError(f"the group {group.name} is closed")
        uid = f"{self.runtime.entropy(12).hex()}@{self.runtime.settings.network.domain}"
        title = spec.title or f"{group.name}: {spec.kind.value} meeting"
        try:
            proposal = cal.Meeting(
                uid=uid,
                sequence=0,
                summary=title,
                start=spec.start,
                duration=spec.duration,
                tzid=spec.tzid,
                kind=spec.kind,
                organizer_email=self.runtime.settings.network.address,
                organizer_name=self.organizer_name(group),
                description=spec.description,
                join_url=spec.join_url,
                dial_in=spec.dial_in,
                pin=spec.pin,
                recurrence=spec.recurrence,
            )
        except cal.CalendarError as error:
            raise MeetingRefusedError(str(error)) from error
        self.check_budget(group, proposal, (), None)
        meeting = Meeting(
            group_id=group.id,
            uid=uid,
            sequence=0,
            status="scheduled",
            title=title[:300],
            kind=spec.kind.value,
            starts_at=spec.start.astimezone(UTC),
            duration_minutes=int(spec.duration.total_seconds() // 60),
            tzid=spec.tzid,
            join_url=spec.join_url,
            dial_in=spec.dial_in,
            pin=spec.pin,
            description=spec.description,
            organizer_id=group.facilitator_id,
            created_by=actor,
            created_at=self.now,
            updated_at=self.now,
            **recurrence_columns(spec.recurrence),
            ends_at=last_end(proposal, ()),
        )
        self.session.add(meeting)
        self.session.flush()
        # A new meeting has no attendances yet: every active member is added without looking first.
        members = self._members(group.id)
        self.session.add_all(new_attendance(meeting.id, c.id, c.email, self.now) for c in members)
        self.session.flush()
        self._send_all(meeting, group, cal.Method.REQUEST, "meeting_invitation")
        self._record("meeting_scheduled", meeting, actor)
        return meeting

    def update(self, meeting: Meeting, changes: dict[str, Any], *, actor: str) -> Meeting:
        """Change a meeting's time, length or access; attendees get the update (SEQUENCE raised).

        ``changes`` keys: start (aware datetime), duration (timedelta), join_url, dial_in, pin, title.
        Answers are kept unless the time changed.

        Raises:
            MeetingRefusedError: the meeting is cancelled or past, or the change cannot be made.
        """
        self._check_open(meeting)
        group = self.group_of(meeting)
        before = self.core(meeting, group)
        proposal_fields: dict[str, Any] = {}
        if "start" in changes:
            proposal_fields["start"] = changes["start"].astimezone(ZoneInfo(meeting.tzid))
        if "duration" in changes:
            proposal_fields["duration"] = changes["duration"]
        for key in ("join_url", "dial_in", "pin"):
            if key in changes:
                proposal_fields[key] = changes[key]
        if changes.get("title"):
            proposal_fields["summary"] = changes["title"]
        if meeting.frequency and "start" in changes:
            raise MeetingRefusedError(
                "a series keeps its first start; move one occurrence, or cancel the series and schedule anew"
            )
        try:
            proposal = replace(before, sequence=before.sequence + 1, **proposal_fields)
        except cal.CalendarError as error:
            raise MeetingRefusedError(str(error)) from error
        overrides = overrides_of(self.session, meeting.id)
        retimed = proposal.start != before.start or proposal.duration != before.duration
        if retimed:
            self.check_budget(group, proposal, overrides, meeting.id)
        meeting.sequence = proposal.sequence
        meeting.starts_at = proposal.start.astimezone(UTC)
        meeting.duration_minutes = int(proposal.duration.total_seconds() // 60)
        meeting.join_url, meeting.dial_in, meeting.pin = proposal.join_url, proposal.dial_in, proposal.pin
        meeting.title = proposal.summary[:300]
        meeting.ends_at = last_end(proposal, overrides)
        meeting.updated_at = self.now
        if retimed:
            self._reset_answers(meeting.id)
            meeting.answers_from_sequence = meeting.sequence
        self._send_all(meeting, group, cal.Method.REQUEST, "meeting_updated")
        self._record("meeting_updated", meeting, actor)
        return meeting

    def move_occurrence(
        self,
        meeting: Meeting,
        original: datetime,
        start: datetime | None,
        duration: timedelta | None,
        *,
        actor: str,
    ) -> Meeting:
        """Move (or lengthen) one occurrence of a series; attendees get the updated series."""
        return self._change_occurrence(meeting, original, start=start, duration=duration, actor=actor)

    def cancel(self, meeting: Meeting, *, actor: str, occurrence: datetime | None = None) -> Meeting:
        """Cancel a meeting, or one occurrence of a series; attendees get a CANCEL.

        Raises:
            MeetingRefusedError: it is already cancelled or past, or names no occurrence.
        """
        if occurrence is not None:
            return self._change_occurrence(meeting, occurrence, cancel=True, actor=actor)
        self._check_open(meeting)
        group = self.group_of(meeting)
        meeting.status, meeting.sequence, meeting.updated_at = "cancelled", meeting.sequence + 1, self.now
        self._send_all(meeting, group, cal.Method.CANCEL, "meeting_cancelled")
        self._record("meeting_cancelled", meeting, actor)
        return meeting

    def _change_occurrence(
        self,
        meeting: Meeting,
        original: datetime,
        *,
        start: datetime | None = None,
        duration: timedelta | None = None,
        cancel: bool = False,
        actor: str,
    ) -> Meeting:
        self._check_open(meeting)
        if not meeting.frequency:
            raise MeetingRefusedError(f"meeting {meeting.id} is a single meeting: change or cancel it whole")
        group = self.group_of(meeting)
        core = self.core(meeting, group)
        original = original.astimezone(UTC)
        overrides = [o for o in overrides_of(self.session, meeting.id) if o.recurrence_id != original]
        try:
            change = cal.Occurrence(recurrence_id=original, start=start, duration=duration, cancelled=cancel)
            proposal = replace(core, sequence=core.sequence + 1)
            cal.occurrences(proposal, [*overrides, change])
        except cal.CalendarError as error:
            raise MeetingRefusedError(str(error)) from error
        if not cancel:
            self.check_budget(group, proposal, [*overrides, change], meeting.id)
        row = self.session.scalar(
            select(MeetingOccurrence).where(
                MeetingOccurrence.meeting_id == meeting.id, MeetingOccurrence.recurrence_id == original
            )
        )
        if row is None:
            row = MeetingOccurrence(meeting_id=meeting.id, recurrence_id=original, updated_at=self.now)
            self.session.add(row)
        row.starts_at = start.astimezone(UTC) if start else None
        row.duration_minutes = int(duration.total_seconds() // 60) if duration else None
        row.cancelled, row.updated_at = cancel, self.now
        meeting.sequence, meeting.updated_at = proposal.sequence, self.now
        meeting.ends_at = last_end(proposal, [*overrides, change])
        self.session.flush()
        if cancel:
            self._send_all(meeting, group, cal.Method.CANCEL, "meeting_cancelled", occurrence=original)
        else:
            self.session.execute(
                update(Attendance)
                .where(Attendance.meeting_id == meeting.id, Attendance.occurrence == occurrence_key(original))
                .values(partstat=cal.PartStat.NEEDS_ACTION.value, updated_at=self.now)
            )
            self._send_all(meeting, group, cal.Method.REQUEST, "meeting_updated")
        kind = "meeting_occurrence_cancelled" if cancel else "meeting_occurrence_moved"
        self._record(kind, meeting, actor, f"; occurrence {occurrence_key(original)}")
        return meeting

    def _record(self, kind: str, meeting: Meeting, actor: str, more: str = "") -> None:
        """The audit-trail row of a change to ``meeting``."""
        record_event(
            self.session,
            kind,
            self.now,
            group_id=meeting.group_id,
            actor=actor,
            detail=describe(meeting) + more,
        )

    def _check_open(self, meeting: Meeting) -> None:
        if meeting.status == "cancelled":
            raise MeetingRefusedError(f"meeting {meeting.id} is already cancelled")
        if meeting.ends_at <= self.now:
            raise MeetingRefusedError(f"meeting {meeting.id} is over")

    def _reset_answers(self, meeting_id: int) -> None:
        self.session.execute(
            update(Attendance)
            .where(Attendance.meeting_id == meeting_id)
            .values(partstat=cal.PartStat.NEEDS_ACTION.value, answered_at=None, updated_at=self.now)
        )

    # -- members ---------------------------------------------------------------------------------------

    def ahead(self, group_id: int) -> list[Meeting]:
        """The group's meetings not cancelled and not over."""
        return list(
            self.session.scalars(
                select(Meeting)
                .where(
                    Meeting.group_id == group_id, Meeting.status == "scheduled", Meeting.ends_at > self.now
                )
                .order_by(Meeting.starts_at)
            )
        )

    def member_joined(self, group: Group, contact: Contact) -> int:
        """Invite a new member to the group's meetings still ahead; return how many."""
        count = 0
        for meeting in self.ahead(group.id):
            attendance = self._attend(meeting, contact)
            self._send_one(meeting, group, attendance, cal.Method.REQUEST, "meeting_invitation")
            count += 1
        return count

    def member_left(self, group: Group, contact: Contact) -> int:
        """Send a member who left a cancellation of each meeting still ahead; return how many."""
        count = 0
        for meeting in self.ahead(group.id):
            attendance = series_attendance(self.session, meeting.id, contact.email, invited=True)
            if attendance is None:
                continue
            # The leaver's CANCEL carries a higher SEQUENCE (Outlook ignores a lower or stale one), and the
            # meeting keeps it, so an invitation after a later rejoin is not older than that cancellation.
            meeting.sequence, meeting.updated_at = meeting.sequence + 1, self.now
            self._send_one(meeting, group, attendance, cal.Method.CANCEL, "meeting_cancelled", leaving=True)
            attendance.invited, attendance.updated_at = False, self.now
            count += 1
        return count

    def _attend(self, meeting: Meeting, contact: Contact) -> Attendance:
        attendance = series_attendance(self.session, meeting.id, contact.email)
        if attendance is None:
            attendance = new_attendance(meeting.id, contact.id, contact.email, self.now)
            self.session.add(attendance)
        else:
            attendance.invited, attendance.updated_at = True, self.now
        return attendance

    # -- mail ------------------------------------------------------------------------------------------

    def _send_all(
        self,
        meeting: Meeting,
        group: Group,
        method: cal.Method,
        template: str,
        *,
        occurrence: datetime | None = None,
    ) -> int:
        core = self.core(meeting, group)
        overrides = overrides_of(self.session, meeting.id)
        context = self.context(meeting, group, core, overrides)
        context["occurrence"] = local_long(occurrence, meeting.tzid) if occurrence else None
        attendances = self._attendances(meeting.id)
        if not attendances:
            return 0
        names = self._names([a.contact_id for a in attendances if a.contact_id])
        attendees = [
            cal.Attendee(
                email=attendance.email,
                name=names.get(attendance.contact_id or 0, ""),
                partstat=cal.PartStat(attendance.partstat),
            )
            for attendance in attendances
        ]
        # One calendar and one set of bodies for the whole meeting: every member's mail says the same
        # thing, only the recipient and the ATTENDEE line differ.
        bodies = self.mailer.bodies(Mail(template, attendees[0].email, context))
        self.mailer.check_suppressed(a.email for a in attendees)
        calendars = cal.invitations(core, attendees, method, self.now, overrides, occurrence=occurrence)
        for attendee, ics in zip(attendees, calendars, strict=True):
            mail = Mail(template, attendee.email, context, calendar=CalendarPart(method.value, ics))
            self.mailer.queue(mail, bodies=bodies)
        return len(attendances)

    def _send_one(
        self,
        meeting: Meeting,
        group: Group,
        attendance: Attendance,
        method: cal.Method,
        template: str,
        *,
        leaving: bool = False,
    ) -> None:
        core = self.core(meeting, group)
        overrides = overrides_of(self.session, meeting.id)
        names = self._names([attendance.contact_id] if attendance.contact_id else [])
        attendee = cal.Attendee(
            email=attendance.email,
            name=names.get(attendance.contact_id or 0, ""),
            partstat=cal.PartStat(attendance.partstat),
        )
        ics = cal.invitation(core, attendee, method, self.now, overrides)
        context = {**self.context(meeting, group, core, overrides), "occurrence": None, "leaving": leaving}
        self.mailer.queue(Mail(template, attendance.email, context, calendar=CalendarPart(method.value, ics)))

    def _names(self, contact_ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(contact_ids))
        if not ids:
            return {}
        return dict(self.session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(ids))).all())

    def context(
        self, meeting: Meeting, group: Group, core: cal.Meeting, overrides: Sequence[cal.Occurrence]
    ) -> dict[str, Any]:
        """Template facts about a meeting."""
        return meeting_context(
            core, overrides, meeting_id=meeting.id, group_slug=group.slug, group_name=group.name, now=self.now
        )
