"""Carry out a core :class:`~mailflow.core.workflow.Plan` inside the caller's transaction.

State changes, the event and the outbox rows are written in the same session, so they commit or
vanish together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from mailflow.app.events import Inbound, record_event
from mailflow.app.helper import RenderJob, renderings
from mailflow.app.runtime import Runtime
from mailflow.core.compose import render_bodies
from mailflow.core.intent import normalise
from mailflow.core.lifecycle import OPEN_STATES
from mailflow.core.model import ParsedMail
from mailflow.core.plans import Mail, Plan
from mailflow.core.tokens import TOKEN_BYTES, format_token, hash_token
from mailflow.store.repo import end_terms, forget_groups, start_term
from mailflow.store.schema import (
    Contact,
    Group,
    Membership,
    OutboxMessage,
    ReplyToken,
    Request,
    Suppression,
    UtcDateTime,
)
from mailflow.store.writes import pending, write

_OUTBOX = OutboxMessage.__table__
_INSERT_TOKEN = insert(ReplyToken)
_LOOKUP_CHUNK = 500
_RATE_WINDOW = timedelta(hours=1)
_INSERT_OUTBOX = insert(OutboxMessage)
_SUPPRESSED = select(Suppression.__table__.c.email).where(Suppression.__table__.c.email == bindparam("email"))
# Only replies count toward the rate limit: notices, invitations and reminders to the same address do not.
_SENT_SINCE = select(func.count(_OUTBOX.c.id)).where(
    _OUTBOX.c.to_addr == bindparam("to"),
    _OUTBOX.c.created_at >= bindparam("since", type_=UtcDateTime()),
    _OUTBOX.c.reply.is_(True),
)


_SUPPRESSION = "mailflow.suppressed"  # address -> suppressed?, for the transaction
_REPLIES = "mailflow.replies"  # address -> replies written in the hour before the batch began
_SENT_SINCE_EACH = (
    select(_OUTBOX.c.to_addr, func.count(_OUTBOX.c.id))
    .where(
        _OUTBOX.c.to_addr.in_(bindparam("to", expanding=True)),
        _OUTBOX.c.created_at >= bindparam("since", type_=UtcDateTime()),
        _OUTBOX.c.reply.is_(True),
    )
    .group_by(_OUTBOX.c.to_addr)
)


def queued_since(session: Session, to: str, kind: str, since: datetime) -> bool:
    """Whether a mail of ``kind`` to ``to`` was queued since ``since``.

    The transaction's own rows that wait to be written (:mod:`mailflow.store.writes`) count too.
    """
    writes = pending(session)
    if writes is not None and any(
        row["to_addr"] == to and row["kind"] == kind for row in writes.waiting(_INSERT_OUTBOX)
    ):
        return True
    found = session.scalar(
        select(_OUTBOX.c.id)
        .where(_OUTBOX.c.to_addr == to, _OUTBOX.c.kind == kind, _OUTBOX.c.created_at >= since)
        .limit(1)
    )
    return found is not None


def spend_waiting_tokens(
    session: Session, now: datetime, *, request_id: int | None = None, group_id: int | None = None
) -> None:
    """Spend the request's (or group's) reply tokens this transaction minted and has not written yet.

    A decision spends the written ones; these too, so a token is single-use however messages were batched.
    """
    writes = pending(session)
    for row in writes.waiting(_INSERT_TOKEN) if writes is not None else ():
        mine = row["request_id"] == request_id if request_id is not None else row["group_id"] == group_id
        if mine and row["used_at"] is None:
            row["used_at"] = now


def prefetch_recipients(session: Session, now: datetime, addresses: Iterable[str]) -> None:
    """Read many recipients' suppression and recent replies in a few statements (a batch's senders).

    The reply counts are those of the hour before ``now``, the batch's start: a batch takes well under a
    second, so a reply that ages out of the window during it counts a moment longer.
    """
    wanted = sorted({a.lower() for a in addresses if "@" in a})
    counts: dict[str, int] = session.info.setdefault(_REPLIES, {})
    since = now - _RATE_WINDOW
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        counts.update(dict.fromkeys(chunk, 0))
        counts.update(
            (to, n) for to, n in session.connection().execute(_SENT_SINCE_EACH, {"to": chunk, "since": since})
        )
    _read_suppression(session, wanted)


def _read_suppression(session: Session, addresses: Iterable[str]) -> None:
    known: dict[str, bool] = session.info.setdefault(_SUPPRESSION, {})
    wanted = sorted({a.lower() for a in addresses} - known.keys())
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        found = set(session.scalars(select(Suppression.email).where(Suppression.email.in_(chunk))))
        known.update((address, address in found) for address in chunk)


class Mailer:
    """Queues mails for one unit of work: tokens minted, rate limits applied, threads kept."""

    def __init__(
        self,
        session: Session,
        runtime: Runtime,
        now: datetime,
        *,
        parsed: ParsedMail | None = None,
        inbound: Inbound | None = None,
    ) -> None:
        """Bind the mailer to a session, a time and, when answering one, the message being processed.

        Its token and outbox rows are written at the end of the transaction when the transaction keeps its
        writes (:func:`~mailflow.store.writes.at_end`), at once otherwise.
        """
        self._session = session
        self.runtime = runtime
        self._now = now
        self._parsed = parsed
        self._inbound = inbound
        self._groups: list[dict[str, Any]] | None = None
        # Shared by the messages of one transaction: a batch writes to the same approvers again and again.
        self._suppression: dict[str, bool] = session.info.setdefault(_SUPPRESSION, {})

    def groups_context(self) -> list[dict[str, Any]]:
        """The open groups, for help and refusal mails."""
        if self._groups is None:
            rows = self._session.scalars(
                select(Group).where(Group.status != "closed").order_by(Group.associated, Group.name)
            ).all()
            self._groups = [
                {"slug": g.slug, "name": g.name, "status": g.status, "associated": g.associated} for g in rows
            ]
        return self._groups

    def bodies(self, mail: Mail) -> tuple[str, str, str]:
        """The subject, text and HTML of ``mail`` (without a token), to share among mails with its facts."""
        return render_bodies(self.runtime.templates, mail, identity=self.runtime.identity)

    def _suppressed(self, to: str) -> bool:
        if to not in self._suppression:
            found = self._session.connection().execute(_SUPPRESSED, {"email": to}).first()
            self._suppression[to] = found is not None
        return self._suppression[to]

    def _rate_limited(self, to: str) -> bool:
        limit = self.runtime.settings.limits.replies_per_sender_per_hour
        known: dict[str, int] = self._session.info.get(_REPLIES, {})
        if to in known:
            sent = known[to]
        else:
            since = self._now - _RATE_WINDOW
            sent = self._session.connection().execute(_SENT_SINCE, {"to": to, "since": since}).scalar() or 0
        writes = pending(self._session)
        if writes is not None:  # replies queued earlier in this transaction, not written yet
            sent += sum(1 for row in writes.waiting(_INSERT_OUTBOX) if row["to_addr"] == to and row["reply"])
        return sent >= limit

    def check_suppressed(self, addresses: Iterable[str]) -> None:
        """Look up many recipients' suppression in one query (before queueing mail to all of them)."""
        _read_suppression(self._session, addresses)

    def queue(
        self,
        mail: Mail,
        request: Request | None = None,
        *,
        group_id: int | None = None,
        bodies: tuple[str, str, str] | None = None,
    ) -> str | None:
        """Render and queue ``mail``; return its Message-ID, or None when suppressed or rate limited.

        A token the mail asks for is bound to ``request``, or, for a group's own question (EXTEND or CLOSE),
        to ``group_id``. ``bodies`` are the mail's subject, text and HTML when already rendered
        (:meth:`bodies`), for many mails that say the same thing to different people.
        """
        session, runtime, now = self._session, self.runtime, self._now
        to = mail.to.lower()
        if self._suppressed(to):
            record_event(session, "mail_suppressed", now, request=request, actor=to, detail=mail.template)
            return None
        if mail.answers_sender and self._rate_limited(to):
            record_event(session, "reply_rate_limited", now, request=request, actor=to, detail=mail.template)
            return None
        token: str | None = None
        if mail.token is not None and (request is not None or group_id is not None):
            token = format_token(runtime.entropy(TOKEN_BYTES))
            write(
                session,
                _INSERT_TOKEN,
                {
                    "token_hash": hash_token(token),
                    "request_id": request.id if request is not None else None,
                    "group_id": group_id,
                    "purpose": mail.token.purpose,
                    "bound_to": mail.token.bound_to.lower(),
                    "created_at": now,
                    "expires_at": now + timedelta(days=runtime.settings.secretariat.token_days),
                    "used_at": None,
                },
            )
        in_reply_to: str | None = None
        references: tuple[str, ...] = ()
        parsed = self._parsed
        if mail.answers_sender and parsed is not None and parsed.message_id:
            in_reply_to, references = parsed.message_id, parsed.references
        elif request is not None and request.message_id and to == request.contact.email:
            in_reply_to, references = request.message_id, (request.message_id,)
        extra: dict[str, Any] = {}
        if mail.template in {"help", "refusal"}:
            extra["groups"] = self.groups_context()
        job = RenderJob(
            mail,
            runtime.identity,
            runtime.new_message_id(mail.id_prefix),
            now,
            token,
            in_reply_to,
            references,
            extra,
            bodies,
        )
        row: dict[str, Any] = {
            "kind": mail.template,
            "to_addr": to,
            "message_id": job.message_id,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "request_id": request.id if request else None,
            "reply": mail.answers_sender,
            "created_at": now,
            "sent_at": None,
        }
        helping = renderings(session)
        if helping is None:
            rendered = job.render(runtime.templates)
            row.update(sender=rendered.sender, subject=rendered.subject, raw=rendered.raw)
        else:  # the helper process renders it; the row is completed before it is written
            helping.add(job, row)
        write(session, _INSERT_OUTBOX, row)
        return job.message_id


