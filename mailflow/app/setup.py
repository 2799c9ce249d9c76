"""``mailflow init``: create or upgrade the schema and load the groups declared in config; idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailflow.app.events import record_event
from mailflow.app.runtime import Runtime
from mailflow.store import migrate, repo
from mailflow.store.schema import Group, Membership


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``init`` changed."""

    created: tuple[str, ...]
    updated: tuple[str, ...]


def initialise(runtime: Runtime) -> InitResult:
    """Upgrade the schema, then create or update each ``[[groups]]`` entry (its name, aliases, facilitator).

    A group's status is set from config only when the group is created; afterwards it follows its lifecycle.
    """
    migrate.upgrade(runtime.engine)
    now = runtime.clock()
    created: list[str] = []
    updated: list[str] = []
    with runtime.sessions.begin() as session:
        for declared in runtime.settings.groups:
            group = session.scalar(select(Group).where(Group.slug == declared.slug))
            if group is None:
                group = Group(
                    slug=declared.slug,
                    status=declared.status,
                    created_at=now,
                    declared=True,
                    activated_at=now if declared.status == "active" else None,
                )
                session.add(group)
                created.append(declared.slug)
            else:
                updated.append(declared.slug)
            group.name = declared.name
            group.aliases = list(declared.aliases)
            group.associated = declared.associated
            group.description = declared.description
            group.declared = True
            # A closed group keeps its history: a facilitator named in config does not reopen it.
            if declared.facilitator and group.status != "closed":
                contact = repo.contact_for(session, declared.facilitator, "", now)
                _replace_facilitator(session, group, contact.id, now)
                group.facilitator_id = contact.id
                session.flush()
                _ensure_facilitator_membership(session, group, contact.id, contact.organisation_id, now)
                repo.start_term(session, group.id, contact, now)
    return InitResult(tuple(created), tuple(updated))


def _replace_facilitator(session: Session, group: Group, contact_id: int, now: datetime) -> None:
    """A facilitator named in config in place of another: the other's term ends and they stay a member."""
    previous = group.facilitator_id
    if previous is None or previous == contact_id:
        return
    repo.end_terms(session, group.id, now, "replaced", previous)
    membership = session.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.contact_id == previous)
    )
    if membership is not None and membership.role == "facilitator":
        membership.role = "member"
    record_event(
        session, "facilitator_replaced", now, group_id=group.id, detail=f"contact {previous} -> {contact_id}"
    )


def _ensure_facilitator_membership(
    session: Session, group: Group, contact_id: int, org_id: int | None, now: datetime
) -> None:
    membership = session.scalar(
        select(Membership).where(Membership.group_id == group.id, Membership.contact_id == contact_id)
    )
    if membership is None:
        session.add(
            Membership(
                group_id=group.id,
                contact_id=contact_id,
                organisation_id=org_id,
                role="facilitator",
                status="active",
                joined_at=now,
            )
        )
    else:
        membership.role, membership.status = "facilitator", "active"
        if membership.organisation_id is None:
            membership.organisation_id = org_id
