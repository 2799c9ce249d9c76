"""Queries the use cases share: rows in, core values out.

Functions take an open :class:`~sqlalchemy.orm.Session`; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, case, func, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from mailflow.core.lifecycle import OPEN_STATES, RequestKind, RequestState
from mailflow.core.model import GroupRef
from mailflow.core.plans import GroupFacts, Person
from mailflow.core.rules import NetworkStatus
from mailflow.store.schema import (
    Contact,
    FacilitatorTerm,
    Group,
    ImapCursor,
    Membership,
    Organisation,
    OrgDomain,
    QueueState,
    Request,
)

_ORG = Organisation.__table__
_DOMAIN = OrgDomain.__table__
_CONTACT = Contact.__table__
_MEMBERSHIP = Membership.__table__
_REQUEST = Request.__table__


_INSERT_CONTACT = insert(Contact).returning(Contact.id)
_INSERT_REQUEST = insert(Request).returning(Request.id)
_GROUP_BY_SLUG = select(Group).where(Group.slug == bindparam("slug"))
_Row = TypeVar("_Row", Contact, Request)


def insert_now(session: Session, row: _Row) -> _Row:
    """Insert a new ``row`` at once with one Core statement and attach it to the session as stored.

    The ORM's add-and-flush of a single object costs about seven times the statement itself, and each
    message inserts its sender and its request. Columns left unset get their declared default (or NULL),
    as a flush would give them.
    """
    values = _values(row)
    if isinstance(row, Request):
        row.id = session.connection().execute(_INSERT_REQUEST, values).scalar_one()
        session.info.get(_FRESH, set()).discard(row.contact_id)
    else:
        row.id = session.connection().execute(_INSERT_CONTACT, values).scalar_one()
        session.info.setdefault(_FRESH, set()).add(row.id)
    _attach(session, row)
    return row


def _values(row: _Row) -> dict[str, object]:
    """The row's column values; columns left unset get their declared default (or NULL), on the row too."""
    table = _REQUEST if isinstance(row, Request) else _CONTACT
    given = inspect(row).dict
    values: dict[str, object] = {}
    for column in table.columns:
        if column.key == "id":
            continue
        if column.key not in given:
            default = column.default
            setattr(row, column.key, default.arg if default is not None and default.is_scalar else None)
        values[column.key] = getattr(row, column.key)
    return values


def _attach(session: Session, row: _Row) -> None:
    """Make the just-inserted ``row`` the session's persistent object for it."""
    make_transient_to_detached(row)
    session.add(row)


_FRESH = "mailflow.fresh_contacts"
"""Ids of the contacts this transaction created and inserted no request for yet: they have no history."""
_INSERT_CONTACTS = insert(Contact).returning(Contact.id, sort_by_parameter_order=True)


def add_contacts(session: Session, people: dict[str, str], now: datetime) -> None:
    """Create, in one statement, the contacts of the ``people`` (address -> name) that have none yet.

    Call it after :func:`prefetch_senders` for the senders a batch will answer: :func:`contact_for` then
    finds them all, as it would had it created each.
    """
    known: dict[str, Contact | None] = session.info.setdefault(_CONTACTS, {})
    new = [
        Contact(
            email=email,
            name=name[:300],
            organisation_id=org.id if (org := organisation_for_address(session, email)) else None,
            created_at=now,
        )
        for email, name in ((e.lower(), n) for e, n in people.items())
        if email in known and known[email] is None
    ]
    if not new:
        return
    ids = session.connection().execute(_INSERT_CONTACTS, [_values(c) for c in new]).scalars().all()
    fresh: set[int] = session.info.setdefault(_FRESH, set())
    for contact, contact_id in zip(new, ids, strict=True):
        contact.id = contact_id
        _attach(session, contact)
        known[contact.email] = contact
        fresh.add(contact_id)


