"""Reply tokens: format, find in a reply, and judge, without randomness or a clock of their own.

A token is 128 random bits (the shell draws them with :mod:`secrets`) written as 26 lowercase base32 letters.
It travels twice, so a reply is matched when either is lost: in a plus-address in Reply-To
(``interest-groups+<token>@network.example``) and in the Subject (``[IG-<token>]``). Only its SHA-256 hash is
stored; the comparison is constant-time.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

TOKEN_BYTES = 16
_TOKEN = r"[a-z2-7]{26}"  # noqa: S105 - a pattern, not a secret
_SUBJECT_TAG = re.compile(r"\[IG-(" + _TOKEN + r")\]", re.IGNORECASE)


def format_token(random_bytes: bytes) -> str:
    """Write 16 random bytes as a 26-letter lowercase base32 token."""
    if len(random_bytes) != TOKEN_BYTES:
        raise ValueError(f"a token needs exactly {TOKEN_BYTES} random bytes")
    return base64.b32encode(random_bytes).decode("ascii").rstrip("=").lower()


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its lowercase text."""
    return hashlib.sha256(token.lower().encode("ascii", "replace")).hexdigest()


def same_hash(left: str, right: str) -> bool:
    """Compare two token hashes in constant time."""
    return hmac.compare_digest(left.encode("ascii"), right.encode("ascii"))


def reply_address(service_address: str, token: str) -> str:
    """The plus-address that carries ``token``: ``local+token@domain``."""
    local, _, domain = service_address.partition("@")
    return f"{local}+{token}@{domain}"


def subject_tag(token: str) -> str:
    """The Subject tag that carries ``token``: ``[IG-token]``."""
    return f"[IG-{token}]"


def strip_subject_tags(subject: str) -> str:
    """Remove every ``[IG-…]`` tag from a subject."""
    return " ".join(_SUBJECT_TAG.sub(" ", subject).split())


def find_tokens(service_address: str, recipients: tuple[str, ...], subject: str) -> tuple[str, ...]:
    """Every token a reply carries, plus-address first, without repeats.

    Args:
        service_address: our plain address, e.g. ``interest-groups@network.example``.
        recipients: the reply's recipient addresses (To, Cc, Delivered-To, ...).
        subject: the reply's subject.
    """
    local, _, domain = service_address.lower().partition("@")
    plus = re.compile(re.escape(local) + r"\+(" + _TOKEN + r")@" + re.escape(domain) + r"$")
    found: list[str] = []
    for address in recipients:
        match = plus.match(address.lower())
        if match and match.group(1) not in found:
            found.append(match.group(1))
    for match in _SUBJECT_TAG.finditer(subject):
        token = match.group(1).lower()
        if token not in found:
            found.append(token)
    return tuple(found)


class TokenVerdict(enum.StrEnum):
    """What a token presented in a reply is worth."""

    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    WRONG_SENDER = "wrong_sender"


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as the store holds it."""

    token_hash: str
    purpose: str
    bound_to: str
    expires_at: datetime
    used_at: datetime | None


def judge(token: str, stored: StoredToken | None, sender: str, now: datetime) -> TokenVerdict:
    """Decide whether ``token`` from ``sender`` may act at ``now``.

    The sender must be the address the token was issued to (compared case-insensitively); a used or
    expired token is refused even from the right sender.
    """
    if stored is None or not same_hash(hash_token(token), stored.token_hash):
        return TokenVerdict.UNKNOWN
    if stored.used_at is not None:
        return TokenVerdict.USED
    if now >= stored.expires_at:
        return TokenVerdict.EXPIRED
    if not hmac.compare_digest(sender.strip().lower().encode(), stored.bound_to.lower().encode()):
        return TokenVerdict.WRONG_SENDER
    return TokenVerdict.VALID
