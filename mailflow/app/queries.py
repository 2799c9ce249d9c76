"""Read state for the CLI's ``--json`` views (SPEC §6 names the fields), and the operator's decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from mailflow.app.effects import Mailer
from mailflow.app.process import process_one
from mailflow.app.replies import apply_verdict
from mailflow.app.runtime import Runtime
from mailflow.core.lifecycle import NotAllowedError
from mailflow.core.model import Decision, Verdict
from mailflow.errors import MailflowError, NotFoundError
from mailflow.intake.base import Disposition
from mailflow.store import repo
from mailflow.store.schema import (
    Contact,
    Group,
    InboundMessage,
    Membership,
    Organisation,
    OutboxMessage,
    Request,
)

Row = dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def groups(runtime: Runtime) -> list[Row]:
    """One row per group."""
    with runtime.sessions() as session:
        rows = []
        for group in session.scalars(select(Group).order_by(Group.slug)):
            facilitator = session.get(Contact, group.facilitator_id) if group.facilitator_id else None
            members = session.scalar(
                select(func.count(Membership.id)).where(
                    Membership.group_id == group.id, Membership.status == "active"
                )
            )
            rows.append(
                {
                    "slug": group.slug,
                    "name": group.name,
                    "status": group.status,
                    "facilitator_email": facilitator.email if facilitator else None,
                    "participant_count": repo.participant_count(session, group.id),
                    "member_count": members or 0,
                    "associated": group.associated,
                    "aliases": list(group.aliases or []),
                    "aim": group.aim,
                }
            )
        return rows


def requests(runtime: Runtime, state: str | None = None) -> list[Row]:
    """One row per request, oldest first, optionally only those in ``state``."""
    query = (
        select(Request, Contact.email, Organisation.name, Group.slug)
        .join(Contact, Request.contact_id == Contact.id)
        .outerjoin(Organisation, Request.organisation_id == Organisation.id)
        .outerjoin(Group, Request.group_id == Group.id)
        .order_by(Request.id)
    )
    if state:
        query = query.where(Request.state == state)
    with runtime.sessions() as session:
        return [
            {
                "id": request.id,
                "kind": request.kind,
                "state": request.state,
                "contact_email": email,
                "organisation": organisation,
                "group_slug": slug,
                "created_at": _iso(request.created_at),
                "decided_at": _iso(request.decided_at),
                "decided_by": request.decided_by,
                "topic": request.topic or None,
                "reason": request.reason or None,
            }
            for request, email, organisation, slug in session.execute(query).all()
        ]


def members(runtime: Runtime, slug: str) -> list[Row]:
    """One row per membership of the group (active and past).

    Raises:
        NotFoundError: no group has that slug.
    """
    with runtime.sessions() as session:
        group = session.scalar(select(Group).where(Group.slug == slug))
        if group is None:
            raise NotFoundError(f"no group with slug {slug!r}; `mailflow groups --json` lists them")
        query = (
            select(Membership, Contact.email, Organisation.name)
            .join(Contact, Membership.contact_id == Contact.id)
            .outerjoin(Organisation, Membership.organisation_id == Organisation.id)
            .where(Membership.group_id == group.id)
            .order_by(Membership.id)
        )
        return [
            {
                "organisation": organisation,
                "contact_email": email,
                "role": membership.role,
                "status": membership.status,
                "joined_at": _iso(membership.joined_at),
            }
            for membership, email, organisation in session.execute(query).all()
        ]


def outbox(runtime: Runtime) -> list[Row]:
    """One row per queued, sent or failed mail."""
    with runtime.sessions() as session:
        return [
            {
                "id": row.id,
                "to": row.to_addr,
                "subject": row.subject,
                "state": row.state,
                "message_id": row.message_id,
                "kind": row.kind,
                "attempts": row.attempts,
                "last_error": row.last_error or None,
                "created_at": _iso(row.created_at),
                "sent_at": _iso(row.sent_at),
            }
            for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def quarantine(runtime: Runtime) -> list[Row]:
    """One row per quarantined message."""
    with runtime.sessions() as session:
        query = (
            select(
                InboundMessage.id,
                InboundMessage.reason,
                InboundMessage.subject,
                InboundMessage.from_addr,
                InboundMessage.received_at,
            )
            .where(InboundMessage.status == "quarantined")
            .order_by(InboundMessage.id)
        )
        return [
            {
                "id": i,
                "reason": reason,
                "subject": subject,
                "from": sender,
                "received_at": _iso(received),
            }
            for i, reason, subject, sender, received in session.execute(query).all()
        ]


def retry_quarantined(runtime: Runtime, inbound_id: int) -> Disposition:
    """Process a quarantined message again.

    Raises:
        NotFoundError: no quarantined message has that id.
    """
    with runtime.sessions.begin() as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None or row.status != "quarantined":
            raise NotFoundError(f"no quarantined message with id {inbound_id}")
        row.status, row.reason = "pending", ""
    return process_one(runtime, inbound_id)


def decide(
    runtime: Runtime, request_id: int, verdict: Verdict, text: str = "", actor: str = "operator"
) -> str:
    """The secretariat's fallback: approve or reject a request from the command line.

    Returns:
        The request's new state.

    Raises:
        NotFoundError: no request has that id.
        MailflowError: the request's state does not allow the decision.
    """
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        request = session.get(Request, request_id, with_for_update=True)
        if request is None:
            raise NotFoundError(f"no request with id {request_id}; `mailflow requests --json` lists them")
        try:
            mailer = Mailer(session, runtime, now)
            apply_verdict(session, mailer, request, Decision(verdict, text), actor=actor, now=now)
        except NotAllowedError as exc:
            raise MailflowError(f"request {request_id}: {exc}") from None
        return request.state
