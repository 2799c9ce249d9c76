"""Helpers for tests of mailflow and of deployments: configs, requests, replies shaped like real clients.

Shipped with the package (like aiosmtpd's and Mailman's testing modules) so a deployment can test its own
templates and config with the same tools.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

DEFAULT_GROUPS = """
[[groups]]
slug = "food"
name = "Sustainable and Healthy Food Procurement"
aliases = ["food", "healthy food", "catering"]
status = "active"

[[groups]]
slug = "ict"
name = "Socially Responsible Public Procurement of ICT"
aliases = ["ict", "srpp ict"]
status = "active"

[[groups]]
slug = "circular"
name = "Circular Public Procurement"
aliases = ["circular", "circular procurement", "circular economy"]
status = "forming"

[[groups]]
slug = "big-buyers"
name = "Big Buyers Initiative"
aliases = ["big buyers", "bbi"]
associated = true
"""

DEMO_REGISTRY = """organisation,country,status,domains,contact_email,contact_name
City of Ghent,Belgium,participant,ghent.example,,
City of Malmo,Sweden,participant,malmo.example,,
City of Haarlem,Netherlands,participant,haarlem.example,,
City of Lyon,France,participant,lyon.example,,
Region of Catalonia,Spain,strategic_partner,catalonia.example,,
Sample Supplier Ltd,United Kingdom,none,supplier.example,,
"""

SERVICE = "interest-groups@network.example"
APPROVER = "approver@iclei.example"


def write_config(
    folder: Path,
    database_url: str,
    *,
    extra: str = "",
    groups: str = DEFAULT_GROUPS,
    approvers: tuple[str, ...] = (APPROVER, "second@iclei.example"),
    intake_port: int | None = None,
    secretariat: str = "",
    smtp: str = 'transport = "maildir"\nmaildir = "sent"',
) -> Path:
    """Write a config.toml for tests into ``folder`` and return its path."""
    approver_list = ", ".join(f'"{a}"' for a in approvers)
    intake = (
        "enabled = false"
        if intake_port is None
        else f'enabled = true\nhost = "127.0.0.1"\nport = {intake_port}'
    )
    text = f"""
[network]
name = "Procura+ Network"
secretariat = "ICLEI"
address = "{SERVICE}"

[secretariat]
approvers = [{approver_list}]
{secretariat}

[database]
url = "{database_url}"

[smtp_intake]
{intake}

[smtp]
{smtp}
{extra}
{groups}
"""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def request_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    name: str = "",
    to: str = SERVICE,
    html_only: bool = False,
    date: datetime | None = None,
) -> bytes:
    """A request as a person would send it, plain text (or HTML only, as some Outlook set-ups do)."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if html_only:
        paragraphs = "".join(f'<p class="MsoNormal">{html.escape(p)}</p>' for p in body.split("\n\n"))
        message.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    else:
        message.set_content(body)
    return message.as_bytes()


def _parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    if not isinstance(message, EmailMessage):  # pragma: no cover - _class guarantees it
        raise TypeError("expected an EmailMessage")
    return message


