"""What happened in the groups, loaded once per digest run with a fixed number of queries.

A digest run for ten thousand contacts must not ask the database ten thousand times: the groups, their news
for a period, their meetings ahead and every invited member's answers are each read in one query (or two),
and the digests are then put together in memory from these shared, read-only facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailflow.app.digest_facts import DecisionFacts, GroupNews, MeetingFacts, UpdateFacts, cut, excerpt, wrap
from mailflow.app.events import waiting_events
from mailflow.app.meeting_rows import occurrence_key, to_core
from mailflow.core import calendar as cal
from mailflow.core.meetings import local_short
from mailflow.core.rules import ACTIVE_THRESHOLD, NetworkStatus
from mailflow.store.schema import (
    Attendance,
    Contact,
    Event,
    Group,
    GroupUpdate,
    Meeting,
    MeetingOccurrence,
    Membership,
    Organisation,
    Request,
)

_MEETINGS_PER_GROUP = 5
_CHUNK = 500
NO_INVITATION = ""
"""The answer of a member who holds no invitation to a meeting (one added to the group by hand, say)."""


@dataclass(frozen=True, slots=True)
class GroupRow:
    """An open group as the digest jobs read it."""

    id: int
    slug: str
    name: str
    status: str
    associated: bool
    aim: str
    facilitator_email: str | None
    participants: int
    created_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Ahead:
    """One occurrence of a meeting ahead: the meeting, which occurrence, and its template facts."""

    meeting_id: int
    group_id: int
    occurrence: str
    start: datetime
    facts: MeetingFacts


def load_groups(session: Session) -> dict[int, GroupRow]:
    """Every group not closed, with its facilitator's address and its participant organisations."""
    rows = session.execute(
        select(Group, Contact.email)
        .outerjoin(Contact, Contact.id == Group.facilitator_id)
        .where(Group.status != "closed")
        .order_by(Group.name)
    ).all()
    counts = dict(
        session.execute(
            select(Membership.group_id, func.count(func.distinct(Membership.organisation_id)))
            .join(Organisation, Organisation.id == Membership.organisation_id)
            .where(Membership.status == "active", Organisation.status == NetworkStatus.PARTICIPANT.value)
            .group_by(Membership.group_id)
        ).all()
    )
    return {
        group.id: GroupRow(
            id=group.id,
            slug=group.slug,
            name=group.name,
            status=group.status,
            associated=group.associated,
            aim=group.aim,
            facilitator_email=email,
            participants=counts.get(group.id, 0),
            created_at=group.created_at,
            activated_at=group.activated_at,
        )
        for group, email in rows
    }


def _day(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b}"


def load_news(
    session: Session, groups: dict[int, GroupRow], start: datetime, end: datetime, tz: str
) -> dict[int, GroupNews]:
    """Each group with its news between ``start`` and ``end``, read in three queries.

    News are the organisations that became members, the facilitators' updates, and the secretariat's
    decisions on requests to join or start the group.
    """
    zone = ZoneInfo(tz)
    first_joined = func.min(Membership.joined_at)
    newcomers = session.execute(
        select(Membership.group_id, Organisation.name, first_joined)
        .join(Organisation, Organisation.id == Membership.organisation_id)
        .where(Membership.status == "active")
        .group_by(Membership.group_id, Organisation.id, Organisation.name)
        .having(first_joined >= start, first_joined < end)
        .order_by(first_joined)
    ).all()
    updates = session.execute(
        select(
            GroupUpdate.group_id,
            GroupUpdate.title,
            GroupUpdate.text,
            GroupUpdate.author,
            GroupUpdate.created_at,
        )
        .where(GroupUpdate.created_at >= start, GroupUpdate.created_at < end)
        .order_by(GroupUpdate.created_at, GroupUpdate.id)
    ).all()
    decisions = session.execute(
        select(Request.group_id, Request.kind, Request.state, Request.decided_at, Organisation.name)
        .outerjoin(Organisation, Organisation.id == Request.organisation_id)
        .where(
            Request.group_id.is_not(None),
            Request.kind.in_(("join", "start")),
            Request.state.in_(("approved", "rejected")),
            Request.decided_at >= start,
            Request.decided_at < end,
        )
        .order_by(Request.decided_at, Request.id)
    ).all()
    joined: defaultdict[int, list[str]] = defaultdict(list)
    for group_id, name, _first in newcomers:
        joined[group_id].append(name)
    posted: defaultdict[int, list[UpdateFacts]] = defaultdict(list)
    for group_id, title, text, author, created in updates:
        whole = cut(text)
        posted[group_id].append(
            UpdateFacts(title, whole, wrap(whole), wrap(excerpt(text)), author, _day(created, zone), created)
        )
    decided: defaultdict[int, list[DecisionFacts]] = defaultdict(list)
    for decided_group, kind, state, when, organisation in decisions:
        if decided_group is not None and when is not None:
            decided[decided_group].append(DecisionFacts(kind, state, organisation, _day(when, zone)))
    return {
        group.id: GroupNews(
            slug=group.slug,
            name=group.name,
            status=group.status,
            aim=group.aim,
            facilitator_email=group.facilitator_email,
            participants=group.participants,
            needed=max(0, ACTIVE_THRESHOLD - group.participants),
            new_organisations=tuple(joined[group.id]),
            updates=tuple(posted[group.id]),
            decisions=tuple(decided[group.id]),
            is_new=start <= group.created_at < end,
            became_active=group.activated_at is not None and start <= group.activated_at < end,
        )
        for group in groups.values()
    }


