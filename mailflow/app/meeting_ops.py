"""The operator's meeting commands (``mailflow meeting …``, ``mailflow meetings --json``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer
from mailflow.app.meetings import Meetings, MeetingSpec, occurrence_key, overrides_of, tel_uri, to_core
from mailflow.app.runtime import Runtime
from mailflow.core import calendar as cal
from mailflow.core.when import read_schedule
from mailflow.errors import MailflowError, NotFoundError
from mailflow.store.schema import Attendance, Group, Meeting

Row = dict[str, Any]
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class ScheduleArgs:
    """``meeting schedule``'s options."""

    group: str
    start: str
    duration: int
    kind: str
    tz: str | None = None
    title: str = ""
    url: str = ""
    dial_in: str = ""
    pin: str = ""
    repeat: str = ""


def _zone(name: str) -> str:
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MailflowError(f"--tz: {name!r} is not an IANA time zone such as Europe/Brussels") from None
    return name


def parse_start(text: str, tzid: str) -> datetime:
    """An ISO 8601 start; without an offset it is read in ``tzid``.

    Raises:
        MailflowError: the text is not ISO 8601.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise MailflowError(f"--start: {text!r} is not ISO 8601, e.g. 2027-03-12T14:00") from None
    zone = UTC if tzid == "UTC" else ZoneInfo(tzid)
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)


def _duration(minutes: int) -> timedelta:
    if not 0 < minutes <= 24 * 60:
        raise MailflowError("--duration: give the meeting's length in minutes, 1 to 1440")
    return timedelta(minutes=minutes)


def _repeat(text: str, start: datetime, tzid: str, minutes: int) -> cal.Recurrence | None:
    """The recurrence a phrase such as "every second Tuesday until 30 June 2027" describes."""
    if not text:
        return None
    local = start.astimezone(UTC if tzid == "UTC" else ZoneInfo(tzid))
    proposal = read_schedule(
        f"When: {local:%d %B %Y %H:%M} {tzid}\nDuration: {minutes} minutes\nRepeat: {text}",
        today=local.date(),
        default_tz=tzid,
    )
    problems = [p.message for p in proposal.problems if p.field in {"recurrence", "date"}]
    if problems or proposal.recurrence is None:
        raise MailflowError(f"--repeat: {'; '.join(problems) or 'no repetition found in ' + repr(text)}")
    return proposal.recurrence


def schedule(runtime: Runtime, args: ScheduleArgs) -> int:
    """Schedule a meeting and invite the group's members; return its id.

    Raises:
        NotFoundError: no group has that slug.
        MailflowError: a bad option, or the meeting is refused (budget, closed group).
    """
    now = runtime.clock()
    tzid = _zone(args.tz or runtime.settings.network.timezone)
    start = parse_start(args.start, tzid)
    duration = _duration(args.duration)
    spec = MeetingSpec(
        start=start,
        duration=duration,
        kind=cal.Kind(args.kind),
        tzid=tzid,
        title=args.title,
        join_url=args.url,
        dial_in=tel_uri(args.dial_in),
        pin=args.pin,
        recurrence=_repeat(args.repeat, start, tzid, args.duration),
    )
    with runtime.sessions.begin() as session:
        group = session.scalar(select(Group).where(Group.slug == args.group))
        if group is None:
            raise NotFoundError(f"no group with slug {args.group!r}; `mailflow groups --json` lists them")
        meeting = Meetings(session, runtime, now, Mailer(session, runtime, now)).schedule(
            group, spec, actor=OPERATOR
        )
        return meeting.id


def _meeting(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id, with_for_update=True)
    if meeting is None:
        raise NotFoundError(f"no meeting with id {meeting_id}; `mailflow meetings --json` lists them")
    return meeting


def update(
    runtime: Runtime,
    meeting_id: int,
    *,
    start: str | None = None,
    duration: int | None = None,
    url: str | None = None,
    dial_in: str | None = None,
    pin: str | None = None,
    title: str | None = None,
    occurrence: str | None = None,
) -> int:
    """Change a meeting (or, with ``occurrence``, move one occurrence of a series); return its SEQUENCE."""
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        meeting = _meeting(session, meeting_id)
        meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
        if occurrence is not None:
            original = parse_start(occurrence, meeting.tzid)
            meetings.move_occurrence(
                meeting,
                original,
                parse_start(start, meeting.tzid) if start else None,
                _duration(duration) if duration is not None else None,
                actor=OPERATOR,
            )
            return meeting.sequence
        changes: dict[str, Any] = {}
        if start is not None:
            changes["start"] = parse_start(start, meeting.tzid)
        if duration is not None:
            changes["duration"] = _duration(duration)
        if url is not None:
            changes["join_url"] = url
        if dial_in is not None:
            changes["dial_in"] = tel_uri(dial_in)
        if pin is not None:
            changes["pin"] = pin
        if title:
            changes["title"] = title
        if not changes:
            raise MailflowError(
                "nothing to change: give --start, --duration, --url, --dial-in, --pin or --title"
            )
        meetings.update(meeting, changes, actor=OPERATOR)
        return meeting.sequence


def cancel(runtime: Runtime, meeting_id: int, occurrence: str | None = None) -> int:
    """Cancel a meeting (or one occurrence of a series); return how many attendees were told."""
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        meeting = _meeting(session, meeting_id)
        meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
        original = parse_start(occurrence, meeting.tzid) if occurrence else None
        meetings.cancel(meeting, actor=OPERATOR, occurrence=original)
        return len(
            session.scalars(
                select(Attendance.id).where(
                    Attendance.meeting_id == meeting.id, Attendance.occurrence == "", Attendance.invited
                )
            ).all()
        )


def rows(runtime: Runtime, group: str | None = None) -> list[Row]:
    """One row per meeting, with every attendee's answer (and per-occurrence answers of a series)."""
    with runtime.sessions() as session:
        query = (
            select(Meeting, Group.slug).join(Group, Meeting.group_id == Group.id).order_by(Meeting.starts_at)
        )
        if group:
            query = query.where(Group.slug == group)
        result = []
        for meeting, slug in session.execute(query).all():
            core = to_core(meeting, "", runtime.settings.network.address)
            overrides = overrides_of(session, meeting.id)
            answers = list(
                session.scalars(
                    select(Attendance)
                    .where(Attendance.meeting_id == meeting.id)
                    .order_by(Attendance.email, Attendance.occurrence)
                )
            )
            result.append(
                {
                    "id": meeting.id,
                    "group_slug": slug,
                    "uid": meeting.uid,
                    "sequence": meeting.sequence,
                    "status": meeting.status,
                    "title": meeting.title,
                    "kind": meeting.kind,
                    "tz": meeting.tzid,
                    "start": core.start.isoformat(),
                    "end": (core.start + core.duration).isoformat(),
                    "duration_minutes": meeting.duration_minutes,
                    "join_url": meeting.join_url or None,
                    "dial_in": meeting.dial_in.removeprefix("tel:") or None,
                    "pin": meeting.pin or None,
                    "recurrence": _rule_text(meeting),
                    "occurrences": [
                        {
                            "recurrence_id": o.recurrence_id.isoformat(),
                            "start": o.start.isoformat(),
                            "end": (o.start + o.duration).isoformat(),
                        }
                        for o in cal.occurrences(core, overrides)
                    ]
                    if meeting.frequency
                    else [],
                    "attendees": [
                        {"email": a.email, "partstat": a.partstat}
                        for a in answers
                        if a.occurrence == "" and a.invited
                    ],
                    "occurrence_answers": [
                        {"email": a.email, "occurrence": a.occurrence, "partstat": a.partstat}
                        for a in answers
                        if a.occurrence
                    ],
                }
            )
        return result


def _rule_text(meeting: Meeting) -> str | None:
    if not meeting.frequency:
        return None
    parts = [f"FREQ={meeting.frequency}", f"INTERVAL={meeting.interval}"]
    if meeting.byday:
        parts.append(f"BYDAY={meeting.byday}")
    if meeting.until:
        parts.append(f"UNTIL={occurrence_key(meeting.until)}")
    if meeting.count:
        parts.append(f"COUNT={meeting.count}")
    return ";".join(parts)
