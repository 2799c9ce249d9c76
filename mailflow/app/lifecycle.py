"""The groups' life over time (SPEC §2.4, §2.5): reminders to approvers and facilitators; end of period.

Jobs for :func:`mailflow.app.schedule.tick`:

- ``approval_reminders``: approvers get one mail a day listing the requests pending longer than
  ``[lifecycle] approval_reminder_hours``.
- ``update_reminders``: the facilitator of an active group without an update for ``update_every_days`` is
  reminded, and the secretariat told, once per such period.
- ``group_end``: ``end_notice_days`` before a group's end (``period_months`` after it became active, moved by
  extensions) the group becomes ``closing`` and its facilitator and the secretariat are asked to reply
  ``EXTEND <months>`` or ``CLOSE``, with a reply token each (the approval tokens' rules); at the end date, if
  nobody answered, the secretariat is asked again.

The answer (:func:`answer_group_end`) extends the group, or closes it: members are told, memberships end and
the meetings ahead are cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer, spend_waiting_tokens
from mailflow.app.events import record_event
from mailflow.app.jobs import Due, Job, facilitator_and_secretariat
from mailflow.app.meetings import Meetings
from mailflow.app.runtime import Runtime
from mailflow.app.work import Work
from mailflow.core.intent import parse_group_decision
from mailflow.core.lifecycle import RequestState
from mailflow.core.meetings import local_long
from mailflow.core.plans import Mail, TokenSpec
from mailflow.store.repo import end_terms, facilitator_email, forget_groups
from mailflow.store.schema import Contact, Group, GroupUpdate, Membership, Organisation, ReplyToken, Request

_DAY = timedelta(days=1)
_MONTH_DAYS = 30.4375


def _day(now: datetime, runtime: Runtime) -> str:
    return now.astimezone(ZoneInfo(runtime.settings.network.timezone)).date().isoformat()


def _group(group: Group) -> dict[str, str]:
    return {"slug": group.slug, "name": group.name}


# -- approvals --------------------------------------------------------------------------------------------


def approval_reminders(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """One mail a day to each approver listing the requests that have waited too long."""
    waited = timedelta(hours=runtime.settings.lifecycle.approval_reminder_hours)
    rows = session.execute(
        select(Request, Contact.email, Organisation.name, Group.name)
        .join(Contact, Request.contact_id == Contact.id)
        .outerjoin(Organisation, Request.organisation_id == Organisation.id)
        .outerjoin(Group, Request.group_id == Group.id)
        .where(Request.state == RequestState.PENDING_APPROVAL.value, Request.updated_at <= now - waited)
        .order_by(Request.id)
    ).all()
    if not rows:
        return []
    pending = [
        {
            "id": request.id,
            "kind": request.kind,
            "who": organisation or email,
            "email": email,
            "subject": group or request.topic,
            "days": max(1, int((now - request.updated_at) / _DAY)),
        }
        for request, email, organisation, group in rows
    ]
    day = _day(now, runtime)
    return [
        Due(
            key=f"approval-reminder/{day}/{approver.lower()}",
            mail=Mail("approval_reminder", approver, {"pending": pending}),
            event="approval_reminder_sent",
            detail=f"{len(pending)} requests pending",
        )
        for approver in runtime.settings.secretariat.approvers
    ]


# -- updates ----------------------------------------------------------------------------------------------


def update_reminders(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """Facilitators of active groups without an update for a period are reminded; the secretariat is told."""
    every = timedelta(days=runtime.settings.lifecycle.update_every_days)
    last_updates = dict(
        session.execute(
            select(GroupUpdate.group_id, func.max(GroupUpdate.created_at)).group_by(GroupUpdate.group_id)
        ).all()
    )
    due: list[Due] = []
    for group in session.scalars(select(Group).where(Group.status == "active", Group.associated.is_(False))):
        since = last_updates.get(group.id) or group.activated_at or group.created_at
        periods = int((now - since) / every)
        if periods < 1:
            continue
        facilitator = facilitator_email(session, group)
        context = {
            "group": _group(group),
            "since": local_long(since, runtime.settings.network.timezone),
            "days": int((now - since) / _DAY),
            "facilitator": facilitator,
            "ever": group.id in last_updates,
        }
        due += facilitator_and_secretariat(
            f"update-due/{group.id}/{since.astimezone(UTC):%Y%m%dT%H%M}/{periods}",
            "update_due",
            context,
            facilitator=facilitator,
            secretariat=runtime.secretariat_address,
            event="update_reminder_sent",
            group_id=group.id,
            detail=f"no update for {context['days']} days",
        )
    return due


# -- end of period ----------------------------------------------------------------------------------------


def group_end(group: Group, runtime: Runtime) -> datetime:
    """The end of the group's period: its recorded end, else ``period_months`` after it became active."""
    if group.ends_at is not None:
        return group.ends_at
    began = group.activated_at or group.created_at
    return began + timedelta(days=round(runtime.settings.lifecycle.period_months * _MONTH_DAYS))


def _to_closing(group_id: int) -> Callable[[Session, datetime], None]:
    def apply(session: Session, now: datetime) -> None:
        group = session.get_one(Group, group_id, with_for_update=True)
        if group.status == "active":
            group.status = "closing"
            record_event(
                session, "group_closing", now, group_id=group.id, from_state="active", to_state="closing"
            )

    return apply


