"""Load and validate ``config.toml`` into one frozen settings object.

The file is read once at start; every use case receives the resulting :class:`Settings` explicitly.
Validation uses pydantic so that an error names the key (``[imap] port``) and what is wrong with it.
Secrets never live in the file: ``password_env`` names an environment variable and ``password_file``
a file, both resolved here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mailflow.errors import ConfigError

_ENV_VAR = "MAILFLOW_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NetworkSettings(_Section):
    """``[network]``: who we are and which address the service reads."""

    name: str = "Procura+ Network"
    secretariat: str = "ICLEI"
    address: str = "interest-groups@network.example"
    timezone: str = "Europe/Brussels"

    @field_validator("address")
    @classmethod
    def _one_address(cls, value: str) -> str:
        local, sep, domain = value.partition("@")
        if not sep or not local or "." not in domain or "+" in local:
            raise ValueError("must be one plain address such as interest-groups@network.example")
        return value.lower()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - only at load

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def local_part(self) -> str:
        """The part of :attr:`address` before the ``@``."""
        return self.address.partition("@")[0]

    @property
    def domain(self) -> str:
        """The part of :attr:`address` after the ``@``."""
        return self.address.partition("@")[2]


class SecretariatSettings(_Section):
    """``[secretariat]``: who may approve, and how long their tokens live."""

    approvers: tuple[str, ...] = ()
    require_authenticated_approvals: bool = False
    authserv_id: str | None = None
    token_days: Annotated[int, Field(ge=1, le=365)] = 30
    leads_to: str | None = None

    @field_validator("approvers")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if "@" not in item:
                raise ValueError(f"{item!r} is not an email address")
        return tuple(item.strip().lower() for item in value)

    @model_validator(mode="after")
    def _authserv_when_required(self) -> SecretariatSettings:
        if self.require_authenticated_approvals and not self.authserv_id:
            raise ValueError("authserv_id is needed when require_authenticated_approvals is true")
        return self


class DatabaseSettings(_Section):
    """``[database]``: any SQLAlchemy URL."""

    url: str = "sqlite:///var/mailflow.db"


class _Secret(_Section):
    password_env: str | None = None
    password_file: Path | None = None

    def password(self) -> str | None:
        """Return the secret from the environment or the file, or None when neither is set."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"password_env: environment variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"password_file: cannot read {self.password_file}: {exc}") from exc
        return None


Security = Literal["ssl", "starttls", "none"]


class ImapSettings(_Secret):
    """``[imap]``: the mailbox the service reads."""

    enabled: bool = True
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 993
    security: Security = "ssl"
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    mailbox: str = "INBOX"
    processed_mailbox: str = "Processed"
    quarantine_mailbox: str = "Quarantine"
    idle: bool = True
    poll_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    idle_renew_seconds: Annotated[int, Field(ge=10, le=1740)] = 600
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60.0
    catch_up_existing: bool = False


class SmtpIntakeSettings(_Section):
    """``[smtp_intake]``: the SMTP or LMTP listener an MTA delivers to."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, lt=65536)] = 2525
    lmtp: bool = False
    max_message_bytes: Annotated[int, Field(gt=0)] = 25 * 1024 * 1024


class SmtpSettings(_Secret):
    """``[smtp]``: how outbound mail leaves."""

    transport: Literal["smtp", "maildir"] = "maildir"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 25
    security: Security = "none"
    username: str | None = None
    maildir: Path = Path("var/sent")
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    rate_per_minute: Annotated[int, Field(ge=0)] = 0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12


class LimitSettings(_Section):
    """``[limits]``: caps that keep one sender or one message from hurting the service."""

    max_message_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    max_mime_parts: Annotated[int, Field(gt=0)] = 200
    max_mime_depth: Annotated[int, Field(gt=0)] = 20
    replies_per_sender_per_hour: Annotated[int, Field(ge=1)] = 10


class MeetingSettings(_Section):
    """``[meetings]``: the network's meeting rules and when reminders go out."""

    days_per_year: Annotated[int, Field(ge=1, le=365)] = 2
    hours_per_day: Annotated[float, Field(gt=0, le=24)] = 8
    min_per_year: Annotated[int, Field(ge=0, le=52)] = 2
    remind_hours_before: Annotated[float, Field(gt=0, le=24 * 14)] = 24
    summary_hours_before: Annotated[float, Field(gt=0, le=24 * 14)] = 24


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class DigestSettings(_Section):
    """``[digests]``: when members and the network get their digests."""

    default: Literal["weekly", "monthly", "off"] = "weekly"
    weekday: Weekday = "monday"
    hour: Annotated[int, Field(ge=0, le=23)] = 8
    network: Literal["weekly", "monthly", "off"] = "monthly"


