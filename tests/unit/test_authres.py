"""Reading our own Authentication-Results header (RFC 8601) for approvals."""

from __future__ import annotations

import pytest

from mailflow.core.authres import passes_dmarc

OURS = "mx.network.example"
SENDER = "approver@iclei.example"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((f"{OURS}; dmarc=pass header.from=iclei.example",), True),
        ((f"{OURS}; dkim=pass header.d=iclei.example; dmarc=none",), True),
        ((f"{OURS}; dkim=pass header.d=mail.iclei.example",), False),
        ((f"{OURS}; dkim=pass header.d=other.example",), False),
        ((f"{OURS}; dmarc=fail",), False),
        (("evil.example; dmarc=pass",), False),
        ((f"{OURS}; dmarc=fail", f"{OURS}; dmarc=pass"), False),
        (("other.example; spf=pass", f"{OURS}; dmarc=pass"), True),
        ((), False),
    ],
    ids=[
        "dmarc",
        "aligned-dkim",
        "dkim-subdomain-only",
        "unaligned-dkim",
        "fail",
        "other-server",
        "topmost-wins",
        "skips-other-ids",
        "none",
    ],
)
def test_passes_dmarc(headers: tuple[str, ...], expected: bool):
    """Only the topmost header from our authserv-id decides, and DKIM must align with the sender's domain."""
    assert expected == passes_dmarc(headers, OURS, SENDER)
