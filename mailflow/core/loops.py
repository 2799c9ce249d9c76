"""Recognise mail that must never be answered: own, bounces, calendar replies, auto-replies, lists.

Answering any of these risks a mail loop (RFC 3834 section 2). A message is judged by the headers
and fields ``core.parse`` extracted; the first kind that matches, in that order, is the verdict.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailflow.core.model import LoopKind

if TYPE_CHECKING:
    from mailflow.core.model import ParsedMail

_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_BOUNCE_SUBJECT = re.compile(
    r"\W{0,3}(?:undelivered mail|undeliverable\s?:|unzustellbar\s?:|non remis\s?:|nicht zustellbar"
    r"|delivery status notification|mail delivery failed|delivery failure|failure notice"
    r"|returned mail\s?:|non recapitabile\s?:|no se puede entregar\s?:|onbestelbaar\s?:)",
    re.IGNORECASE,
)
# Out-of-office subjects start with the marker; the short words count only as a "Word:" prefix
# or alone, so that "Absence of circular criteria" stays a person's subject.
_OUT_OF_OFFICE = re.compile(
    r"\W{0,3}(?:(?:out of (?:the )?office|automatic reply|auto[- ]?reply|automatische antwort"
    r"|abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[áa]tica|fuera de la oficina"
    r"|risposta automatica|fuori sede|automatisch antwoord)(?![^\W\d_])"
    r"|(?:abwesend|absence|afwezig)\s*(?::|$))",
    re.IGNORECASE,
)
_CALENDAR_REPLIES = frozenset({"REPLY", "COUNTER", "REFRESH"})
_LIST_PRECEDENCE = frozenset({"list", "bulk", "junk"})
_TOKEN = re.compile(r"\s*([a-z0-9_-]*)")


def loop_kind(mail: ParsedMail, own_addresses: frozenset[str]) -> LoopKind | None:
    """Say why a message must not be answered, or None when a person wrote it.

    Args:
        mail: the parsed message.
        own_addresses: the service's addresses; plus-addressed variants of them count as ours.

    Returns:
        The first matching kind in the order own mail, bounce, calendar reply, auto-reply, list;
        None for a message a person wrote.

    """
    own = {_mailbox(address) for address in own_addresses}
    # X-Loop naming one of our addresses is the procmail/Sieve way of marking our own mail.
    looped = {_mailbox(value) for value in mail.headers.get("x-loop", ())}
    if "x-mailflow" in mail.headers or own & looped or (mail.from_addr and _mailbox(mail.from_addr) in own):
        return LoopKind.OWN_MAIL
    if _is_bounce(mail):
        return LoopKind.BOUNCE
    if mail.calendar_method in _CALENDAR_REPLIES:
        return LoopKind.CALENDAR_REPLY
    if _is_auto_reply(mail):
        return LoopKind.AUTO_REPLY
    # List-* headers count only with Precedence (Mailman, Sympa and Google Groups set both), and
    # Precedence: list, bulk or junk counts alone.
    if _token(mail.header("precedence")) in _LIST_PRECEDENCE:
        return LoopKind.LIST
    return None


def _is_bounce(mail: ParsedMail) -> bool:
    sender = mail.from_addr.lower().partition("@")[0]
    return (
        mail.is_dsn
        or sender in _BOUNCE_SENDERS
        or "<>" in {"".join(value.split()) for value in mail.headers.get("return-path", ())}
        or "x-failed-recipients" in mail.headers
        or bool(_BOUNCE_SUBJECT.match(mail.subject))
    )


def _is_auto_reply(mail: ParsedMail) -> bool:
    # X-Auto-Response-Suppress is a request to suppress replies, not a mark of one: not read here.
    submitted = _token(mail.header("auto-submitted"))
    flagged = any(
        _token(value) not in ("no", "false", "0")
        for name in ("x-autoreply", "x-autorespond")
        for value in mail.headers.get(name, ())
    )
    return (
        (submitted not in ("", "no"))
        or flagged
        or _token(mail.header("precedence")) == "auto_reply"
        or bool(_OUT_OF_OFFICE.match(mail.subject))
    )


def _token(value: str) -> str:
    """Return the first word of a header value, lowercased ("Auto-Replied; x" -> "auto-replied")."""
    match = _TOKEN.match(value.lower())
    return match.group(1) if match else ""


def _mailbox(address: str) -> str:
    """Return the address lowercased, without a ``+tag`` on its local part."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}" if at else address.strip().lower()