class LifecycleSettings(_Section):
    """``[lifecycle]``: reminders over a group's life and its period (SPEC §2.4, §2.5)."""

    approval_reminder_hours: Annotated[float, Field(gt=0)] = 72
    update_every_days: Annotated[int, Field(ge=1)] = 90
    period_months: Annotated[int, Field(ge=1, le=120)] = 24
    end_notice_days: Annotated[int, Field(ge=1, le=365)] = 60


class GroupSettings(_Section):
    """One ``[[groups]]`` entry: a group the network declares."""

    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str
    aliases: tuple[str, ...] = ()
    status: Literal["forming", "active", "closing", "closed"] = "active"
    associated: bool = False
    description: str = ""
    facilitator: str | None = None


class Settings(_Section):
    """Everything ``config.toml`` says, validated; paths resolved against the file's folder."""

    base_dir: Path = Path()
    templates: Path | None = None
    network: NetworkSettings = NetworkSettings()
    secretariat: SecretariatSettings = SecretariatSettings()
    database: DatabaseSettings = DatabaseSettings()
    imap: ImapSettings | None = None
    smtp_intake: SmtpIntakeSettings = SmtpIntakeSettings()
    smtp: SmtpSettings = SmtpSettings()
    limits: LimitSettings = LimitSettings()
    meetings: MeetingSettings = MeetingSettings()
    digests: DigestSettings = DigestSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    groups: tuple[GroupSettings, ...] = ()

    @model_validator(mode="after")
    def _unique_groups(self) -> Settings:
        seen: set[str] = set()
        for group in self.groups:
            if group.slug in seen:
                raise ValueError(f"[[groups]] slug {group.slug!r} is declared twice")
            seen.add(group.slug)
        return self

    def path(self, value: Path) -> Path:
        """Resolve a configured path against the config file's folder."""
        return value if value.is_absolute() else self.base_dir / value

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the config folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.base_dir / url[len(prefix) :])
        return url

    @property
    def maildir(self) -> Path:
        """The outbound Maildir, resolved."""
        return self.path(self.smtp.maildir)


def default_path() -> Path:
    """The config path when none is given: ``$MAILFLOW_CONFIG``, else ``./config.toml``."""
    return Path(os.environ.get(_ENV_VAR, "config.toml"))


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    if location and not location[0].isdigit() and len(location) > 1:
        section, rest = location[0], location[1:]
        if section == "groups" and rest and rest[0].isdigit():
            key = f"[[groups]] #{int(rest[0]) + 1} {'.'.join(rest[1:])}".rstrip()
        else:
            key = f"[{section}] {'.'.join(rest)}"
    else:
        key = ".".join(location) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{key}: {message}"


def parse_settings(data: dict[str, object], base_dir: Path) -> Settings:
    """Validate a parsed TOML document into :class:`Settings`.

    Raises:
        ConfigError: naming the first key that is wrong.
    """
    data = dict(data)
    for section in ("imap", "smtp"):
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get("password_file"), str):
            # A relative password_file is relative to the config file, like every other path in it.
            data[section] = {**table, "password_file": str(base_dir / table["password_file"])}
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the config file.

    Raises:
        ConfigError: when the file is missing, is not TOML, or a key is wrong.
    """
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    settings = parse_settings(data, path.resolve().parent)
    return settings.model_copy(update={"base_dir": path.resolve().parent})
