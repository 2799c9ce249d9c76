"""Queries the use cases share: rows in, core values out.

Functions take an open :class:`~sqlalchemy.orm.Session`; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailflow.core.rules import NetworkStatus
from mailflow.core.workflow import OPEN_STATES, GroupFacts, Person, RequestKind
from mailflow.store.schema import (
    Contact,
    Group,
    ImapCursor,
    Membership,
    Organisation,
    OrgDomain,
    QueueState,
    Request,
)


def organisation_for_address(session: Session, email: str) -> Organisation | None:
    """The organisation whose registered domain matches the address's domain or a parent of it."""
    domain = email.rpartition("@")[2].lower()
    labels = domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if not candidates:
        return None
    rows = session.execute(
        select(OrgDomain.domain, Organisation)
        .join(Organisation, OrgDomain.organisation_id == Organisation.id)
        .where(OrgDomain.domain.in_(candidates))
    ).all()
    by_domain = {row[0]: row[1] for row in rows}
    for candidate in candidates:  # the most specific domain wins
        if candidate in by_domain:
            return by_domain[candidate]
    return None


def contact_for(session: Session, email: str, name: str, now: datetime) -> Contact:
    """The contact with this address, created (and matched to an organisation by domain) when new."""
    email = email.lower()
    contact = session.scalar(select(Contact).where(Contact.email == email))
    if contact is None:
        organisation = organisation_for_address(session, email)
        contact = Contact(
            email=email,
            name=name[:300],
            organisation_id=organisation.id if organisation else None,
            created_at=now,
        )
        session.add(contact)
        session.flush()
    elif contact.organisation_id is None:
        organisation = organisation_for_address(session, email)
        if organisation is not None:
            contact.organisation_id = organisation.id
    if name and not contact.name:
        contact.name = name[:300]
    return contact


def person_for(session: Session, contact: Contact) -> Person:
    """The core's view of a contact and its organisation."""
    organisation = session.get(Organisation, contact.organisation_id) if contact.organisation_id else None
    return Person(
        email=contact.email,
        name=contact.name,
        organisation=organisation.name if organisation else None,
        status=NetworkStatus(organisation.status) if organisation else None,
    )


def participant_count(session: Session, group_id: int) -> int:
    """How many distinct Participant organisations are active members of the group."""
    return (
        session.scalar(
            select(func.count(func.distinct(Membership.organisation_id)))
            .join(Organisation, Membership.organisation_id == Organisation.id)
            .where(
                Membership.group_id == group_id,
                Membership.status == "active",
                Organisation.status == NetworkStatus.PARTICIPANT.value,
            )
        )
        or 0
    )


def group_facts(session: Session, group: Group) -> GroupFacts:
    """The core's view of a group."""
    facilitator = session.get(Contact, group.facilitator_id) if group.facilitator_id else None
    return GroupFacts(
        slug=group.slug,
        name=group.name,
        status=group.status,
        associated=group.associated,
        facilitator_email=facilitator.email if facilitator else None,
        participant_organisations=participant_count(session, group.id),
    )


def active_membership(session: Session, group_id: int, contact_id: int) -> Membership | None:
    """The contact's active membership of the group, if any."""
    return session.scalar(
        select(Membership).where(
            Membership.group_id == group_id,
            Membership.contact_id == contact_id,
            Membership.status == "active",
        )
    )


def organisation_is_member(session: Session, group_id: int, organisation_id: int | None) -> bool:
    """Whether any contact of the organisation is an active member of the group."""
    if organisation_id is None:
        return False
    return (
        session.scalar(
            select(Membership.id)
            .where(
                Membership.group_id == group_id,
                Membership.organisation_id == organisation_id,
                Membership.status == "active",
            )
            .limit(1)
        )
        is not None
    )


def open_request(
    session: Session, contact_id: int, kind: RequestKind, group_id: int | None, topic: str = ""
) -> Request | None:
    """An undecided request of the same kind from the same contact for the same group (or topic)."""
    query = select(Request).where(
        Request.contact_id == contact_id,
        Request.kind == kind.value,
        Request.state.in_([state.value for state in OPEN_STATES]),
    )
    if group_id is not None:
        query = query.where(Request.group_id == group_id)
    else:
        query = query.where(func.lower(Request.topic) == topic.lower())
    return session.scalars(query.limit(1)).first()


def load_cursor(session: Session, mailbox_key: str) -> tuple[int, int] | None:
    """The saved (uidvalidity, last_uid) of an IMAP mailbox."""
    row = session.get(ImapCursor, mailbox_key)
    return None if row is None else (row.uidvalidity, row.last_uid)


def save_cursor(session: Session, mailbox_key: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
    """Record how far an IMAP mailbox has been read."""
    row = session.get(ImapCursor, mailbox_key)
    if row is None:
        session.add(
            ImapCursor(mailbox_key=mailbox_key, uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now)
        )
    else:
        row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, now


def get_flag(session: Session, name: str) -> str:
    """A service-wide switch's value ("" when unset)."""
    row = session.get(QueueState, name)
    return "" if row is None else row.value


def set_flag(session: Session, name: str, value: str, now: datetime) -> None:
    """Set a service-wide switch."""
    row = session.get(QueueState, name)
    if row is None:
        session.add(QueueState(name=name, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now