# Hot-path statements are built once: executing a prepared Core statement costs about a sixth of building
# an ORM query each time, and every inbound message runs a dozen of them.
_ORG_BY_DOMAINS = (
    select(_DOMAIN.c.domain, _ORG.c.id, _ORG.c.name, _ORG.c.status)
    .join(_ORG, _DOMAIN.c.organisation_id == _ORG.c.id)
    .where(_DOMAIN.c.domain.in_(bindparam("domains", expanding=True)))
)
_CONTACT_BY_EMAIL = select(_CONTACT.c.id, _CONTACT.c.name, _CONTACT.c.organisation_id).where(
    _CONTACT.c.email == bindparam("email")
)
_ORG_BY_ID = select(_ORG.c.name, _ORG.c.status).where(_ORG.c.id == bindparam("id"))


@dataclass(frozen=True, slots=True)
class OrgRef:
    """An organisation as the hot path needs it."""

    id: int
    name: str
    status: str


# What one transaction has read of the registry and of its senders (see prefetch_senders). The registry does
# not change while messages are processed; contacts the transaction creates are added as it creates them.
_DOMAINS = "mailflow.domains"  # domain -> OrgRef, or None for a domain no organisation registered
_ORGS = "mailflow.organisations"  # organisation id -> OrgRef
_CONTACTS = "mailflow.contacts"  # address -> Contact, or None for an address with no contact yet
_CONTACTS_OF = (
    select(Contact).where(Contact.email.in_(bindparam("emails", expanding=True))).order_by(Contact.id)
)
_LOOKUP_CHUNK = 500


def _candidates(email: str) -> list[str]:
    """The address's domain and its parents, most specific first (``a.b.example``, ``b.example``)."""
    labels = email.rpartition("@")[2].lower().split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _read_domains(session: Session, domains: list[str]) -> dict[str, OrgRef | None]:
    """The organisation of each domain, None where none registered it; kept for the transaction."""
    known: dict[str, OrgRef | None] = session.info.setdefault(_DOMAINS, {})
    orgs: dict[int, OrgRef] = session.info.setdefault(_ORGS, {})
    wanted = sorted(set(domains) - known.keys())
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        known.update(dict.fromkeys(chunk))
        for domain, org_id, name, status in session.connection().execute(_ORG_BY_DOMAINS, {"domains": chunk}):
            known[domain] = orgs[org_id] = OrgRef(org_id, name, status)
    return known


def organisation_for_address(session: Session, email: str) -> OrgRef | None:
    """The organisation whose registered domain matches the address's domain or a parent of it."""
    candidates = _candidates(email)
    by_domain = _read_domains(session, candidates) if candidates else {}
    for candidate in candidates:  # the most specific domain wins
        if found := by_domain[candidate]:
            return found
    return None


def prefetch_senders(session: Session, emails: Iterable[str]) -> None:
    """Read many senders' contacts, and their domains' organisations, a few statements for all of them.

    :func:`contact_for`, :func:`organisation_for_address` and :func:`person_for` then answer from what was
    read. The contacts are locked as :func:`contact_for` locks one, in the order of their ids so that two
    workers locking overlapping senders wait for each other instead of deadlocking.
    """
    known: dict[str, Contact | None] = session.info.setdefault(_CONTACTS, {})
    wanted = sorted({email.lower() for email in emails} - known.keys())
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        known.update(dict.fromkeys(chunk))
        statement = _CONTACTS_OF.with_for_update()
        known.update((c.email, c) for c in session.scalars(statement, {"emails": chunk}))
    _read_domains(session, [domain for email in wanted for domain in _candidates(email)])