def slug_for(session: Session, topic: str) -> str:
    """A new, unused group slug made from a topic."""
    words = re.sub(r"[^a-z0-9]+", "-", normalise(topic)).strip("-").split("-")
    base = "-".join(words[:4])[:40].strip("-") or "group"
    slug, number = base, 2
    while session.scalar(select(Group.id).where(Group.slug == slug)) is not None:
        slug, number = f"{base}-{number}", number + 1
    return slug


def apply_plan(
    session: Session,
    mailer: Mailer,
    plan: Plan,
    now: datetime,
    *,
    request: Request | None,
    contact: Contact,
    group: Group | None,
    actor: str,
    inbound: Inbound | None,
) -> Group | None:
    """Carry out ``plan``: request state, memberships, group changes, the event and the mails.

    Returns:
        The group the plan concerns (the new one when the plan created a group).
    """
    from_state = request.state if request else ""
    if request is not None and plan.state is not None:
        _move_request(request, plan, now, actor)
    if plan.create_group and request is not None:
        group = _create_group(session, request, now)
    if group is not None:
        _change_membership(session, plan, group, contact, now)
        if plan.add_member or plan.end_membership:
            # Loaded when a membership changes: a process that only takes requests never needs meetings.
            from mailflow.app.meetings import Meetings  # noqa: PLC0415
        if plan.add_member:
            Meetings(session, mailer.runtime, now, mailer).member_joined(group, contact)
        if plan.end_membership:
            Meetings(session, mailer.runtime, now, mailer).member_left(group, contact)
    record_event(
        session,
        plan.event,
        now,
        request=request,
        group_id=group.id if group else None,
        from_state=from_state,
        to_state=plan.state.value if plan.state else from_state,
        actor=actor,
        inbound=inbound,
        detail=plan.reason,
    )
    for mail in plan.mails:
        mailer.queue(mail, request)
    return group


