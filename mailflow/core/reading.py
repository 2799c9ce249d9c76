"""What one raw message says, before anything is looked up: read, checked for loops, tokens found, classified.

These are the pure steps of processing a message, in the order the pipeline takes them, gathered in one
function of the message and a :class:`View` of the service, so that they can run anywhere: in the processing
transaction, or ahead of it in a helper process (``mailflow.app.helper``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailflow.core.intent import classify
from mailflow.core.loops import loop_kind
from mailflow.core.model import GroupRef, Intent, LoopKind, ParsedMail
from mailflow.core.parse import parse_message, precheck
from mailflow.core.tokens import find_tokens


@dataclass(frozen=True, slots=True)
class View:
    """What reading a message needs to know of the service."""

    address: str
    """Our address (a reply token rides on it; mail from it is our own)."""
    domain: str
    """Our domain (a reply to our mail names a Message-ID in it)."""
    max_bytes: int
    max_parts: int
    max_depth: int
    groups: tuple[GroupRef, ...]
    """The groups a message may name."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What a message says; ``intent`` only for a message a person sent from a readable address."""

    parsed: ParsedMail | None = None
    problem: str = ""
    """Why the message was not read at all (too big, not a message); then ``parsed`` is None."""
    loop: LoopKind | None = None
    tokens: tuple[str, ...] = ()
    intent: Intent | None = None


def subject_to_read(parsed: ParsedMail, our_domain: str, groups: Sequence[GroupRef]) -> str:
    """The subject to classify: the subject itself, unless the mail replies to one of ours.

    A reply to our mail echoes our words ("Re: Welcome to ... group"), so there only an exact command the
    sender typed into the subject counts, and otherwise the body speaks.
    """
    ours = "@" + our_domain.lower()
    if not any(ref.lower().endswith(ours) for ref in (*parsed.in_reply_to, *parsed.references)):
        return parsed.subject
    return parsed.subject if classify(parsed.subject, "", groups, has_token=False).exact else ""


def understand(raw: bytes, view: View) -> Reading:
    """Read ``raw`` and say what it is: a loop to leave unanswered, or a person's intent.

    Raises whatever the MIME parser raises for a message it cannot take apart: the caller quarantines it.
    """
    problem = precheck(raw, view.max_bytes)
    if problem:
        return Reading(problem=problem)
    parsed = parse_message(raw, max_bytes=view.max_bytes, max_parts=view.max_parts, max_depth=view.max_depth)
    loop = loop_kind(parsed, frozenset({view.address}))
    if loop is not None or not parsed.from_addr or "@" not in parsed.from_addr:
        return Reading(parsed, loop=loop)
    tokens = find_tokens(view.address, parsed.recipients, parsed.subject)
    intent = intent_of(parsed, view.domain, view.groups, tokens)
    return Reading(parsed, tokens=tokens, intent=intent)


def intent_of(
    parsed: ParsedMail, our_domain: str, groups: Sequence[GroupRef], tokens: tuple[str, ...]
) -> Intent:
    """What the person who wrote ``parsed`` asks for, among ``groups``."""
    subject = subject_to_read(parsed, our_domain, groups)
    return classify(subject, parsed.text, groups, has_token=bool(tokens))
