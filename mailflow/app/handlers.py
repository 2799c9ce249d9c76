"""One handler per intent: gather the facts, ask the core, carry out its plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.effects import Inbound, Mailer, apply_plan, record_event
from mailflow.app.runtime import Runtime
from mailflow.core.authres import passes_dmarc
from mailflow.core.intent import match_groups
from mailflow.core.lifecycle import NotAllowedError, RequestKind, RequestState
from mailflow.core.model import Decision, GroupRef, Intent, IntentKind, ParsedMail
from mailflow.core.plans import Mail, Plan, refusal
from mailflow.core.tokens import StoredToken, TokenVerdict, find_tokens, hash_token, judge
from mailflow.core.workflow import (
    JoinFacts,
    LeaveFacts,
    PendingRequest,
    StartFacts,
    decide_answer,
    decide_join,
    decide_leave,
    decide_start,
    decide_verdict,
)
from mailflow.store import repo
from mailflow.store.schema import (
    Contact,
    Group,
    Membership,
    OutboxMessage,
    ReplyToken,
    Request,
)


@dataclass
class Work:
    """One message being processed: where it came from and what was read from it."""

    session: Session
    runtime: Runtime
    now: datetime
    inbound: Inbound
    parsed: ParsedMail
    mailer: Mailer


_OPEN_GROUPS = select(Group.slug, Group.name, Group.aliases, Group.associated).where(Group.status != "closed")


def group_refs(session: Session) -> list[GroupRef]:
    """Every group the classifier may match."""
    return [
        GroupRef(slug=slug, name=name, aliases=tuple(aliases or ()), associated=associated)
        for slug, name, aliases, associated in session.connection().execute(_OPEN_GROUPS)
    ]


def _new_request(work: Work, kind: RequestKind, contact: Contact, **fields: object) -> Request:
    request = Request(
        kind=kind.value,
        state=RequestState.RECEIVED.value,
        contact_id=contact.id,
        organisation_id=contact.organisation_id,
        text=work.parsed.text[:20000],
        inbound_id=work.inbound.id,
        message_id=work.parsed.message_id,
        created_at=work.now,
        updated_at=work.now,
        **fields,
    )
    request.contact = contact
    work.session.add(request)
    work.session.flush()
    return request


def _ask_which_group(work: Work, intent: Intent, contact: Contact) -> None:
    if intent.candidates:
        reason = f'"{intent.group_text}" could mean more than one group. Please name one of them.'
    elif intent.group_text:
        reason = f'We know no group called "{intent.group_text}". Please name one of the groups below.'
    else:
        reason = "Please tell us which group you mean."
    mail = Mail("help", contact.email, {"reason": reason, "not_understood": False}, answers_sender=True)
    record_event(
        work.session,
        "group_unclear",
        work.now,
        actor=contact.email,
        inbound=work.inbound,
        detail=reason,
    )
    work.mailer.queue(mail)


def handle_join(work: Work, intent: Intent, contact: Contact) -> None:
    """A request to join a group."""
    session = work.session
    group = (
        session.scalar(select(Group).where(Group.slug == intent.group_slug)) if intent.group_slug else None
    )
    if group is None:
        _ask_which_group(work, intent, contact)
        return
    existing = repo.open_request(session, contact.id, RequestKind.JOIN, group.id)
    request = _new_request(work, RequestKind.JOIN, contact, group_id=group.id)
    facts = JoinFacts(
        request_id=request.id,
        person=repo.person_for(session, contact),
        group=repo.group_facts(session, group),
        text=work.parsed.text,
        approvers=work.runtime.settings.secretariat.approvers,
        secretariat=work.runtime.secretariat_address,
        already_member=repo.is_active_member(session, group.id, contact.id),
        organisation_member=repo.organisation_is_member(session, group.id, contact.organisation_id),
        open_request_id=existing.id if existing else None,
    )
    plan = decide_join(facts)
    _carry_out(work, plan, request, contact, group)


def _carry_out(work: Work, plan_: Plan, request: Request, contact: Contact, group: Group | None) -> None:
    if plan_.state is None:
        # A refusal creates no request; the event still records what was refused.
        work.session.delete(request)
        work.session.flush()
        apply_plan(
            work.session,
            work.mailer,
            plan_,
            work.now,
            request=None,
            contact=contact,
            group=group,
            actor=contact.email,
            inbound=work.inbound,
        )
        return
    apply_plan(
        work.session,
        work.mailer,
        plan_,
        work.now,
        request=request,
        contact=contact,
        group=group,
        actor=contact.email if plan_.event != "approved" else "policy:organisation-member",
        inbound=work.inbound,
    )


def handle_start(work: Work, intent: Intent, contact: Contact) -> None:
    """A proposal to start a new group."""
    session = work.session
    topic = intent.topic.strip()
    if not topic:
        mail = Mail(
            "help",
            contact.email,
            {
                "reason": "To propose a group, send START followed by its topic,"
                " and say its aim in the message.",
                "not_understood": False,
            },
            answers_sender=True,
        )
        work.mailer.queue(mail)
        record_event(session, "start_without_topic", work.now, actor=contact.email, inbound=work.inbound)
        return
    existing_slugs = match_groups(topic, group_refs(session))
    existing = (
        session.scalar(select(Group).where(Group.slug == existing_slugs[0]))
        if len(existing_slugs) == 1
        else None
    )
    duplicate = repo.open_request(session, contact.id, RequestKind.START, None, topic)
    if duplicate is not None:
        plan = refusal(
            contact.email,
            f"Your proposal #{duplicate.id} for a group on {duplicate.topic}"
            " is already with the secretariat.",
            event="duplicate_request",
        )
        apply_plan(
            session,
            work.mailer,
            plan,
            work.now,
            request=None,
            contact=contact,
            group=None,
            actor=contact.email,
            inbound=work.inbound,
        )
        return
    request = _new_request(work, RequestKind.START, contact, topic=topic[:300], aim=intent.aim[:5000])
    facts = StartFacts(
        request_id=request.id,
        person=repo.person_for(session, contact),
        topic=topic,
        aim=intent.aim,
        text=work.parsed.text,
        approvers=work.runtime.settings.secretariat.approvers,
        secretariat=work.runtime.secretariat_address,
        existing_group=repo.group_facts(session, existing) if existing else None,
    )
    _carry_out(work, decide_start(facts), request, contact, None)


def handle_leave(work: Work, intent: Intent, contact: Contact) -> None:
    """A member leaving a group; when no group is named and they are in exactly one, that one."""
    session = work.session
    group = (
        session.scalar(select(Group).where(Group.slug == intent.group_slug)) if intent.group_slug else None
    )
    if group is None:
        memberships = session.scalars(
            select(Membership).where(Membership.contact_id == contact.id, Membership.status == "active")
        ).all()
        if len(memberships) == 1 and not intent.group_text:
            group = session.get(Group, memberships[0].group_id)
    if group is None:
        _ask_which_group(work, intent, contact)
        return
    request = _new_request(work, RequestKind.LEAVE, contact, group_id=group.id)
    facts_group = repo.group_facts(session, group)
    membership = repo.active_membership(session, group.id, contact.id)
    facts = LeaveFacts(
        request_id=request.id,
        person=repo.person_for(session, contact),
        group=facts_group,
        is_member=membership is not None,
        is_facilitator=group.facilitator_id == contact.id,
        secretariat=work.runtime.secretariat_address,
    )
    _carry_out(work, decide_leave(facts), request, contact, group)


def handle_help(work: Work, intent: Intent, contact: Contact) -> None:
    """Explain how the address works and list the groups (also when the mail was not understood)."""
    not_understood = intent.kind is not IntentKind.HELP
    record_event(
        work.session,
        "help" if not not_understood else "not_understood",
        work.now,
        actor=contact.email,
        inbound=work.inbound,
    )
    work.mailer.queue(Mail("help", contact.email, {"not_understood": not_understood}, answers_sender=True))


def handle_status(work: Work, intent: Intent, contact: Contact) -> None:
    """Tell the sender where their requests and memberships stand."""
    del intent
    session = work.session
    requests = session.scalars(
        select(Request).where(Request.contact_id == contact.id).order_by(Request.id.desc()).limit(20)
    ).all()
    rows = []
    for request in requests:
        group = session.get(Group, request.group_id) if request.group_id else None
        rows.append(
            {
                "id": request.id,
                "kind": request.kind,
                "subject": group.name if group else request.topic,
                "state_label": request.state.replace("_", " "),
                "updated": request.updated_at.strftime("%d %b %Y"),
            }
        )
    memberships = [
        {"group": group.name, "role": membership.role}
        for membership, group in session.execute(
            select(Membership, Group)
            .join(Group, Membership.group_id == Group.id)
            .where(Membership.contact_id == contact.id, Membership.status == "active")
        ).all()
    ]
    record_event(session, "status", work.now, actor=contact.email, inbound=work.inbound)
    work.mailer.queue(
        Mail(
            "status",
            contact.email,
            {"requests": rows, "memberships": memberships},
            answers_sender=True,
        )
    )


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
    recent = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.to_addr == sender,
            OutboxMessage.kind == "token_refused",
            OutboxMessage.created_at >= work.now - timedelta(days=1),
        )
        .limit(1)
    )
    if recent is None:
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
    request = session.get(Request, chosen.request_id)
    if request is None:  # pragma: no cover - tokens are deleted only with their request
        _refuse_token(work, sender, TokenVerdict.UNKNOWN, None)
        return
    if chosen.purpose == "approve":
        _approver_reply(work, intent, contact, request, chosen)
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


def _approver_reply(
    work: Work, intent: Intent, contact: Contact, request: Request, token: ReplyToken
) -> None:
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
        apply_plan(
            session,
            work.mailer,
            plan,
            work.now,
            request=None,
            contact=contact,
            group=None,
            actor=sender,
            inbound=work.inbound,
        )
    del token


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
        apply_plan(
            session,
            work.mailer,
            plan,
            work.now,
            request=None,
            contact=contact,
            group=None,
            actor=contact.email,
            inbound=work.inbound,
        )
        return
    token.used_at = work.now
    if request.kind == RequestKind.START.value and len(request.aim.split()) < 3:
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


def handle_ignored(work: Work, intent: Intent, contact: Contact) -> None:
    """Mail that is automated after all (the classifier saw it): recorded, never answered."""
    work.inbound.status = "ignored"
    record_event(
        work.session, f"ignored_{intent.kind.value}", work.now, actor=contact.email, inbound=work.inbound
    )


Handler = Callable[[Work, Intent, Contact], None]

HANDLERS: dict[IntentKind, Handler] = {
    IntentKind.JOIN: handle_join,
    IntentKind.START: handle_start,
    IntentKind.LEAVE: handle_leave,
    IntentKind.STATUS: handle_status,
    IntentKind.HELP: handle_help,
    IntentKind.AUTOMATED: handle_ignored,
    IntentKind.CALENDAR_REPLY: handle_ignored,
}
"""The handler for each intent of a message that carries no reply token; anything else gets help."""
