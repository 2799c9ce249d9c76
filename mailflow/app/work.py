"""The unit of work for one inbound message, shared by the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailflow.app.effects import Inbound, Mailer
from mailflow.app.runtime import Runtime
from mailflow.core.model import ParsedMail


@dataclass
class Work:
    """One message being processed: where it came from and what was read from it."""

    session: Session
    runtime: Runtime
    now: datetime
    inbound: Inbound
    parsed: ParsedMail
    mailer: Mailer
