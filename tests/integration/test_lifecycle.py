"""The groups over time: facilitator updates, reminders to approvers and facilitators, EXTEND and CLOSE."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mailflow.app import meeting_ops
from mailflow.app.process import Pipeline
from mailflow.app.runtime import Runtime
from mailflow.app.schedule import tick
from mailflow.store.schema import (
    Contact,
    Group,
    GroupUpdate,
    Meeting,
    Membership,
    Organisation,
    OutboxMessage,
    Request,
)
from mailflow.testing import APPROVER, gmail_reply, outlook_reply, request_mail
from tests.conftest import Clock, seat

FACILITATOR = "fiona@lyon.example"
MEMBERS = ("anna@ghent.example", "sara@malmo.example")


def _active_group(runtime: Runtime) -> None:
    """Make circular active, with FACILITATOR facilitating and MEMBERS as members."""
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        for index, email in enumerate((FACILITATOR, *MEMBERS)):
            domain = email.rpartition("@")[2]
            name = {"lyon.example": "City of Lyon", "ghent.example": "City of Ghent"}.get(
                domain, "City of Malmo"
            )
            organisation = session.scalars(select(Organisation).where(Organisation.name == name)).one()
            contact = Contact(
                email=email, name="", organisation_id=organisation.id, created_at=runtime.clock()
            )
            session.add(contact)
            session.flush()
            seat(session, group, contact, "facilitator" if index == 0 else "member", runtime.clock())
        group.status, group.activated_at = "active", runtime.clock()


def _outbox(runtime: Runtime, kind: str, to: str | None = None) -> list[OutboxMessage]:
    with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        if to is not None:
            query = query.where(OutboxMessage.to_addr == to)
        return list(session.scalars(query))


def _circular(runtime: Runtime) -> Group:
    with runtime.sessions() as session:
        return session.scalars(select(Group).where(Group.slug == "circular")).one()


def test_the_facilitator_posts_an_update_and_others_may_not(runtime: Runtime):
    """UPDATE circular from the facilitator is stored and acknowledged; from a member it is refused."""
    _active_group(runtime)
    text = "We met on 3 March and agreed to share tender texts for reused furniture."
    Pipeline(runtime).accept(request_mail(FACILITATOR, "UPDATE circular Reuse tenders", text), "file", "")
    Pipeline(runtime).accept(request_mail(MEMBERS[0], "UPDATE circular", "Me too"), "file", "")

    with runtime.sessions() as session:
        [update] = session.scalars(select(GroupUpdate)).all()
    assert ("Reuse tenders", text, FACILITATOR) == (update.title, update.text, update.author)
    [ack] = _outbox(runtime, "update_received", FACILITATOR)
    assert "3 members" in ack.raw.decode()
    [refused] = _outbox(runtime, "update_refused", MEMBERS[0])
    assert b"Only the facilitator" in refused.raw


def test_approvers_are_reminded_of_waiting_requests_once_a_day(runtime: Runtime, clock: Clock):
    """A request pending longer than the limit is listed in one reminder a day to each approver."""
    Pipeline(runtime).accept(request_mail("anna@ghent.example", "JOIN circular", "Hello"), "file", "")
    assert 0 == tick(runtime, clock.now + timedelta(hours=24)).queued["approval_reminders"]

    later = clock.now + timedelta(hours=80)
    first = tick(runtime, later)
    same_day = tick(runtime, later + timedelta(hours=1))
    next_day = tick(runtime, later + timedelta(days=1))

    approvers = runtime.settings.secretariat.approvers
    assert (len(approvers), 0, len(approvers)) == (
        first.queued["approval_reminders"],
        same_day.queued["approval_reminders"],
        next_day.queued["approval_reminders"],
    )
    reminder = _outbox(runtime, "approval_reminder", APPROVER)[0]
    assert "#1" in reminder.raw.decode()


def test_a_facilitator_without_updates_is_reminded_until_they_post(runtime: Runtime, clock: Clock):
    """No update for the period: facilitator and secretariat hear once; an update restarts the clock."""
    _active_group(runtime)
    start = clock.now
    tick(runtime, start + timedelta(days=80))
    assert 0 == len(_outbox(runtime, "update_due", FACILITATOR))
    tick(runtime, start + timedelta(days=95))
    tick(runtime, start + timedelta(days=100))
    assert 1 == len(_outbox(runtime, "update_due", FACILITATOR))
    notes = [m for m in _outbox(runtime, "update_due_secretariat") if "Circular" in m.subject]
    assert 1 == len(notes)

    clock.now = start + timedelta(days=101)
    Pipeline(runtime).accept(request_mail(FACILITATOR, "UPDATE circular", "News"), "file", "")
    tick(runtime, start + timedelta(days=150))
    assert 1 == len(_outbox(runtime, "update_due", FACILITATOR))
    tick(runtime, start + timedelta(days=192))
    assert 2 == len(_outbox(runtime, "update_due", FACILITATOR))


def _circular_questions(runtime: Runtime) -> list[OutboxMessage]:
    return [m for m in _outbox(runtime, "group_end") if "Circular" in m.subject]


def _question(runtime: Runtime, to: str) -> OutboxMessage:
    [question] = [m for m in _circular_questions(runtime) if m.to_addr == to]
    return question


def test_extend_answers_the_end_of_period_question(runtime: Runtime, clock: Clock):
    """Before the end the group is closing and both are asked; the facilitator's EXTEND 12 keeps it going."""
    _active_group(runtime)
    end = _circular(runtime).activated_at + timedelta(days=731)  # type: ignore[operator]
    tick(runtime, end - timedelta(days=70))
    assert [] == _circular_questions(runtime)
    tick(runtime, end - timedelta(days=59))
    assert {FACILITATOR, runtime.secretariat_address} == {m.to_addr for m in _circular_questions(runtime)}
    assert "closing" == _circular(runtime).status

    clock.now = end - timedelta(days=50)
    Pipeline(runtime).accept(
        gmail_reply(_question(runtime, FACILITATOR).raw, FACILITATOR, "EXTEND 12"), "file", ""
    )

    group = _circular(runtime)
    assert "active" == group.status
    assert group.ends_at is not None
    assert timedelta(days=360) < group.ends_at - end < timedelta(days=370)
    assert 1 == len(_outbox(runtime, "group_end_done", FACILITATOR))
    # The secretariat's token was spent by the facilitator's decision: its late CLOSE changes nothing.
    secretariat = runtime.secretariat_address
    Pipeline(runtime).accept(
        outlook_reply(_question(runtime, secretariat).raw, secretariat, "CLOSE"), "file", ""
    )
    assert "active" == _circular(runtime).status
    assert 1 == len(_outbox(runtime, "token_refused", secretariat))
    # The new end brings a new question in due time, not a repeat of the old one.
    tick(runtime, end)
    assert 2 == len(_circular_questions(runtime))


