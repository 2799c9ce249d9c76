"""Facilitator updates: ``UPDATE <group>`` (or free text that names the group) posts to the group's activity.

SPEC §2.4: the facilitator updates the network on the group's exchanges and actions. The update is stored
as group activity (the digests carry it) and acknowledged; only the group's facilitator, or an approver, may
post.
"""

from __future__ import annotations

from sqlalchemy import func, select

from mailflow.app.events import record_event
from mailflow.app.work import Work
from mailflow.core.compose import one_line
from mailflow.core.model import Intent
from mailflow.core.plans import Mail
from mailflow.store import repo
from mailflow.store.schema import Contact, Group, GroupUpdate, Membership

_MAX_TEXT = 20000
_TITLE = 200


def _title(subject: str, text: str, group: Group) -> str:
    """The update's title: the subject beyond the command, else the first line of the text."""
    rest = subject.split(None, 2)[2] if len(subject.split(None, 2)) > 2 else ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return one_line(rest or first or f"Update from {group.name}", _TITLE)


def handle_update(work: Work, intent: Intent, contact: Contact) -> None:
    """Store a facilitator's update on a group and acknowledge it; anyone else is told who may post."""
    session = work.session
    group = repo.group_by_slug(session, intent.group_slug) if intent.group_slug else None
    if group is None:
        reason = "Please name the group, e.g. UPDATE circular, with your update in the message."
        work.mailer.queue(Mail("update_refused", contact.email, {"reason": reason}, answers_sender=True))
        return
    text = work.parsed.text.strip()
    if not work.leads(contact, group):
        record_event(
            session, "update_refused", work.now, group_id=group.id, actor=contact.email, inbound=work.inbound
        )
        reason = (
            f"Only the facilitator of {group.name} (or the secretariat) can post its updates. "
            "Please send your news to the facilitator."
        )
        work.mailer.queue(Mail("update_refused", contact.email, {"reason": reason}, answers_sender=True))
        return
    if not text:
        reason = "Your message had no text after the subject: write the update in the message itself."
        work.mailer.queue(Mail("update_refused", contact.email, {"reason": reason}, answers_sender=True))
        return
    update = GroupUpdate(
        group_id=group.id,
        contact_id=contact.id,
        author=contact.email,
        title=_title(work.parsed.subject, text, group),
        text=text[:_MAX_TEXT],
        inbound_id=work.inbound.id,
        created_at=work.now,
    )
    session.add(update)
    session.flush()
    record_event(
        session,
        "group_update",
        work.now,
        group_id=group.id,
        actor=contact.email,
        inbound=work.inbound,
        detail=update.title,
    )
    members = session.scalar(
        select(func.count(Membership.id)).where(
            Membership.group_id == group.id, Membership.status == "active"
        )
    )
    context = {
        "group": {"slug": group.slug, "name": group.name},
        "title": update.title,
        "text": update.text,
        "members": members or 0,
    }
    work.mailer.queue(Mail("update_received", contact.email, context, answers_sender=True))
