"""Replies that carry a reply token: an approver's decision, or a requester's answer to a question.

Tokens are judged by the core (:mod:`mailflow.core.tokens`); a forged, replayed, expired or wrong-sender reply
changes nothing, is recorded, and gets at most one polite notice a day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer, apply_plan, queued_since, spend_waiting_tokens
from mailflow.app.events import Inbound, record_event
from mailflow.app.work import Work
from mailflow.core.authres import passes_dmarc
from mailflow.core.lifecycle import NotAllowedError, RequestKind, RequestState
from mailflow.core.model import Decision, Intent
from mailflow.core.plans import Mail, Plan, refusal
from mailflow.core.rules import has_aim
from mailflow.core.tokens import StoredToken, TokenVerdict, find_tokens, hash_token, judge
from mailflow.core.workflow import PendingRequest, decide_answer, decide_verdict
from mailflow.store import repo
from mailflow.store.schema import Contact, Group, ReplyToken, Request

_REFUSAL_REASONS = {
    TokenVerdict.UNKNOWN: "the reply code in it is not one we issued.",
    TokenVerdict.USED: "the request it answers has already been decided, or the reply was already used.",
    TokenVerdict.EXPIRED: "the approval email it answers has expired; ask the secretariat to resend it.",
    TokenVerdict.WRONG_SENDER: "it came from an address the approval email was not sent to.",
}
_VERDICT_RANK = [
    TokenVerdict.WRONG_SENDER,
    TokenVerdict.USED,
    TokenVerdict.EXPIRED,
    TokenVerdict.UNKNOWN,
]


def _refuse_token(work: Work, sender: str, verdict: TokenVerdict, request_id: int | None) -> None:
    session = work.session
    record_event(
        session,
        f"token_{verdict.value}",
        work.now,
        actor=sender,
        inbound=work.inbound,
        detail=f"request {request_id}" if request_id else "",
    )
    # At most one polite notice per sender a day, so a forger or a loop learns nothing more.
    if not queued_since(session, sender, "token_refused", work.now - timedelta(days=1)):
        work.mailer.queue(
            Mail("token_refused", sender, {"reason": _REFUSAL_REASONS[verdict]}, answers_sender=True)
        )


def handle_token_reply(work: Work, intent: Intent, contact: Contact) -> None:
    """A reply carrying reply tokens: an approver's decision, or a requester's answer to a question."""
    session, settings = work.session, work.runtime.settings
    sender = contact.email
    tokens = find_tokens(settings.network.address, work.parsed.recipients, work.parsed.subject)
    best: tuple[TokenVerdict, ReplyToken | None] = (TokenVerdict.UNKNOWN, None)
    chosen: ReplyToken | None = None
    for token in tokens:
        row = session.scalar(select(ReplyToken).where(ReplyToken.token_hash == hash_token(token)))
        stored = (
            StoredToken(row.token_hash, row.purpose, row.bound_to, row.expires_at, row.used_at)
            if row
            else None
        )
        verdict = judge(token, stored, sender, work.now)
        if verdict is TokenVerdict.VALID:
            chosen = row
            break
        if _VERDICT_RANK.index(verdict) < _VERDICT_RANK.index(best[0]):
            best = (verdict, row)
    if chosen is None:
        _refuse_token(work, sender, best[0], best[1].request_id if best[1] else None)
        return
    if chosen.request_id is None:
        from mailflow.app.lifecycle import answer_group_end  # noqa: PLC0415 - rare; it loads meetings

        answer_group_end(work, contact, chosen)
        return
    # Lock the request row: two approvers answering at once on PostgreSQL must not both decide.
    request = session.get(Request, chosen.request_id, with_for_update=True)
    if request is None:  # pragma: no cover - tokens are deleted only with their request
        _refuse_token(work, sender, TokenVerdict.UNKNOWN, None)
        return
    if chosen.purpose == "approve":
        _approver_reply(work, intent, contact, request)
    else:
        _requester_answer(work, contact, request, chosen)


def _pending(session: Session, request: Request) -> PendingRequest:
    contact = session.get(Contact, request.contact_id)
    assert contact is not None  # noqa: S101 - foreign key
    group = session.get(Group, request.group_id) if request.group_id else None
    return PendingRequest(
        id=request.id,
        kind=RequestKind(request.kind),
        state=RequestState(request.state),
        person=repo.person_for(session, contact),
        group=repo.group_facts(session, group) if group else None,
        topic=request.topic,
        aim=request.aim,
        text=request.text,
        organisation_member=(
            repo.organisation_is_member(session, group.id, contact.organisation_id) if group else False
        ),
    )


def _consume(session: Session, request: Request, purpose: str, now: datetime) -> None:
    for row in session.scalars(
        select(ReplyToken).where(
            ReplyToken.request_id == request.id,
            ReplyToken.purpose == purpose,
            ReplyToken.used_at.is_(None),
        )
    ):
        row.used_at = now
    spend_waiting_tokens(session, now, request_id=request.id)


def _approver_reply(work: Work, intent: Intent, contact: Contact, request: Request) -> None:
    session, settings = work.session, work.runtime.settings
    sender = contact.email
    if sender not in settings.secretariat.approvers:
        _refuse_token(work, sender, TokenVerdict.WRONG_SENDER, request.id)
        return
    if settings.secretariat.require_authenticated_approvals and not passes_dmarc(
        work.parsed.headers.get("authentication-results", ()),
        settings.secretariat.authserv_id or "",
        sender,
    ):
        record_event(
            session,
            "approval_unauthenticated",
            work.now,
            request=request,
            actor=sender,
            inbound=work.inbound,
        )
        work.mailer.queue(
            Mail(
                "token_refused",
                sender,
                {"reason": "it did not pass DMARC/DKIM authentication at our mail server."},
                answers_sender=True,
            ),
            request,
        )
        return
    if intent.decision is None:
        record_event(
            session,
            "approval_unclear",
            work.now,
            request=request,
            actor=sender,
            inbound=work.inbound,
        )
        work.mailer.queue(
            Mail("approval_unclear", sender, {"request_id": request.id}, answers_sender=True),
            request,
        )
        return
    try:
        apply_verdict(
            work.session,
            work.mailer,
            request,
            intent.decision,
            actor=sender,
            now=work.now,
            inbound=work.inbound,
        )
    except NotAllowedError as exc:
        decided = f" by {request.decided_by}" if request.decided_by else ""
        plan = refusal(sender, f"{exc} (request #{request.id}{decided})", event="decision_refused")
        work.refuse(contact, plan)


def apply_verdict(
    session: Session,
    mailer: Mailer,
    request: Request,
    decision: Decision,
    *,
    actor: str,
    now: datetime,
    inbound: Inbound | None = None,
) -> Plan:
    """Carry out APPROVE, REJECT or INFO on ``request``, by mail or from the command line.

    Raises:
        NotAllowedError: the request's state does not allow the decision.
    """
    plan = decide_verdict(_pending(session, request), decision, actor)
    _consume(session, request, "approve", now)
    requester = session.get(Contact, request.contact_id)
    assert requester is not None  # noqa: S101 - foreign key
    group = session.get(Group, request.group_id) if request.group_id else None
    apply_plan(
        session,
        mailer,
        plan,
        now,
        request=request,
        contact=requester,
        group=group,
        actor=actor,
        inbound=inbound,
    )
    return plan


def _requester_answer(work: Work, contact: Contact, request: Request, token: ReplyToken) -> None:
    session = work.session
    pending = _pending(session, request)
    answer = work.parsed.text.strip()
    try:
        plan = decide_answer(pending, answer, work.runtime.settings.secretariat.approvers)
    except NotAllowedError as exc:
        plan = refusal(contact.email, str(exc), event="answer_refused")
        work.refuse(contact, plan)
        return
    token.used_at = work.now
    if request.kind == RequestKind.START.value and not has_aim(request.aim):
        request.aim = answer[:5000]
    request.text = f"{request.text}\n\n[answer] {answer}"[:20000]
    apply_plan(
        session,
        work.mailer,
        plan,
        work.now,
        request=request,
        contact=contact,
        group=None,
        actor=contact.email,
        inbound=work.inbound,
    )
