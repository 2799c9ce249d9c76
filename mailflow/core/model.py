"""The core's vocabulary: frozen values and enums shared by parsing, classification and workflow."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class LoopKind(enum.StrEnum):
    """Why a message must never be answered."""

    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LIST = "list"
    CALENDAR_REPLY = "calendar_reply"
    OWN_MAIL = "own_mail"


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """What the core needs to know of one inbound message, extracted once by ``core.parse``.

    Attributes:
        message_id: the Message-ID header without angle brackets, or "" when absent.
        in_reply_to: Message-IDs from In-Reply-To, without angle brackets.
        references: Message-IDs from References, without angle brackets.
        from_addr: the sender's address, lowercased, or "" when none could be read.
        from_name: the sender's display name, decoded.
        reply_to: the Reply-To address, lowercased, or "".
        recipients: every address in To, Cc, Delivered-To and X-Original-To, lowercased.
        subject: the decoded subject on one line.
        text: the new text of the body: HTML turned to text, quoted history and signature removed.
        full_text: the whole body as text, quotes included.
        headers: selected raw header values by lowercased name (auto-submitted, precedence, list-id,
            x-autoreply, x-auto-response-suppress, authentication-results, content-type, ...).
        calendar: the text of the first ``text/calendar`` or ``.ics`` part, or "".
        calendar_method: its ``METHOD`` (from the parameter or the body), uppercased, or "".
        is_dsn: the message is a delivery status notification (``multipart/report``).
        defects: short descriptions of anything malformed that parsing survived.
    """

    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    from_addr: str = ""
    from_name: str = ""
    reply_to: str = ""
    recipients: tuple[str, ...] = ()
    subject: str = ""
    text: str = ""
    full_text: str = ""
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calendar: str = ""
    calendar_method: str = ""
    is_dsn: bool = False
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str:
        """The first value of a selected header, or ""."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""


class IntentKind(enum.StrEnum):
    """What a person asked for."""

    JOIN = "join"
    START = "start"
    LEAVE = "leave"
    HELP = "help"
    STATUS = "status"
    MEETING = "meeting"
    UPDATE = "update"
    DIGEST = "digest"
    APPROVAL_REPLY = "approval_reply"
    CALENDAR_REPLY = "calendar_reply"
    AUTOMATED = "automated"
    UNKNOWN = "unknown"


class Verdict(enum.StrEnum):
    """An approver's decision, read from the first line of new text."""

    APPROVE = "approve"
    REJECT = "reject"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Decision:
    """An approver's decision and the text after the keyword (reason or question)."""

    verdict: Verdict
    text: str = ""


@dataclass(frozen=True, slots=True)
class GroupRef:
    """A group as the classifier sees it: names to match against."""

    slug: str
    name: str
    aliases: tuple[str, ...] = ()
    associated: bool = False


@dataclass(frozen=True, slots=True)
class Intent:
    """The classifier's reading of one message.

    Attributes:
        kind: what was asked.
        group_slug: the one group named, when exactly one matched.
        candidates: slugs of the groups that matched when several did (ambiguous).
        group_text: the words that named a group, as written (empty when none).
        topic: for START, the proposed group's topic; for MEETING, the action: ``schedule``,
            ``update <id>`` or ``cancel <id>``; for DIGEST, ``weekly``, ``monthly``, ``off`` or "" (unclear).
        aim: for START, the aim the requester gave ("" when none).
        decision: for APPROVAL_REPLY, what the approver decided (None when no keyword was found).
        exact: the intent came from an exact subject command.
    """

    kind: IntentKind
    group_slug: str | None = None
    candidates: tuple[str, ...] = ()
    group_text: str = ""
    topic: str = ""
    aim: str = ""
    decision: Decision | None = None
    exact: bool = False


@dataclass(frozen=True, slots=True)
class GroupDecision:
    """The answer to a group's end-of-period question: extend by ``months``, or close (``months`` 0)."""

    extend: bool
    months: int = 0