def contact_for(session: Session, email: str, name: str, now: datetime) -> Contact:
    """The contact with this address, created (and matched to an organisation by domain) when new."""
    email = email.lower()
    known: dict[str, Contact | None] = session.info.setdefault(_CONTACTS, {})
    if email in known:
        contact = known[email]
    else:
        row = session.connection().execute(_CONTACT_BY_EMAIL, {"email": email}).first()
        # Locking the sender's row makes two workers (PostgreSQL) handle one sender's mails one at a time.
        contact = None if row is None else session.get_one(Contact, row[0], with_for_update=True)
    if contact is None:
        organisation = organisation_for_address(session, email)
        contact = known[email] = insert_now(
            session,
            Contact(
                email=email,
                name=name[:300],
                organisation_id=organisation.id if organisation else None,
                created_at=now,
            ),
        )
        return contact
    known[email] = contact
    if contact.organisation_id is None:
        adopt_organisation(session, contact)
    if name and not contact.name:
        contact.name = name[:300]
    return contact


def adopt_organisation(session: Session, contact: Contact) -> bool:
    """Match a contact without organisation to one by its address's domain, memberships included.

    A contact created before the registry knew its domain (a facilitator declared in config, say) gets its
    organisation once the registry does, and so do its memberships, which count toward a group's participants.
    """
    organisation = organisation_for_address(session, contact.email)
    if organisation is None:
        return False
    contact.organisation_id = organisation.id
    session.execute(
        update(Membership)
        .where(Membership.contact_id == contact.id, Membership.organisation_id.is_(None))
        .values(organisation_id=organisation.id)
    )
    session.execute(
        update(FacilitatorTerm)
        .where(FacilitatorTerm.contact_id == contact.id, FacilitatorTerm.organisation_id.is_(None))
        .values(organisation_id=organisation.id)
    )
    return True


def adopt_organisations(session: Session) -> int:
    """Match every contact without organisation (after a registry import); return how many were matched."""
    return sum(
        adopt_organisation(session, contact)
        for contact in session.scalars(select(Contact).where(Contact.organisation_id.is_(None))).all()
    )


def person_for(session: Session, contact: Contact) -> Person:
    """The core's view of a contact and its organisation."""
    org: OrgRef | None = None
    if contact.organisation_id:
        orgs: dict[int, OrgRef] = session.info.setdefault(_ORGS, {})
        org = orgs.get(contact.organisation_id)
        if org is None:
            row = session.connection().execute(_ORG_BY_ID, {"id": contact.organisation_id}).first()
            if row is not None:
                org = orgs[contact.organisation_id] = OrgRef(contact.organisation_id, row[0], row[1])
    return Person(
        email=contact.email,
        name=contact.name,
        organisation=org.name if org else None,
        status=NetworkStatus(org.status) if org else None,
    )


_PARTICIPANTS = (
    select(func.count(func.distinct(_MEMBERSHIP.c.organisation_id)))
    .join(_ORG, _MEMBERSHIP.c.organisation_id == _ORG.c.id)
    .where(
        _MEMBERSHIP.c.group_id == bindparam("group"),
        _MEMBERSHIP.c.status == "active",
        _ORG.c.status == NetworkStatus.PARTICIPANT.value,
    )
)
_ACTIVE_MEMBERSHIP = select(_MEMBERSHIP.c.id).where(
    _MEMBERSHIP.c.group_id == bindparam("group"),
    _MEMBERSHIP.c.contact_id == bindparam("contact"),
    _MEMBERSHIP.c.status == "active",
)
_ORG_MEMBERSHIP = (
    select(_MEMBERSHIP.c.id)
    .where(
        _MEMBERSHIP.c.group_id == bindparam("group"),
        _MEMBERSHIP.c.organisation_id == bindparam("org"),
        _MEMBERSHIP.c.status == "active",
    )
    .limit(1)
)


_OPEN_GROUPS = select(Group.id, Group.slug, Group.name, Group.aliases, Group.associated).where(
    Group.status != "closed"
)


_GROUP_REFS = "mailflow.group_refs"
_GROUP_IDS = "mailflow.group_ids"  # slug -> id of the open groups
_GROUPS = "mailflow.groups"  # id -> Group the transaction loaded (the session's identity map holds it weakly)


