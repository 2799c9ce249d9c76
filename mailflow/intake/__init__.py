"""Inbound adapters: IMAP, the SMTP/LMTP listener and files. Each stores raw bytes before it acknowledges."""
