"""Meeting rules that need the store: stale answers, SEQUENCE across leaving and rejoining, kept answers."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from mailflow.app import meeting_ops, queries
from mailflow.app.effects import Mailer
from mailflow.app.meetings import Meetings
from mailflow.app.process import Pipeline
from mailflow.app.registry import import_file
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.app.setup import initialise
from mailflow.config import load_settings
from mailflow.store.schema import Contact, Group, Membership, Organisation, OutboxMessage
from mailflow.testing import DEFAULT_GROUPS, DEMO_REGISTRY, invitation_calendar, rsvp_mail, write_config
from tests.conftest import Clock, seat

MEMBERS = ("anna@ghent.example", "bo@ghent.example", "cy@ghent.example")


def _members(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        ghent = session.scalars(select(Organisation).where(Organisation.name == "City of Ghent")).one()
        for email in MEMBERS:
            contact = Contact(email=email, name="", organisation_id=ghent.id, created_at=runtime.clock())
            session.add(contact)
            session.flush()
            seat(session, group, contact, "member", runtime.clock())


def _schedule(runtime: Runtime) -> int:
    args = meeting_ops.ScheduleArgs(
        group="circular", start="2027-03-12T14:00", duration=60, kind="web", url="https://meet.example/c"
    )
    return meeting_ops.schedule(runtime, args)


def _mails(runtime: Runtime, to: str) -> list[OutboxMessage]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.to_addr == to).order_by(OutboxMessage.id)
            )
        )


def _sequence(mail: OutboxMessage) -> int:
    found = re.search(r"^SEQUENCE:(\d+)", invitation_calendar(mail.raw), re.MULTILINE)
    assert found is not None
    return int(found[1])


def _answers(runtime: Runtime) -> dict[str, str]:
    [row] = meeting_ops.rows(runtime)
    return {a["email"]: a["partstat"] for a in row["attendees"]}


def test_an_answer_to_the_old_time_does_not_count_for_the_new_one(runtime: Runtime):
    """After the time changed, a REPLY to the earlier invitation is recorded as stale and changes nothing."""
    _members(runtime)
    meeting_id = _schedule(runtime)
    [first] = _mails(runtime, MEMBERS[0])
    meeting_ops.update(runtime, meeting_id, start="2027-03-12T15:00")

    Pipeline(runtime).accept(rsvp_mail(first.raw, MEMBERS[0], "ACCEPTED"), "file", "")
    assert "NEEDS-ACTION" == _answers(runtime)[MEMBERS[0]]

    [_, updated] = _mails(runtime, MEMBERS[0])
    Pipeline(runtime).accept(rsvp_mail(updated.raw, MEMBERS[0], "ACCEPTED", client="gmail"), "file", "")
    assert "ACCEPTED" == _answers(runtime)[MEMBERS[0]]


def test_answers_survive_a_change_that_keeps_the_time(runtime: Runtime):
    """A new link raises SEQUENCE but keeps every answer, and answers to the earlier SEQUENCE still count."""
    _members(runtime)
    meeting_id = _schedule(runtime)
    invitation = _mails(runtime, MEMBERS[1])[0]
    Pipeline(runtime).accept(rsvp_mail(invitation.raw, MEMBERS[0], "DECLINED", client="apple"), "file", "")
    meeting_ops.update(runtime, meeting_id, url="https://meet.example/new-room")
    Pipeline(runtime).accept(
        rsvp_mail(invitation.raw, MEMBERS[1], "TENTATIVE", client="thunderbird"), "file", ""
    )

    answers = _answers(runtime)
    assert "TENTATIVE" == answers[MEMBERS[1]]
    # anna answered with bo's invitation forwarded to her: she was invited too, and it is her own answer.
    assert "DECLINED" == answers[MEMBERS[0]]
    assert 1 == _sequence(_mails(runtime, MEMBERS[2])[-1])


def test_leaving_and_rejoining_never_sends_an_older_sequence(runtime: Runtime):
    """The leaver's CANCEL outranks their invitation; the invitation after rejoining outranks the CANCEL."""
    _members(runtime)
    _schedule(runtime)
    leaver = MEMBERS[2]
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        contact = session.scalars(select(Contact).where(Contact.email == leaver)).one()
        meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
        assert 1 == meetings.member_left(group, contact)
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        contact = session.scalars(select(Contact).where(Contact.email == leaver)).one()
        meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
        assert 1 == meetings.member_joined(group, contact)

    invited, cancelled, again = _mails(runtime, leaver)
    assert ["meeting_invitation", "meeting_cancelled", "meeting_invitation"] == [
        invited.kind,
        cancelled.kind,
        again.kind,
    ]
    assert _sequence(invited) < _sequence(cancelled) <= _sequence(again)
    assert "METHOD:CANCEL" in invitation_calendar(cancelled.raw)
    assert leaver in _answers(runtime)


def test_a_facilitator_declared_before_the_registry_counts_for_their_organisation(
    tmp_path: Path, database_url: str, clock: Clock
):
    """`init` before `org import`: the import gives the facilitator and their membership the organisation."""
    groups = DEFAULT_GROUPS.replace(
        'status = "forming"', 'status = "forming"\nfacilitator = "fiona@lyon.example"'
    )
    runtime = build_runtime(load_settings(write_config(tmp_path, database_url, groups=groups)))
    runtime.clock = clock
    try:
        initialise(runtime)
        registry = tmp_path / "registry.csv"
        registry.write_text(DEMO_REGISTRY, encoding="utf-8")
        import_file(runtime, registry)
        with runtime.sessions() as session:
            membership, organisation = session.execute(
                select(Membership, Organisation.name)
                .join(Contact, Membership.contact_id == Contact.id)
                .join(Organisation, Contact.organisation_id == Organisation.id)
                .where(Contact.email == "fiona@lyon.example")
            ).one()
            assert "City of Lyon" == organisation
            assert membership.organisation_id == membership.contact.organisation_id
        [circular] = [g for g in queries.groups(runtime) if g["slug"] == "circular"]
        assert 1 == circular["participant_count"]
    finally:
        runtime.engine.dispose()