def group_refs(session: Session) -> list[GroupRef]:
    """Every group the classifier may match; read once per transaction (a batch of messages shares it)."""
    cached: list[GroupRef] | None = session.info.get(_GROUP_REFS)
    if cached is None:
        rows = session.connection().execute(_OPEN_GROUPS).all()
        session.info[_GROUP_IDS] = {slug: group_id for group_id, slug, *_ in rows}
        cached = session.info[_GROUP_REFS] = [
            GroupRef(slug=slug, name=name, aliases=tuple(aliases or ()), associated=associated)
            for _id, slug, name, aliases, associated in rows
        ]
    return cached


def forget_groups(session: Session) -> None:
    """Drop the transaction's copy of the groups: call it after creating, renaming or closing one."""
    session.info.pop(_GROUP_REFS, None)
    session.info.pop(_GROUP_IDS, None)


def facilitator_email(session: Session, group: Group) -> str | None:
    """The address of the group's facilitator, if it has one."""
    if group.facilitator_id is None:
        return None
    return session.scalar(select(Contact.email).where(Contact.id == group.facilitator_id))


def group_by_slug(session: Session, slug: str) -> Group | None:
    """The group with this slug (from the session's own objects when the transaction has read it)."""
    known: dict[str, int] = session.info.get(_GROUP_IDS, {})
    if slug not in known:
        return session.scalar(_GROUP_BY_SLUG, {"slug": slug})
    loaded: dict[int, Group] = session.info.setdefault(_GROUPS, {})
    group = loaded.get(known[slug]) or session.get(Group, known[slug])
    if group is not None:
        loaded[group.id] = group
    return group


def participant_count(session: Session, group_id: int) -> int:
    """How many distinct Participant organisations are active members of the group."""
    return session.connection().execute(_PARTICIPANTS, {"group": group_id}).scalar() or 0


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 when any active membership meets ``condition``, else 0."""
    return func.coalesce(func.max(case((condition, 1), else_=0)), 0)


# One statement for everything a request's decision needs to know of the group and the sender's place in it.
_GROUP_FACTS = (
    select(
        func.count(
            func.distinct(
                case((_ORG.c.status == NetworkStatus.PARTICIPANT.value, _MEMBERSHIP.c.organisation_id))
            )
        ),
        _flag(_MEMBERSHIP.c.contact_id == bindparam("contact")),
        _flag(_MEMBERSHIP.c.organisation_id == bindparam("org")),
        select(_CONTACT.c.email).where(_CONTACT.c.id == bindparam("facilitator")).scalar_subquery(),
    )
    .select_from(_MEMBERSHIP.outerjoin(_ORG, _MEMBERSHIP.c.organisation_id == _ORG.c.id))
    .where(_MEMBERSHIP.c.group_id == bindparam("group"), _MEMBERSHIP.c.status == "active")
)


def member_facts(session: Session, group: Group, contact: Contact | None) -> tuple[GroupFacts, bool, bool]:
    """The core's view of a group, and whether ``contact``, or any contact of its organisation, is a member.

    One statement reads all of it: the participant organisations, the two memberships and the facilitator.
    """
    params = {
        "group": group.id,
        "contact": contact.id if contact else None,
        "org": contact.organisation_id if contact else None,
        "facilitator": group.facilitator_id,
    }
    participants, own, organisation, facilitator = session.connection().execute(_GROUP_FACTS, params).one()
    facts = GroupFacts(
        slug=group.slug,
        name=group.name,
        status=group.status,
        associated=group.associated,
        facilitator_email=facilitator,
        participant_organisations=participants or 0,
    )
    return facts, bool(own), bool(organisation)


def group_facts(session: Session, group: Group) -> GroupFacts:
    """The core's view of a group."""
    return member_facts(session, group, None)[0]


def active_membership(session: Session, group_id: int, contact_id: int) -> Membership | None:
    """The contact's active membership of the group, if any."""
    found = (
        session.connection().execute(_ACTIVE_MEMBERSHIP, {"group": group_id, "contact": contact_id}).scalar()
    )
    return None if found is None else session.get(Membership, found)


