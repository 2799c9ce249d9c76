# Copyright 2026 The mailflow authors
# SPDX-License-Identifier: MIT
"""Outbound adapters: hand rendered messages to an SMTP relay or a Maildir."""

from mailflow.outbound.transport import (
    Envelope,
    MaildirTransport,
    RecipientsRefusedError,
    SmtpTransport,
    Transport,
    classify_reply,
    make_transport,
)

__all__ = [
    "Envelope",
    "MaildirTransport",
    "RecipientsRefusedError",
    "SmtpTransport",
    "Transport",
    "classify_reply",
    "make_transport",
]
