"""What the workflow decides, as data: the mails to queue and the plan the shell carries out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailflow.core.lifecycle import Action, RequestState
from mailflow.core.rules import NetworkStatus


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """Ask the shell to mint a reply token for this mail, bound to ``bound_to``."""

    purpose: str
    bound_to: str


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """An iMIP calendar object a mail carries: its iTIP method and its iCalendar bytes."""

    method: str
    ics: bytes


@dataclass(frozen=True, slots=True)
class Mail:
    """A mail to queue: which template, to whom, with what facts.

    Attributes:
        template: the template name under ``templates/`` (``<template>.subject.j2`` and friends).
        to: the recipient address.
        context: the facts the template may use.
        token: a reply token to mint and carry in Reply-To and Subject, if any.
        answers_sender: the mail answers the message being processed (``Auto-Submitted: auto-replied``,
            In-Reply-To it); otherwise it is ``auto-generated`` and threads under the request.
        calendar: an invitation or cancellation to carry (iMIP, RFC 6047), if any.
        headers: more header fields, such as ``List-Id`` and ``List-Unsubscribe`` of a digest; each value
            on one line (the composer cuts control characters).
        id_prefix: a prefix for the Message-ID's local part (``digest``), so replies to it are recognised.
    """

    template: str
    to: str
    context: Mapping[str, Any] = field(default_factory=dict)
    token: TokenSpec | None = None
    answers_sender: bool = False
    calendar: CalendarPart | None = None
    headers: tuple[tuple[str, str], ...] = ()
    id_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Person:
    """The requester as the store knows them."""

    email: str
    name: str = ""
    organisation: str | None = None
    status: NetworkStatus | None = None

    def as_context(self) -> dict[str, Any]:
        """Template facts about this person."""
        return {
            "email": self.email,
            "name": self.name or self.email,
            "organisation": self.organisation,
            "status": (self.status or NetworkStatus.NONE).value,
            "status_label": status_label(self.status),
        }


@dataclass(frozen=True, slots=True)
class GroupFacts:
    """A group as a decision needs it."""

    slug: str
    name: str
    status: str
    associated: bool = False
    facilitator_email: str | None = None
    participant_organisations: int = 0
    member_organisations: tuple[str, ...] = ()

    def as_context(self) -> dict[str, Any]:
        """Template facts about this group."""
        return {
            "slug": self.slug,
            "name": self.name,
            "status": self.status,
            "facilitator_email": self.facilitator_email,
            "participant_organisations": self.participant_organisations,
            "member_organisations": list(self.member_organisations),
        }


def status_label(status: NetworkStatus | None) -> str:
    """A person-readable network status."""
    return {
        NetworkStatus.PARTICIPANT: "Participant",
        NetworkStatus.STRATEGIC_PARTNER: "Strategic Partner",
    }.get(status or NetworkStatus.NONE, "not in the network")


@dataclass(frozen=True, slots=True)
class Plan:
    """What the shell must do, in one transaction.

    Attributes:
        state: the request's new state; None when no request is created or changed.
        action: the action that led there, recorded in the event.
        event: the event kind to record (always recorded, also for refusals).
        mails: the mails to queue.
        add_member: create an active membership with this role (``member`` or ``facilitator``).
        end_membership: end the requester's membership of the group.
        create_group: create the requested group as ``forming``.
        activate_group: the group reaches ``active``.
        reason: for refusals and rejections, the sentence given.
    """

    state: RequestState | None
    event: str
    action: Action | None = None
    mails: tuple[Mail, ...] = ()
    add_member: str | None = None
    end_membership: bool = False
    create_group: bool = False
    activate_group: bool = False
    reason: str = ""


def refusal(to: str, reason: str, event: str = "refused", **context: object) -> Plan:
    """A plan that changes nothing and tells the sender why."""
    return Plan(
        state=None,
        event=event,
        reason=reason,
        mails=(Mail("refusal", to, {"reason": reason, **context}, answers_sender=True),),
    )
