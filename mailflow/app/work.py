"""The unit of work for one inbound message, shared by the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailflow.app.effects import Mailer, apply_plan
from mailflow.app.events import Inbound
from mailflow.app.runtime import Runtime
from mailflow.core.model import ParsedMail
from mailflow.core.plans import Plan
from mailflow.store.schema import Contact, Group


@dataclass
class Work:
    """One message being processed: where it came from and what was read from it."""

    session: Session
    runtime: Runtime
    now: datetime
    inbound: Inbound
    parsed: ParsedMail
    mailer: Mailer

    def leads(self, contact: Contact, group: Group) -> bool:
        """Whether ``contact`` may act for the group: its facilitator, or an approver."""
        approvers = {a.lower() for a in self.runtime.settings.secretariat.approvers}
        return group.facilitator_id == contact.id or contact.email in approvers

    def refuse(self, contact: Contact, plan: Plan, group: Group | None = None) -> None:
        """Carry out a plan that changes no request: its event and its reply to ``contact``."""
        apply_plan(
            self.session,
            self.mailer,
            plan,
            self.now,
            request=None,
            contact=contact,
            group=group,
            actor=contact.email,
            inbound=self.inbound,
        )