def group_end_questions(session: Session, runtime: Runtime, now: datetime) -> list[Due]:
    """Ask facilitator and secretariat to EXTEND or CLOSE a group nearing its end; again at the end date."""
    notice = timedelta(days=runtime.settings.lifecycle.end_notice_days)
    due: list[Due] = []
    groups = session.scalars(
        select(Group).where(Group.status.in_(("active", "closing")), Group.associated.is_(False))
    )
    for group in groups:
        end = group_end(group, runtime)
        if now < end - notice:
            continue
        ended = now >= end
        facilitator = facilitator_email(session, group)
        # The notice goes to both; at the end date, nobody having answered, the secretariat is asked again.
        recipients = [facilitator] if facilitator and not ended else []
        recipients.append(runtime.secretariat_address)
        context = {
            "group": _group(group),
            "end": local_long(end, runtime.settings.network.timezone),
            "ended": ended,
            "period_months": runtime.settings.lifecycle.period_months,
        }
        stage = "ended" if ended else "notice"
        due.extend(
            Due(
                key=f"group-end/{group.id}/{end.astimezone(UTC):%Y%m%d}/{stage}/{to.lower()}",
                mail=Mail(
                    "group_end",
                    to,
                    {**context, "to_facilitator": to == facilitator},
                    token=TokenSpec("group_end", to),
                ),
                event="group_end_question",
                group_id=group.id,
                detail=f"{stage}: ends {end.date()}",
                apply=_to_closing(group.id),
            )
            for to in recipients
        )
    return due


JOBS: dict[str, Job] = {
    "approval_reminders": approval_reminders,
    "update_reminders": update_reminders,
    "group_end": group_end_questions,
}


# -- the answer -------------------------------------------------------------------------------------------


def answer_group_end(work: Work, contact: Contact, token: ReplyToken) -> None:
    """EXTEND <months> or CLOSE from a holder of a group's end-of-period token."""
    session = work.session
    group = session.get(Group, token.group_id, with_for_update=True) if token.group_id else None
    if group is None:  # pragma: no cover - group tokens are minted only for groups
        return
    decision = parse_group_decision(work.parsed.text)
    if decision is None:
        record_event(
            session,
            "group_end_unclear",
            work.now,
            group_id=group.id,
            actor=contact.email,
            inbound=work.inbound,
        )
        context: dict[str, object] = {
            "group": _group(group),
            "end": local_long(group_end(group, work.runtime), work.runtime.settings.network.timezone),
        }
        work.mailer.queue(Mail("group_end_unclear", contact.email, context, answers_sender=True))
        return
    if group.status == "closed":
        context = {"group": _group(group), "what": "already_closed", "months": 0, "end": "", "told": 0}
        work.mailer.queue(Mail("group_end_done", contact.email, context, answers_sender=True))
        return
    # Every end-of-period token of this group is spent by the decision (like a request's approval tokens).
    for other in session.scalars(
        select(ReplyToken).where(ReplyToken.group_id == group.id, ReplyToken.used_at.is_(None))
    ):
        other.used_at = work.now
    spend_waiting_tokens(session, work.now, group_id=group.id)
    if decision.extend:
        extend_group(session, work.runtime, group, months=decision.months, actor=contact.email, now=work.now)
        context = {
            "group": _group(group),
            "what": "extended",
            "months": decision.months,
            "end": local_long(group_end(group, work.runtime), work.runtime.settings.network.timezone),
            "told": 0,
        }
    else:
        told = close_group(session, work.runtime, work.mailer, group, actor=contact.email, now=work.now)
        context = {"group": _group(group), "what": "closed", "months": 0, "end": "", "told": told}
    work.mailer.queue(Mail("group_end_done", contact.email, context, answers_sender=True))


def extend_group(
    session: Session, runtime: Runtime, group: Group, *, months: int, actor: str, now: datetime
) -> None:
    """Move the group's end by ``months`` and keep (or make) it active."""
    before = group.status
    end = group_end(group, runtime)
    group.ends_at = max(end, now) + timedelta(days=round(months * _MONTH_DAYS))
    group.status = "active"
    record_event(
        session,
        "group_extended",
        now,
        group_id=group.id,
        from_state=before,
        to_state="active",
        actor=actor,
        detail=f"{months} months, to {group.ends_at.date()}",
    )


def close_group(
    session: Session, runtime: Runtime, mailer: Mailer, group: Group, *, actor: str, now: datetime
) -> int:
    """Close the group: cancel its meetings ahead, tell its members and end their memberships.

    Returns:
        How many members were told.
    """
    before = group.status
    meetings = Meetings(session, runtime, now, mailer)
    for meeting in meetings.ahead(group.id):
        meetings.cancel(meeting, actor=actor)
    members = session.execute(
        select(Membership, Contact.email)
        .join(Contact, Membership.contact_id == Contact.id)
        .where(Membership.group_id == group.id, Membership.status == "active")
    ).all()
    for membership, email in members:
        membership.status, membership.left_at = "left", now
        mailer.queue(Mail("group_closed", email, {"group": _group(group)}))
    group.status, group.closed_at = "closed", now
    end_terms(session, group.id, now, "closed")
    session.flush()
    forget_groups(session)
    record_event(
        session, "group_closed", now, group_id=group.id, from_state=before, to_state="closed", actor=actor
    )
    return len(members)