def _reply_headers(original: EmailMessage, sender: str, prefix: str) -> EmailMessage:
    reply = EmailMessage(policy=policy.SMTP)
    reply["From"] = sender
    reply["To"] = str(original["Reply-To"] or original["From"])
    reply["Subject"] = f"{prefix} {original['Subject']}"
    reply["Date"] = format_datetime(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))
    reply["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply["References"] = str(original["Message-ID"])
    return reply


def _original_text(original: EmailMessage) -> str:
    part = original.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def outlook_reply(original_raw: bytes, sender: str, first_line: str) -> bytes:
    """A reply shaped like Outlook desktop's: HTML (and text) with the original below a From/Sent block."""
    original = _parse(original_raw)
    reply = _reply_headers(original, sender, "RE:")
    quoted = _original_text(original)
    header_block = (
        f"From: {original['From']}\nSent: Thursday, November 26, 2026 9:01 AM\n"
        f"To: {sender}\nSubject: {original['Subject']}"
    )
    reply.set_content(f"{first_line}\n\nKind regards,\nAnna\n\n{header_block}\n\n{quoted}")
    quoted_html = "<br>".join(html.escape(line) for line in quoted.splitlines())
    reply.add_alternative(
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        '<body lang="EN-GB"><div class="WordSection1">'
        f'<p class="MsoNormal">{html.escape(first_line)}<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p><p class="MsoNormal">Kind regards,<br>Anna<o:p></o:p></p>'
        '<div id="divRplyFwdMsg" dir="ltr"><hr style="display:inline-block;width:98%" tabindex="-1">'
        f'<font face="Calibri, sans-serif"><b>From:</b> {html.escape(str(original["From"]))}<br>'
        "<b>Sent:</b> Thursday, November 26, 2026 9:01 AM<br>"
        f"<b>Subject:</b> {html.escape(str(original['Subject']))}</font></div>"
        f"<div>{quoted_html}</div></div></body></html>",
        subtype="html",
    )
    return reply.as_bytes()


def gmail_reply(original_raw: bytes, sender: str, first_line: str) -> bytes:
    """A reply shaped like Gmail's: text and HTML, "On … wrote:" and a gmail_quote block."""
    original = _parse(original_raw)
    reply = _reply_headers(original, sender, "Re:")
    quoted = _original_text(original)
    attribution = f"On Thu, 26 Nov 2026 at 09:01, {original['From']} wrote:"
    text_quote = "\n".join(f"> {line}" for line in quoted.splitlines())
    reply.set_content(f"{first_line}\n\n{attribution}\n\n{text_quote}\n")
    quoted_html = "<br>".join(html.escape(line) for line in quoted.splitlines())
    reply.add_alternative(
        f'<div dir="ltr">{html.escape(first_line)}</div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">{html.escape(attribution)}<br></div>'
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid '
        f'rgb(204,204,204);padding-left:1ex">{quoted_html}</blockquote></div>',
        subtype="html",
    )
    return reply.as_bytes()


def plain_reply(original_raw: bytes, sender: str, text: str) -> bytes:
    """A plain-text reply with the original quoted below, as a phone client writes it."""
    original = _parse(original_raw)
    reply = _reply_headers(original, sender, "Re:")
    quoted = "\n".join(f"> {line}" for line in _original_text(original).splitlines())
    reply.set_content(
        f"{text}\n\nSent from my iPhone\n\nOn 26 Nov 2026, at 09:01, mailflow wrote:\n\n{quoted}\n"
    )
    return reply.as_bytes()


_CLIENTS = ("outlook", "apple", "gmail", "thunderbird")


def invitation_calendar(invitation_raw: bytes) -> str:
    """The iCalendar text of an invitation mail the service sent."""
    message = _parse(invitation_raw)
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data.decode("utf-8")
    raise ValueError("the mail carries no text/calendar part")


def _field(calendar: str, name: str) -> str:
    unfolded = calendar.replace("\r\n ", "").replace("\r\n\t", "")
    for line in unfolded.split("\r\n"):
        key, _, value = line.partition(":")
        if key.split(";")[0] == name:
            return value
    raise ValueError(f"no {name} in the calendar")


def rsvp_mail(
    invitation_raw: bytes,
    attendee: str,
    partstat: str,
    *,
    client: str = "outlook",
    occurrence: str | None = None,
    name: str = "",
) -> bytes:
    """An iMIP REPLY to one of our invitations, shaped like the client's own.

    Args:
        invitation_raw: the invitation mail as the attendee received it.
        attendee: who answers (the From address; the ATTENDEE too).
        partstat: ACCEPTED, DECLINED or TENTATIVE.
        client: ``outlook`` (Exchange: no ORGANIZER, ``MAILTO:`` in capitals, a translated SUMMARY,
            Windows zone names), ``apple`` (the calendar attached with no ``method=`` parameter),
            ``gmail`` (text/calendar and application/ics, method=REPLY) or ``thunderbird``.
        occurrence: the original start of one occurrence answered, as ``YYYYMMDDTHHMMSSZ``; None for all.
        name: the attendee's display name.
    """
    if client not in _CLIENTS:
        raise ValueError(f"client must be one of {', '.join(_CLIENTS)}")
    calendar = invitation_calendar(invitation_raw)
    uid, sequence = _field(calendar, "UID"), _field(calendar, "SEQUENCE")
    organizer = _field(calendar, "ORGANIZER").removeprefix("mailto:")
    summary = _field(calendar, "SUMMARY")
    stamp = "20270120T101530Z"
    cn = name or attendee.split("@", maxsplit=1)[0]
    recurrence = [f"RECURRENCE-ID:{occurrence}"] if occurrence else []
    if client == "outlook":
        words = {"ACCEPTED": "Geaccepteerd", "DECLINED": "Geweigerd", "TENTATIVE": "Voorlopig"}
        event = [
            f"ATTENDEE;PARTSTAT={partstat};CN={cn}:MAILTO:{attendee.upper()}",
            f"SUMMARY;LANGUAGE=nl-BE:{words.get(partstat, partstat)}: {summary}",
            *recurrence,
            f"UID:{uid}",
            f"SEQUENCE:{sequence}",
            f"DTSTAMP:{stamp}",
            "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
        ]
        head = ["BEGIN:VCALENDAR", "METHOD:REPLY", "PRODID:Microsoft Exchange Server 2010", "VERSION:2.0"]
    else:
        prodid = {
            "apple": "-//Apple Inc.//macOS 14.5//EN",
            "gmail": "-//Google Inc//Google Calendar 70.9054//EN",
            "thunderbird": "-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
        }[client]
        event = [
            f"UID:{uid}",
            f"SEQUENCE:{sequence}",
            f"DTSTAMP:{stamp}",
            *recurrence,
            f"ORGANIZER:mailto:{organizer}",
            f'ATTENDEE;CN="{cn}";PARTSTAT={partstat}:mailto:{attendee}',
            f"SUMMARY:{summary}",
        ]
        head = ["BEGIN:VCALENDAR", f"PRODID:{prodid}", "VERSION:2.0", "METHOD:REPLY"]
    ics = "\r\n".join([*head, "BEGIN:VEVENT", *event, "END:VEVENT", "END:VCALENDAR", ""]).encode()
    original = _parse(invitation_raw)
    reply = EmailMessage(policy=policy.SMTP)
    reply["From"] = f"{cn} <{attendee}>"
    reply["To"] = organizer
    word = {"ACCEPTED": "Accepted", "DECLINED": "Declined", "TENTATIVE": "Tentative"}.get(partstat, partstat)
    reply["Subject"] = f"{word}: {original['Subject']}"
    reply["Date"] = format_datetime(datetime(2027, 1, 20, 10, 15, 30, tzinfo=UTC))
    reply["Message-ID"] = make_msgid(domain=attendee.rpartition("@")[2])
    if client == "apple":
        reply.set_content(f"{cn} has {word.lower()} your invitation.")
        reply.add_attachment(ics, maintype="text", subtype="calendar", filename="iCal-20270120-101530.ics")
    else:
        reply.set_content(f"{cn} has {word.lower()} this invitation.")
        reply.add_alternative(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
        if client == "gmail":
            reply.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return reply.as_bytes()