def test_close_tells_members_cancels_meetings_and_ends_memberships(runtime: Runtime, clock: Clock):
    """CLOSE from the secretariat closes the group, tells every member and cancels the meetings ahead."""
    _active_group(runtime)
    meeting_id = meeting_ops.schedule(
        runtime,
        meeting_ops.ScheduleArgs(
            group="circular", start="2028-11-20T10:00", duration=60, kind="web", url="https://meet.example/c"
        ),
    )
    end = _circular(runtime).activated_at + timedelta(days=731)  # type: ignore[operator]
    tick(runtime, end - timedelta(days=30))
    clock.now = end - timedelta(days=20)
    secretariat = runtime.secretariat_address
    Pipeline(runtime).accept(
        outlook_reply(_question(runtime, secretariat).raw, secretariat, "CLOSE"), "file", ""
    )

    assert "closed" == _circular(runtime).status
    assert {FACILITATOR, *MEMBERS} == {m.to_addr for m in _outbox(runtime, "group_closed")}
    assert {FACILITATOR, *MEMBERS} == {m.to_addr for m in _outbox(runtime, "meeting_cancelled")}
    with runtime.sessions() as session:
        assert "cancelled" == session.get_one(Meeting, meeting_id).status
        statuses = set(session.scalars(select(Membership.status)))
    assert {"left"} == statuses
    # A closed group takes no more join requests: it is no longer offered or matched.
    Pipeline(runtime).accept(request_mail("lea@haarlem.example", "JOIN circular", "Hello"), "file", "")
    with runtime.sessions() as session:
        assert [] == list(session.scalars(select(Request).where(Request.state == "pending_approval")))


def test_at_the_end_date_without_an_answer_the_secretariat_is_asked_again(runtime: Runtime):
    """Nobody answered the notice: at the end date the secretariat alone gets the question once more."""
    _active_group(runtime)
    end = _circular(runtime).activated_at + timedelta(days=731)  # type: ignore[operator]
    tick(runtime, end - timedelta(days=59))
    tick(runtime, end + timedelta(hours=1))
    tick(runtime, end + timedelta(days=2))
    questions = [m.to_addr for m in _circular_questions(runtime)]
    assert 1 == questions.count(FACILITATOR)
    assert 2 == questions.count(runtime.secretariat_address)
    assert "closing" == _circular(runtime).status
