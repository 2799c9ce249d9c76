"""``mailflow check``: validate the config and try every server it names, reporting what works."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass

from imapclient import IMAPClient
from sqlalchemy import text

from mailflow.app.runtime import Runtime, templates_folder


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


def _database(runtime: Runtime) -> Check:
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", ok=False, detail=f"{runtime.engine.url!r}: {exc}")
    return Check("database", ok=True, detail=runtime.engine.url.render_as_string(hide_password=True))


def _imap(runtime: Runtime) -> Check | None:
    imap = runtime.settings.imap
    if imap is None or not imap.enabled:
        return None
    where = f"{imap.host}:{imap.port} ({imap.security})"
    try:
        client = IMAPClient(
            imap.host, port=imap.port, ssl=imap.security == "ssl", timeout=imap.timeout_seconds
        )
        try:
            if imap.security == "starttls":
                client.starttls(ssl.create_default_context())
            client.login(imap.username, imap.password() or "")
            client.select_folder(imap.mailbox, readonly=True)
        finally:
            client.logout()
    except Exception as exc:
        return Check("imap", ok=False, detail=f"{where}: {exc}")
    return Check("imap", ok=True, detail=f"{where}: logged in as {imap.username}, {imap.mailbox} readable")


def _smtp(runtime: Runtime) -> Check:
    smtp = runtime.settings.smtp
    if smtp.transport == "maildir":
        folder = runtime.settings.maildir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Check("outbound", ok=False, detail=f"Maildir {folder}: {exc}")
        return Check("outbound", ok=True, detail=f"Maildir {folder} is writable")
    where = f"{smtp.host}:{smtp.port} ({smtp.security})"
    try:
        cls = smtplib.SMTP_SSL if smtp.security == "ssl" else smtplib.SMTP
        with cls(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password() or "")
            client.noop()
    except Exception as exc:
        return Check("outbound", ok=False, detail=f"SMTP {where}: {exc}")
    return Check("outbound", ok=True, detail=f"SMTP {where} accepted us")


def run_checks(runtime: Runtime) -> list[Check]:
    """Check the templates, the database, IMAP (when configured) and the outbound transport."""
    folder = templates_folder(runtime.settings)
    checks = [
        Check("config", ok=True, detail=f"valid; {len(runtime.settings.groups)} groups declared"),
        Check("templates", ok=folder.is_dir(), detail=str(folder)),
        _database(runtime),
    ]
    imap = _imap(runtime)
    if imap is not None:
        checks.append(imap)
    checks.append(_smtp(runtime))
    if not runtime.settings.secretariat.approvers:
        checks.append(
            Check("approvers", ok=False, detail="[secretariat] approvers is empty: nobody can approve")
        )
    return checks
