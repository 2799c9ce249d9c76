"""One handler per intent: gather the facts, ask the core, carry out its plan."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from mailflow.app.effects import apply_plan
from mailflow.app.events import record_event
from mailflow.app.work import Work
from mailflow.core.intent import match_groups
from mailflow.core.lifecycle import RequestKind, RequestState
from mailflow.core.model import Intent, IntentKind
from mailflow.core.plans import Mail, Plan
from mailflow.core.workflow import (
    JoinFacts,
    LeaveFacts,
    StartFacts,
    decide_join,
    decide_leave,
    decide_start,
)
from mailflow.store import repo
from mailflow.store.schema import (
    Contact,
    Group,
    Membership,
    Request,
)

REPEAT_WINDOW = timedelta(days=30)
"""A request repeated within this time after it was declined or forwarded makes no second lead or forward."""


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
    repo.insert_now(work.session, request)
    request.contact = contact
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
    group = repo.group_by_slug(session, intent.group_slug) if intent.group_slug else None
    if group is None:
        _ask_which_group(work, intent, contact)
        return
    history = repo.request_history(
        session, contact.id, RequestKind.JOIN, since=work.now - REPEAT_WINDOW, group_id=group.id
    )
    request = _new_request(work, RequestKind.JOIN, contact, group_id=group.id)
    group_facts, already_member, organisation_member = repo.member_facts(session, group, contact)
    facts = JoinFacts(
        request_id=request.id,
        person=repo.person_for(session, contact),
        group=group_facts,
        text=work.parsed.text,
        approvers=work.runtime.settings.secretariat.approvers,
        secretariat=work.runtime.secretariat_address,
        already_member=already_member,
        organisation_member=organisation_member,
        open_request_id=history.open_id,
        answered=history.answered,
    )
    plan = decide_join(facts)
    _carry_out(work, plan, request, contact, group)


def _carry_out(work: Work, plan_: Plan, request: Request, contact: Contact, group: Group | None) -> None:
    if plan_.state is None:
        # A refusal creates no request; the event still records what was refused.
        work.session.delete(request)
        work.session.flush()
        work.refuse(contact, plan_, group)
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
    existing_slugs = match_groups(topic, repo.group_refs(session))
    existing = repo.group_by_slug(session, existing_slugs[0]) if len(existing_slugs) == 1 else None
    history = repo.request_history(
        session, contact.id, RequestKind.START, since=work.now - REPEAT_WINDOW, topic=topic
    )
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
        open_request_id=history.open_id,
        answered=history.answered,
    )
    _carry_out(work, decide_start(facts), request, contact, None)


def handle_leave(work: Work, intent: Intent, contact: Contact) -> None:
    """A member leaving a group; when no group is named and they are in exactly one, that one."""
    session = work.session
    group = repo.group_by_slug(session, intent.group_slug) if intent.group_slug else None
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


def handle_ignored(work: Work, intent: Intent, contact: Contact) -> None:
    """Mail that is automated after all (the classifier saw it): recorded, never answered."""
    work.inbound.status = "ignored"
    record_event(
        work.session, f"ignored_{intent.kind.value}", work.now, actor=contact.email, inbound=work.inbound
    )


Handler = Callable[[Work, Intent, Contact], None]


def later(module: str, name: str) -> Handler:
    """The handler ``name`` of ``module``, imported when first called.

    Meetings, updates and digests (and iCalendar with them) stay out of the start-up of a process that only
    ever sees requests: ``mailflow ingest`` of a mail from an MTA pipe starts once per message.
    """

    def handle(work: Work, intent: Intent, contact: Contact) -> None:
        handler: Handler = getattr(importlib.import_module(module), name)
        handler(work, intent, contact)

    handle.__name__ = handle.__qualname__ = name
    return handle


HANDLERS: dict[IntentKind, Handler] = {
    IntentKind.JOIN: handle_join,
    IntentKind.START: handle_start,
    IntentKind.LEAVE: handle_leave,
    IntentKind.STATUS: handle_status,
    IntentKind.HELP: handle_help,
    IntentKind.AUTOMATED: handle_ignored,
    IntentKind.CALENDAR_REPLY: handle_ignored,
    IntentKind.MEETING: later("mailflow.app.meeting_mail", "handle_meeting"),
    IntentKind.UPDATE: later("mailflow.app.updates", "handle_update"),
    IntentKind.DIGEST: later("mailflow.app.digest_mail", "handle_digest"),
}
"""The handler for each intent of a message that carries no reply token; anything else gets help."""
