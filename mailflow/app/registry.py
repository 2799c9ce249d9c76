"""``mailflow org import FILE.csv``: validate every row, then upsert organisations, domains and contacts.

The file is checked whole before anything is written: one bad row means nothing is imported, and the
error lists
every bad row by its line number.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mailflow.app.runtime import Runtime
from mailflow.core.rules import NetworkStatus
from mailflow.errors import RegistryError
from mailflow.store import repo
from mailflow.store.schema import Contact, Organisation, OrgDomain

COLUMNS = ("organisation", "country", "status", "domains", "contact_email", "contact_name")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class OrgRow:
    """One valid registry row."""

    line: int
    name: str
    country: str
    status: NetworkStatus
    domains: tuple[str, ...]
    contact_email: str
    contact_name: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import changed."""

    created: int
    updated: int
    contacts: int


def read_rows(text: str) -> list[OrgRow]:
    """Parse and validate the CSV text.

    Raises:
        RegistryError: listing every bad row as ``line N: what is wrong``.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError(f"line 1: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    rows: list[OrgRow] = []
    problems: list[str] = []
    seen_domains: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        name = (record.get("organisation") or "").strip()
        status_text = (record.get("status") or "").strip().lower()
        domains = tuple(d.strip().lower() for d in (record.get("domains") or "").split(";") if d.strip())
        email = (record.get("contact_email") or "").strip().lower()
        errors = []
        if not name:
            errors.append("organisation is empty")
        if status_text not in {s.value for s in NetworkStatus}:
            errors.append(f"status {status_text!r} is not participant, strategic_partner or none")
        errors.extend(f"domain {d!r} is not a domain name" for d in domains if not _DOMAIN.match(d))
        for domain in domains:
            if domain in seen_domains:
                errors.append(f"domain {domain} is also on line {seen_domains[domain]}")
            seen_domains[domain] = line
        if email and not _EMAIL.match(email):
            errors.append(f"contact_email {email!r} is not an email address")
        if errors:
            problems.append(f"line {line}: {'; '.join(errors)}")
            continue
        rows.append(
            OrgRow(
                line,
                name,
                (record.get("country") or "").strip(),
                NetworkStatus(status_text),
                domains,
                email,
                (record.get("contact_name") or "").strip(),
            )
        )
    if problems:
        raise RegistryError("no rows imported; fix these rows:\n" + "\n".join(problems))
    return rows


def import_file(runtime: Runtime, path: Path) -> ImportResult:
    """Import or update the registry from a CSV file, all rows in one transaction.

    Raises:
        RegistryError: the file cannot be read or has bad rows.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from None
    rows = read_rows(text)
    now = runtime.clock()
    created = updated = contacts = 0
    with runtime.sessions.begin() as session:
        for row in rows:
            organisation = session.scalar(select(Organisation).where(Organisation.name == row.name))
            if organisation is None:
                organisation = Organisation(name=row.name, created_at=now)
                session.add(organisation)
                created += 1
            else:
                updated += 1
            organisation.country, organisation.status, organisation.updated_at = (
                row.country,
                row.status.value,
                now,
            )
            session.flush()
            for domain in row.domains:
                owner = session.scalar(select(OrgDomain).where(OrgDomain.domain == domain))
                if owner is None:
                    session.add(OrgDomain(organisation_id=organisation.id, domain=domain))
                elif owner.organisation_id != organisation.id:
                    owner.organisation_id = organisation.id
            if row.contact_email:
                contact = session.scalar(select(Contact).where(Contact.email == row.contact_email))
                if contact is None:
                    contact = Contact(email=row.contact_email, name=row.contact_name, created_at=now)
                    session.add(contact)
                    contacts += 1
                contact.organisation_id = organisation.id
                if row.contact_name:
                    contact.name = row.contact_name
            session.flush()
        repo.adopt_organisations(session)
    return ImportResult(created, updated, contacts)
