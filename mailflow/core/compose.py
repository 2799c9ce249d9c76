"""Render a :class:`~mailflow.core.workflow.Mail` into a complete RFC 5322 message.

Text and HTML alternatives come from ``templates/`` (``<name>.subject.j2``, ``<name>.txt.j2``,
``<name>.html.j2``); HTML is autoescaped. Header values are cut to one line and non-ASCII text is
RFC 2047 encoded (:mod:`mailflow.core.mime`), never spliced raw, so names and subjects with CR/LF, emoji
or right-to-left text cannot inject headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

import jinja2

from mailflow.core.mime import Multipart, Part, base64_part, build, text_part
from mailflow.core.plans import CalendarPart, Mail
from mailflow.core.tokens import reply_address, subject_tag

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_MAX_SUBJECT = 250


def one_line(value: str, limit: int = _MAX_SUBJECT) -> str:
    """Collapse control characters and runs of spaces, and cut to ``limit`` characters."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def make_environment(folder: Path) -> jinja2.Environment:
    """A Jinja2 environment over a templates folder; HTML templates are autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once per process; a deployment restarts the service to change them.
        auto_reload=False,
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the service is, for From, Reply-To and the templates."""

    address: str
    display_name: str
    network: str
    secretariat: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered mail, ready for the outbox."""

    to: str
    sender: str
    subject: str
    message_id: str
    raw: bytes


def _address(addr: str, name: str = "") -> str:
    """An address header value; the display name is quoted or RFC 2047 encoded, never spliced raw."""
    _check_address(addr)
    return formataddr((one_line(name, 120), addr), charset="utf-8")


def _check_address(addr: str) -> None:
    if _CONTROL.search(addr) or addr.count("@") != 1 or any(c in addr for c in " <>,;\"'"):
        raise ValueError(f"refusing to write {addr!r} into a header")


def _body(text: str, html: str, calendar: CalendarPart | None) -> Part | Multipart:
    """The text and HTML alternatives; with a calendar, the iMIP shape every mainstream client reads.

    ``multipart/mixed`` { ``multipart/alternative`` { text, HTML, ``text/calendar; method=…`` }, the same
    bytes as an ``invite.ics`` attachment }: Outlook 2010 and older offer Accept/Decline only for the
    inline part, and some clients (Evolution) import only the attachment.
    """
    alternatives: tuple[Part, ...] = (text_part(text, "plain"), text_part(html, "html"))
    if calendar is None:
        return Multipart("alternative", alternatives)
    method = calendar.method.upper()
    inline = base64_part(calendar.ics, f'text/calendar; charset="UTF-8"; method={method}')
    attachment = base64_part(
        calendar.ics,
        'application/ics; name="invite.ics"',
        headers=(("Content-Disposition", 'attachment; filename="invite.ics"'),),
    )
    return Multipart("mixed", (Multipart("alternative", (*alternatives, inline)), attachment))


def render_bodies(
    env: jinja2.Environment,
    mail: Mail,
    *,
    identity: Identity,
    token: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[str, str, str]:
    """The subject (one line, without the token tag), text and HTML of ``mail`` from its templates."""
    context: dict[str, Any] = {
        "network": identity.network,
        "secretariat": identity.secretariat,
        "service_address": identity.address,
        "token": token,
        "reply_address": reply_address(identity.address, token) if token else identity.address,
        **(extra or {}),
        **mail.context,
    }
    subject = one_line(env.get_template(f"{mail.template}.subject.j2").render(context))
    text = env.get_template(f"{mail.template}.txt.j2").render(context)
    html = env.get_template(f"{mail.template}.html.j2").render(context)
    return subject, text, html


def render(
    env: jinja2.Environment,
    mail: Mail,
    *,
    identity: Identity,
    message_id: str,
    date: datetime,
    token: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
    bodies: tuple[str, str, str] | None = None,
) -> Rendered:
    """Render ``mail`` into a MIME message with a fixed Message-ID.

    Args:
        env: the templates environment.
        mail: what to send.
        identity: our address and names.
        message_id: the Message-ID, without angle brackets, fixed when queued.
        date: the Date header.
        token: the reply token minted for this mail, if any.
        in_reply_to: the Message-ID this mail answers, without angle brackets.
        references: the thread's Message-IDs, oldest first, without angle brackets.
        extra: more template facts (the shell's, such as the groups list).
        bodies: the subject, text and HTML from :func:`render_bodies`, when many mails share them (the
            invitations of one meeting); rendered here when None.
    """
    if bodies is None:
        bodies = render_bodies(env, mail, identity=identity, token=token, extra=extra)
    subject, text, html = bodies
    if token:
        subject = f"{subject} {subject_tag(token)}"

    headers = [
        ("From", _address(identity.address, identity.display_name)),
        ("To", _address(mail.to)),
        ("Subject", subject),
        ("Date", format_datetime(date)),
        ("Message-ID", f"<{message_id}>"),
    ]
    if token:
        headers.append(("Reply-To", _address(reply_address(identity.address, token), identity.display_name)))
    thread = [ref for ref in references if ref]
    if in_reply_to:
        headers.append(("In-Reply-To", f"<{in_reply_to}>"))
        if in_reply_to not in thread:
            thread.append(in_reply_to)
    if thread:
        headers.append(("References", " ".join(f"<{ref}>" for ref in thread[-10:])))
    headers += [
        ("Auto-Submitted", "auto-replied" if mail.answers_sender else "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-Mailflow", mail.template),
        *((name, one_line(value, 900)) for name, value in mail.headers),
    ]
    body = _body(text, html, mail.calendar)
    return Rendered(
        to=mail.to,
        sender=identity.address,
        subject=subject,
        message_id=message_id,
        raw=build(headers, body, message_id),
    )