def load_ahead(
    session: Session, groups: dict[int, GroupRow], now: datetime, within: timedelta, organizer: str
) -> dict[int, list[Ahead]]:
    """The occurrences of each group's scheduled meetings that start in ``(now, now + within]``.

    Two queries: the meetings still ahead, and the moved or cancelled occurrences of all of them.
    """
    meetings = list(
        session.scalars(
            select(Meeting)
            .where(Meeting.status == "scheduled", Meeting.ends_at > now, Meeting.group_id.in_(list(groups)))
            .order_by(Meeting.starts_at, Meeting.id)
        )
    )
    overrides: dict[int, list[cal.Occurrence]] = {}
    for start in range(0, len(meetings), _CHUNK):
        ids = [m.id for m in meetings[start : start + _CHUNK]]
        for row in session.scalars(
            select(MeetingOccurrence)
            .where(MeetingOccurrence.meeting_id.in_(ids))
            .order_by(MeetingOccurrence.recurrence_id)
        ):
            overrides.setdefault(row.meeting_id, []).append(
                cal.Occurrence(
                    recurrence_id=row.recurrence_id,
                    start=row.starts_at,
                    duration=timedelta(minutes=row.duration_minutes) if row.duration_minutes else None,
                    cancelled=row.cancelled,
                )
            )
    ahead: dict[int, list[Ahead]] = {}
    for meeting in meetings:
        core = to_core(meeting, "", organizer)
        for instance in cal.occurrences(core, overrides.get(meeting.id, ())):
            if not now < instance.start <= now + within:
                continue
            facts = MeetingFacts(
                id=meeting.id,
                title=meeting.title,
                kind=meeting.kind,
                group=groups[meeting.group_id].name,
                group_slug=groups[meeting.group_id].slug,
                when=local_short(instance.start, meeting.tzid),
                minutes=int(instance.duration.total_seconds() // 60),
                join_url=meeting.join_url,
                dial_in=meeting.dial_in.removeprefix("tel:"),
                pin=meeting.pin,
            )
            key = occurrence_key(instance.recurrence_id) if meeting.frequency else ""
            ahead.setdefault(meeting.group_id, []).append(
                Ahead(meeting.id, meeting.group_id, key, instance.start.astimezone(UTC), facts)
            )
    for items in ahead.values():
        items.sort(key=lambda item: (item.start, item.meeting_id))
        del items[_MEETINGS_PER_GROUP:]
    return ahead


def load_answers(session: Session, meeting_ids: Iterable[int]) -> dict[tuple[int, str], dict[str, str]]:
    """Each invited attendee's answers by ``(meeting, email)``: "" for the series, and per occurrence."""
    wanted = sorted(set(meeting_ids))
    answers: dict[tuple[int, str], dict[str, str]] = {}
    invited: set[tuple[int, str]] = set()
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(
                Attendance.meeting_id,
                Attendance.email,
                Attendance.occurrence,
                Attendance.partstat,
                Attendance.invited,
            ).where(Attendance.meeting_id.in_(wanted[start : start + _CHUNK]))
        )
        for meeting_id, email, occurrence, partstat, is_invited in rows:
            key = (meeting_id, email)
            answers.setdefault(key, {})[occurrence] = partstat
            if occurrence == "" and is_invited:
                invited.add(key)
    return {key: found for key, found in answers.items() if key in invited}


def answer_of(answers: dict[tuple[int, str], dict[str, str]], item: Ahead, email: str) -> str:
    """One attendee's answer to one occurrence; :data:`NO_INVITATION` when they hold no invitation."""
    found = answers.get((item.meeting_id, email))
    if found is None:
        return NO_INVITATION
    return found.get(item.occurrence) or found.get("") or cal.PartStat.NEEDS_ACTION.value


@dataclass(frozen=True, slots=True)
class Reader:
    """A digest's recipient: the contact's id, address, name and how often they want a digest."""

    id: int
    email: str
    name: str
    frequency: str


def chosen_explicitly(session: Session, email: str | None = None) -> set[str]:
    """The addresses that chose their digest frequency by a DIGEST command (only ``email``, when given)."""
    query = select(Event.actor).where(Event.kind == "digest_preference")
    if email is not None:
        query = query.where(Event.actor == email)
    waiting = {
        str(row["actor"])
        for row in waiting_events(session)
        if row["kind"] == "digest_preference" and email in (None, row["actor"])
    }
    return set(session.scalars(query.distinct())) | waiting


class Seat(NamedTuple):
    """A contact's active membership of one group: which group, their role, and since when."""

    group_id: int
    role: str
    joined_at: datetime


def load_members(session: Session) -> dict[Reader, list[Seat]]:
    """Every contact with an active membership of an open group, and those memberships."""
    rows = session.execute(
        select(
            Contact.id,
            Contact.email,
            Contact.name,
            Contact.digest,
            Membership.group_id,
            Membership.role,
            Membership.joined_at,
        )
        .join(Membership, Membership.contact_id == Contact.id)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.status == "active", Group.status != "closed")
        .order_by(Contact.id, Group.name)
    )
    members: dict[Reader, list[Seat]] = {}
    for contact_id, email, name, digest, group_id, role, joined_at in rows:
        members.setdefault(Reader(contact_id, email, name, digest), []).append(
            Seat(group_id, role, joined_at)
        )
    return members


def load_network(session: Session, known_before: datetime) -> list[Reader]:
    """Every contact of a Participant or Strategic Partner organisation that the service knew before then."""
    statuses = (NetworkStatus.PARTICIPANT.value, NetworkStatus.STRATEGIC_PARTNER.value)
    rows = session.execute(
        select(Contact.id, Contact.email, Contact.name, Contact.digest)
        .join(Organisation, Organisation.id == Contact.organisation_id)
        .where(Organisation.status.in_(statuses), Contact.created_at < known_before)
        .order_by(Contact.id)
    )
    return [Reader(*row) for row in rows]