def _move_request(request: Request, plan: Plan, now: datetime, actor: str) -> None:
    if plan.state is None:  # pragma: no cover - checked by the caller
        return
    request.state, request.updated_at = plan.state.value, now
    if plan.reason:
        request.reason = plan.reason
    if plan.state not in OPEN_STATES:
        request.decided_at, request.decided_by = now, actor


def _create_group(session: Session, request: Request, now: datetime) -> Group:
    group = Group(
        slug=slug_for(session, request.topic),
        name=request.topic[:300],
        aliases=[],
        status="forming",
        associated=False,
        description="",
        aim=request.aim,
        declared=False,
        created_at=now,
    )
    session.add(group)
    session.flush()
    forget_groups(session)
    request.group_id = group.id
    return group


def _change_membership(session: Session, plan: Plan, group: Group, contact: Contact, now: datetime) -> None:
    if plan.add_member:
        _add_member(session, group, contact, plan.add_member, now)
    if plan.end_membership:
        membership = session.scalar(
            select(Membership).where(
                Membership.group_id == group.id,
                Membership.contact_id == contact.id,
                Membership.status == "active",
            )
        )
        if membership is not None:
            membership.status, membership.left_at = "left", now
        end_terms(session, group.id, now, "left", contact.id)
        if group.facilitator_id == contact.id:
            group.facilitator_id = None
    if plan.activate_group and group.status == "forming":
        group.status, group.activated_at = "active", now
        record_event(
            session, "group_activated", now, group_id=group.id, from_state="forming", to_state="active"
        )


def _add_member(session: Session, group: Group, contact: Contact, role: str, now: datetime) -> None:
    membership = session.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.contact_id == contact.id)
    )
    if membership is None:
        membership = Membership(
            group_id=group.id,
            contact_id=contact.id,
            organisation_id=contact.organisation_id,
            role=role,
            status="active",
            joined_at=now,
        )
        session.add(membership)
    else:
        membership.status, membership.role, membership.joined_at, membership.left_at = (
            "active",
            role,
            now,
            None,
        )
    if role == "facilitator":
        group.facilitator_id = contact.id
        start_term(session, group.id, contact, now)
    session.flush()