def organisation_is_member(session: Session, group_id: int, organisation_id: int | None) -> bool:
    """Whether any contact of the organisation is an active member of the group."""
    if organisation_id is None:
        return False
    params = {"group": group_id, "org": organisation_id}
    return session.connection().execute(_ORG_MEMBERSHIP, params).first() is not None


_ANSWERED_STATES = frozenset({RequestState.DECLINED_INELIGIBLE, RequestState.FORWARDED})


def _same_requests(*, by_topic: bool) -> Select[int, str, datetime]:
    """One contact's requests of one kind for the same group (or topic), open or answered, newest first."""
    same = (
        func.lower(_REQUEST.c.topic) == bindparam("topic")
        if by_topic
        else _REQUEST.c.group_id == bindparam("group")
    )
    return (
        select(_REQUEST.c.id, _REQUEST.c.state, _REQUEST.c.created_at)
        .where(
            _REQUEST.c.contact_id == bindparam("contact"),
            _REQUEST.c.kind == bindparam("kind"),
            _REQUEST.c.state.in_(sorted(state.value for state in OPEN_STATES | _ANSWERED_STATES)),
            same,
        )
        .order_by(_REQUEST.c.id.desc())
    )


# Keyed by "the request names a topic, not a group".
_SAME = {by_topic: _same_requests(by_topic=by_topic) for by_topic in (False, True)}


@dataclass(frozen=True, slots=True)
class History:
    """What became of a contact's earlier requests of the same kind for the same group (or topic)."""

    open_id: int | None
    """The newest request still undecided, if any."""
    answered: tuple[int, RequestState] | None
    """The newest declined as ineligible or forwarded since the time asked about, if any."""


def request_history(
    session: Session,
    contact_id: int,
    kind: RequestKind,
    *,
    since: datetime,
    group_id: int | None = None,
    topic: str = "",
) -> History:
    """The contact's open request, and its request answered since ``since``, for the group (or topic)."""
    if contact_id in session.info.get(_FRESH, ()):
        return History(None, None)  # a contact this transaction created, with no request yet
    by_topic = group_id is None
    params: dict[str, object] = {"contact": contact_id, "kind": kind.value}
    params |= {"topic": topic.lower()} if by_topic else {"group": group_id}
    open_id: int | None = None
    answered: tuple[int, RequestState] | None = None
    for request_id, value, created_at in session.connection().execute(_SAME[by_topic], params):
        state = RequestState(value)
        if open_id is None and state in OPEN_STATES:
            open_id = request_id
        if answered is None and state in _ANSWERED_STATES and created_at >= since:
            answered = (request_id, state)
    return History(open_id, answered)


def start_term(session: Session, group_id: int, contact: Contact, now: datetime) -> None:
    """Record that ``contact`` facilitates the group from ``now`` (nothing when a term is already open)."""
    open_term = session.scalar(
        select(FacilitatorTerm.id).where(
            FacilitatorTerm.group_id == group_id,
            FacilitatorTerm.contact_id == contact.id,
            FacilitatorTerm.ended_at.is_(None),
        )
    )
    if open_term is None:
        session.add(
            FacilitatorTerm(
                group_id=group_id,
                contact_id=contact.id,
                organisation_id=contact.organisation_id,
                started_at=now,
                ended_reason="",
            )
        )


def end_terms(
    session: Session, group_id: int, now: datetime, reason: str, contact_id: int | None = None
) -> None:
    """End the group's open facilitator terms (only ``contact_id``'s when given)."""
    query = update(FacilitatorTerm).where(
        FacilitatorTerm.group_id == group_id, FacilitatorTerm.ended_at.is_(None)
    )
    if contact_id is not None:
        query = query.where(FacilitatorTerm.contact_id == contact_id)
    session.execute(query.values(ended_at=now, ended_reason=reason[:40]))


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
