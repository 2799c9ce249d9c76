"""SQLAlchemy 2.x typed models: the whole persistent state of mailflow.

Times are stored as naive UTC and returned as aware UTC (:class:`UtcDateTime`), so SQLite and PostgreSQL
behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC for storage."""
        del dialect
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark a stored naive UTC value as UTC."""
        del dialect
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base for every mailflow table."""

    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime}  # noqa: RUF012 - SQLAlchemy API


class Organisation(Base):
    """A member authority or partner of the network, with its network status."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    country: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(30), default="none")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    domains: Mapped[list[OrgDomain]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan"
    )


class OrgDomain(Base):
    """An email domain that identifies an organisation's staff."""

    __tablename__ = "org_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    organisation: Mapped[Organisation] = relationship(back_populates="domains")


class Contact(Base):
    """A person who writes to the service, usually staff of an organisation."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime]
    digest: Mapped[str] = mapped_column(String(10), default="weekly", server_default="weekly")
    """How often the contact wants the digest of their groups: ``weekly``, ``monthly`` or ``off``."""


class Group(Base):
    """An interest group, declared in config or started by request."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="forming")
    associated: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    aim: Mapped[str] = mapped_column(Text, default="")
    facilitator_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    declared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    """The end of the group's period (SPEC §2.5), set when it becomes active; moved by EXTEND."""
    closed_at: Mapped[datetime | None]
    facilitator: Mapped[Contact | None] = relationship()


class Membership(Base):
    """A contact's (and so its organisation's) membership of a group."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("group_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    role: Mapped[str] = mapped_column(String(20), default="member")
    status: Mapped[str] = mapped_column(String(20), default="active")
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    contact: Mapped[Contact] = relationship()
    organisation: Mapped[Organisation | None] = relationship()


class InboundMessage(Base):
    """A received message, stored raw before it is acknowledged, with what became of it."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(10))
    source_key: Mapped[str] = mapped_column(String(600), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(998), default="")
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_inbound_status", "status", "id"),)


class Request(Base):
    """A join, start or leave request and where it stands."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(30))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    topic: Mapped[str] = mapped_column(Text, default="")
    aim: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    message_id: Mapped[str] = mapped_column(String(998), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(320))
    contact: Mapped[Contact] = relationship()
    organisation: Mapped[Organisation | None] = relationship()
    group: Mapped[Group | None] = relationship()

    __table_args__ = (Index("ix_requests_contact_state", "contact_id", "state"),)


class Event(Base):
    """The audit trail: every transition and every refused action, with who, when and which message."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    from_state: Mapped[str] = mapped_column(String(30), default="")
    to_state: Mapped[str] = mapped_column(String(30), default="")
    actor: Mapped[str] = mapped_column(String(320), default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class ReplyToken(Base):
    """A single-use reply token, stored only as its SHA-256 hash and bound to one address."""

    __tablename__ = "reply_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    """For a group's end-of-period question (EXTEND or CLOSE), the group; such a token has no request."""
    purpose: Mapped[str] = mapped_column(String(20))
    bound_to: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A rendered outbound mail, queued in the same transaction as the change that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    to_addr: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"))
    reply: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """It answers the sender's own message: these, and only these, count toward the reply rate limit."""
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_to_created", "to_addr", "created_at"),
    )


class ImapCursor(Base):
    """How far one IMAP mailbox has been read."""

    __tablename__ = "imap_cursors"

    mailbox_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class Suppression(Base):
    """An address that refused our mail for good; nothing more is sent to it."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class QueueState(Base):
    """Service-wide switches, such as the outbox pause after a sender-side refusal."""

    __tablename__ = "queue_state"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class Meeting(Base):
    """A phone or web meeting of a group, one occurrence or a series, with its iCalendar identity."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    answers_from_sequence: Mapped[int] = mapped_column(Integer, default=0)
    """The SEQUENCE at which the time last changed: a REPLY to an older one is stale."""
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(10))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(Integer)
    tzid: Mapped[str] = mapped_column(String(64))
    join_url: Mapped[str] = mapped_column(Text, default="")
    dial_in: Mapped[str] = mapped_column(String(100), default="")
    pin: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # A series: the RRULE's parts; frequency "" for a single meeting.
    frequency: Mapped[str] = mapped_column(String(10), default="")
    interval: Mapped[int] = mapped_column(Integer, default=1)
    byday: Mapped[str] = mapped_column(String(60), default="")
    until: Mapped[datetime | None]
    count: Mapped[int | None]
    ends_at: Mapped[datetime]
    """When the last occurrence ends (for a series, the end of its last one): what "still ahead" compares."""
    organizer_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MeetingOccurrence(Base):
    """One occurrence of a series moved or cancelled, keyed by its original start (RECURRENCE-ID)."""

    __tablename__ = "meeting_occurrences"
    __table_args__ = (UniqueConstraint("meeting_id", "recurrence_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"))
    recurrence_id: Mapped[datetime]
    starts_at: Mapped[datetime | None]
    duration_minutes: Mapped[int | None]
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]


class Attendance(Base):
    """An invited member's answer, for the whole meeting or (``occurrence`` set) for one occurrence."""

    __tablename__ = "attendances"
    __table_args__ = (UniqueConstraint("meeting_id", "email", "occurrence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    email: Mapped[str] = mapped_column(String(320))
    occurrence: Mapped[str] = mapped_column(String(20), default="")
    """"" for the whole meeting, else the occurrence's original start in UTC as ``YYYYMMDDTHHMMSSZ``."""
    partstat: Mapped[str] = mapped_column(String(20), default="NEEDS-ACTION")
    invited: Mapped[bool] = mapped_column(Boolean, default=True)
    """False once the member left: they got the cancellation and count no more."""
    answered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Once(Base):
    """A scheduled mail's key (job, recipient, period), written with its outbox row: it is sent only once."""

    __tablename__ = "once_keys"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    created_at: Mapped[datetime]


class GroupUpdate(Base):
    """A facilitator's update on the group's exchanges and actions: group activity for the digests."""

    __tablename__ = "group_updates"
    __table_args__ = (Index("ix_group_updates_group_created", "group_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    author: Mapped[str] = mapped_column(String(320))
    title: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    created_at: Mapped[datetime]


class FacilitatorTerm(Base):
    """One stint of a contact facilitating a group, with the organisation it counted for (SPEC §2.3).

    Written when a facilitator starts (an approved START, a declared facilitator) and when they stop (leaving,
    replaced in config, the group closing); memberships alone cannot tell, as a rejoin rewrites them.
    """

    __tablename__ = "facilitator_terms"
    __table_args__ = (Index("ix_facilitator_terms_group_contact", "group_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str] = mapped_column(String(40), default="")
