"""Reply tokens: format, discovery in replies, and the judgement of SPEC §7."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailflow.core.tokens import (
    StoredToken,
    TokenVerdict,
    find_tokens,
    format_token,
    hash_token,
    judge,
    reply_address,
    subject_tag,
)

SERVICE = "interest-groups@network.example"
TOKEN = format_token(bytes(range(16)))
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_token_is_26_base32_letters_of_128_bits():
    """16 random bytes become 26 lowercase base32 letters."""
    assert 26 == len(TOKEN)
    assert TOKEN == TOKEN.lower()


def test_token_needs_exactly_16_bytes():
    """Fewer than 128 bits is refused."""
    with pytest.raises(ValueError, match="16"):
        format_token(b"short")


@pytest.mark.parametrize(
    ("recipients", "subject", "expected"),
    [
        ((reply_address(SERVICE, TOKEN),), "Re: Approve?", (TOKEN,)),
        ((SERVICE,), f"RE: Approve? {subject_tag(TOKEN)}", (TOKEN,)),
        ((reply_address(SERVICE, TOKEN).upper(),), f"AW: {subject_tag(TOKEN).upper()}", (TOKEN,)),
        ((SERVICE,), "Re: no token here", ()),
        (("interest-groups+" + TOKEN + "@elsewhere.example",), "Re:", ()),
    ],
    ids=["plus-address", "subject-only", "upper-case", "none", "other-domain"],
)
def test_find_tokens(recipients: tuple[str, ...], subject: str, expected: tuple[str, ...]):
    """A token is found in the plus-address or the subject, whichever survived the reply."""
    assert expected == find_tokens(SERVICE, recipients, subject)


def _stored(**kw: object) -> StoredToken:
    values: dict[str, object] = {
        "token_hash": hash_token(TOKEN),
        "purpose": "approve",
        "bound_to": "a@iclei.example",
        "expires_at": NOW + timedelta(days=1),
        "used_at": None,
    }
    values.update(kw)
    return StoredToken(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "sender", "expected"),
    [
        (_stored(), "a@iclei.example", TokenVerdict.VALID),
        (_stored(), "A@ICLEI.example", TokenVerdict.VALID),
        (_stored(), "mallory@iclei.example", TokenVerdict.WRONG_SENDER),
        (_stored(used_at=NOW), "a@iclei.example", TokenVerdict.USED),
        (_stored(expires_at=NOW), "a@iclei.example", TokenVerdict.EXPIRED),
        (None, "a@iclei.example", TokenVerdict.UNKNOWN),
        (_stored(token_hash=hash_token("x" * 26)), "a@iclei.example", TokenVerdict.UNKNOWN),
    ],
    ids=["valid", "case", "wrong-sender", "replayed", "expired", "forged", "hash-mismatch"],
)
def test_judge(stored: StoredToken | None, sender: str, expected: TokenVerdict):
    """Only the bound sender, before expiry and before first use, gets a valid verdict."""
    assert expected == judge(TOKEN, stored, sender, NOW)
