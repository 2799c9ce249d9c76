"""The runtime: settings, database, templates, clock and randomness, built once and passed explicitly."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailflow.config import Settings
from mailflow.core.compose import Identity, make_environment
from mailflow.store.db import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from mailflow.app.helper import Helper


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_templates() -> Path:
    """The templates shipped with mailflow: inside the installed package, else the checkout's top level."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


def templates_folder(settings: Settings) -> Path:
    """The configured templates folder, or the shipped one."""
    if settings.templates is not None:
        return settings.path(settings.templates)
    return default_templates()


@dataclass
class Runtime:
    """Everything a use case needs, with the clock and randomness replaceable by tests."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    templates: jinja2.Environment
    clock: Callable[[], datetime] = _utcnow
    entropy: Callable[[int], bytes] = field(default=secrets.token_bytes)
    helper: Helper | None = None
    """A helper process for batches' pure work (:mod:`mailflow.app.helper`), when one was started."""

    @property
    def identity(self) -> Identity:
        """Who the service is in the mail it sends."""
        network = self.settings.network
        return Identity(
            address=network.address,
            display_name=f"{network.name} Interest Groups",
            network=network.name,
            secretariat=network.secretariat,
        )

    @property
    def secretariat_address(self) -> str:
        """Where leads and forwarded requests go: ``leads_to``, else the first approver, else our address."""
        secretariat = self.settings.secretariat
        if secretariat.leads_to:
            return secretariat.leads_to
        return secretariat.approvers[0] if secretariat.approvers else self.settings.network.address

    def new_message_id(self, prefix: str = "") -> str:
        """A fresh, globally unique Message-ID (without angle brackets) in our domain, ``prefix.`` first."""
        local = self.entropy(12).hex()
        return (
            f"{prefix}.{local}@{self.settings.network.domain}"
            if prefix
            else f"{local}@{self.settings.network.domain}"
        )


def build_runtime(settings: Settings) -> Runtime:
    """Create the engine, session factory and templates for ``settings``."""
    engine = make_engine(settings.database_url)
    folder = templates_folder(settings)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        templates=make_environment(folder),
    )
