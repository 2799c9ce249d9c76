"""The SMTP (or LMTP) listener an MTA delivers to.

Unknown recipients are refused at RCPT with ``550``. The message is committed to the store before ``250`` is
sent; when the store fails, the answer is ``451`` so the sending MTA keeps the message and retries. In LMTP
mode every accepted recipient gets its own status line after DATA, as RFC 2033 requires.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailflow.config import SmtpIntakeSettings
from mailflow.intake.base import Sink

log = logging.getLogger("mailflow.intake.smtp")

OK = "250 2.0.0 OK: queued"
UNKNOWN_RECIPIENT = "550 5.1.1 No such recipient here"
STORE_DOWN = "451 4.3.0 Temporary storage failure, please try again later"
RECIPIENT_OK = "250 2.1.5 Recipient OK"


def is_ours(address: str, service_address: str) -> bool:
    """Whether ``address`` is the service address or a plus-address of it (case-insensitive)."""
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    our_local, _, our_domain = service_address.lower().partition("@")
    return domain == our_domain and (local == our_local or local.startswith(our_local + "+"))


class IntakeHandler:
    """aiosmtpd handler hooks: the recipient check and the durable store."""

    def __init__(
        self,
        sink: Sink,
        service_address: str,
        *,
        lmtp: bool = False,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        """Hand accepted messages to ``sink``; ``on_stored`` is called after each one is stored."""
        self._sink = sink
        self._service_address = service_address
        self._lmtp = lmtp
        self._on_stored = on_stored

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept only our own address and its plus-addresses."""
        del server, session, rcpt_options
        if not is_ours(address, self._service_address):
            return UNKNOWN_RECIPIENT
        envelope.rcpt_tos.append(address)
        return RECIPIENT_OK

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message, then answer: ``250`` once it is committed, ``451`` when it could not be."""
        del server
        raw: Any = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        source = "lmtp" if self._lmtp else "smtp"
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self._sink.accept(data, source, "")
            )
        except Exception:
            # StoreUnavailableError or anything unforeseen: the sender keeps the message and retries.
            log.exception("refused a message from %s with 451", peer)
            status = STORE_DOWN
        else:
            status = OK
            if self._on_stored is not None:
                self._on_stored()
        if self._lmtp:
            return "\r\n".join(status for _ in envelope.rcpt_tos)
        return status


class _LmtpController(Controller):
    def factory(self) -> LMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


def make_listener(
    settings: SmtpIntakeSettings,
    sink: Sink,
    service_address: str,
    on_stored: Callable[[], None] | None = None,
) -> Controller:
    """An unstarted aiosmtpd controller for the configured host, port and protocol."""
    handler = IntakeHandler(sink, service_address, lmtp=settings.lmtp, on_stored=on_stored)
    cls = _LmtpController if settings.lmtp else Controller
    return cls(
        handler,
        hostname=settings.host,
        port=settings.port,
        data_size_limit=settings.max_message_bytes,
        # A fixed name for the greeting; without it aiosmtpd resolves the host's FQDN on every connection.
        server_hostname=service_address.rpartition("@")[2],
        decode_data=False,
        ready_timeout=10.0,
    )
