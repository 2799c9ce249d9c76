"""The mail around the digests: their list headers, DIGEST weekly|monthly|off, and replies to a digest.

The ``List-Unsubscribe`` mailto of every digest writes to the service with the subject ``DIGEST off``, so the
header and a person's own command take the same path: :func:`handle_digest`. A digest's Message-ID starts
with ``digest.``; a reply to it is told how to reach the group (:func:`handle_digest_reply`) instead of
being read as a request nobody made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mailflow.app.digest_activity import chosen_explicitly
from mailflow.app.digest_periods import FREQUENCIES
from mailflow.app.events import record_event
from mailflow.app.runtime import Runtime
from mailflow.app.work import Work
from mailflow.core.intent import DIGEST_PREFIX, match_groups
from mailflow.core.model import Intent
from mailflow.core.plans import Mail
from mailflow.store import repo
from mailflow.store.schema import Contact, Group, Membership

"""The Message-ID prefix of every digest: ``digest.<random>@<our domain>``."""

CHOICES = (*FREQUENCIES, "off")
"""What ``DIGEST <choice>`` may set."""


def digest_headers(runtime: Runtime) -> tuple[tuple[str, str], ...]:
    """``List-Unsubscribe`` (a mailto that sends DIGEST off) and ``List-Id`` for a digest (RFC 2369, 2919)."""
    network = runtime.settings.network
    return (
        ("List-Unsubscribe", f"<mailto:{network.address}?subject=DIGEST%20off>"),
        ("List-Id", f"<{DIGEST_PREFIX}.{network.domain}>"),
    )


def schedule_context(runtime: Runtime) -> dict[str, str]:
    """When digests come, for the templates: weekday, hour and zone."""
    digests = runtime.settings.digests
    return {
        "weekday": digests.weekday.capitalize(),
        "hour": f"{digests.hour:02d}:00",
        "timezone": runtime.settings.network.timezone,
        "network": digests.network,
    }


def effective_choice(stored: str, email: str, default: str, explicit: set[str]) -> str:
    """How often a contact gets digests: their own choice, else the configured default.

    ``stored`` is the contact's column (``weekly`` unless changed); ``explicit`` holds the addresses that
    chose with a DIGEST command, so a stored ``weekly`` that nobody chose follows ``[digests] default``.
    """
    if stored != "weekly" or email in explicit or default == "weekly":
        return stored
    return default


def handle_digest(work: Work, intent: Intent, contact: Contact) -> None:
    """DIGEST weekly|monthly|off (and the List-Unsubscribe mailto): set the contact's choice and confirm it.

    An unclear DIGEST changes nothing and gets the same template, explaining the three choices.
    """
    settings = work.runtime.settings
    choice = intent.topic if intent.topic in CHOICES else ""
    default = settings.digests.default
    explicit = set()
    if contact.digest == "weekly" and default != "weekly":
        explicit = chosen_explicitly(work.session, contact.email)
    previous = effective_choice(contact.digest, contact.email, default, explicit)
    if choice:
        contact.digest = choice
        record_event(
            work.session,
            "digest_preference",
            work.now,
            actor=contact.email,
            inbound=work.inbound,
            from_state=previous,
            to_state=choice,
        )
    else:
        record_event(work.session, "digest_unclear", work.now, actor=contact.email, inbound=work.inbound)
    context: dict[str, Any] = {
        "choice": choice,
        "previous": previous,
        "schedule": schedule_context(work.runtime),
    }
    work.mailer.queue(Mail("digest_preference", contact.email, context, answers_sender=True))


def _group_of(work: Work, intent: Intent, contact: Contact) -> Group | None:
    """The group the reply is about: the one it names, else the sender's only group."""
    named = (
        (intent.group_slug,)
        if intent.group_slug
        else match_groups(work.parsed.text, repo.group_refs(work.session))
    )
    if len(named) == 1:
        group = repo.group_by_slug(work.session, named[0])
        if group is not None:
            return group
    groups = work.session.scalars(
        select(Group)
        .join(Membership, Membership.group_id == Group.id)
        .where(Membership.contact_id == contact.id, Membership.status == "active", Group.status != "closed")
        .limit(2)
    ).all()
    return groups[0] if len(groups) == 1 else None


def handle_digest_reply(work: Work, intent: Intent, contact: Contact) -> None:
    """A reply to a digest: a short note on how to reach the group, since nobody reads replies to a digest.

    When the group is clear (named in the reply, or the sender's only group) the note gives its
    facilitator's address (the secretariat's when it has none); otherwise it lists the commands.
    """
    group = _group_of(work, intent, contact)
    facilitator = None
    if group is not None and group.facilitator_id is not None:
        facilitator = work.session.scalar(select(Contact.email).where(Contact.id == group.facilitator_id))
    record_event(
        work.session,
        "digest_reply",
        work.now,
        group_id=group.id if group else None,
        actor=contact.email,
        inbound=work.inbound,
    )
    context = {
        "group": {"slug": group.slug, "name": group.name} if group else None,
        "facilitator": facilitator,
        "is_facilitator": facilitator == contact.email,
        "secretariat_address": work.runtime.secretariat_address,
    }
    work.mailer.queue(Mail("digest_reply", contact.email, context, answers_sender=True))
