# Copyright 2026 The mailflow authors
# SPDX-License-Identifier: MIT
"""Outbound transports: hand one rendered message to an SMTP relay or write it into a Maildir.

Transports raise the errors of :mod:`mailflow.errors` the outbox acts on: TransientDeliveryError
(4xx, connection refused or reset, timeout before the data was sent: retry later);
DeliveryUncertainError (data sent, reply lost: it may have arrived; retry with the same Message-ID);
PermanentDeliveryError (a 5xx to this message; only :class:`RecipientsRefusedError`, naming refused
addresses, should suppress addresses); SenderRefusedError (the relay refuses us: authentication,
5xx to MAIL FROM, sending quota, TLS; all mail would fail alike: pause and alert). Not thread-safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mailflow.errors import (
    ConfigError,
    DeliveryUncertainError,
    MailflowError,
    PermanentDeliveryError,
    SenderRefusedError,
    TransientDeliveryError,
)

if TYPE_CHECKING:
    from mailflow.config import Security, SmtpSettings

Replies = dict[str, tuple[int, str]]

_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
# Stages before RCPT concern the sender: a 5xx there refuses us, not a recipient.
_SENDER_STAGES = frozenset({"greeting", "EHLO", "STARTTLS", "AUTH", "MAIL FROM"})
# Enhanced status codes that refuse the sender at any stage: authentication required, invalid or
# too weak; encryption required; sending quota; Microsoft 365's unauthenticated/send-as/IP refusals.
_SENDER_STATUS = frozenset({"5.7.0", "5.7.8", "5.7.9", "5.7.11", "5.4.5", "5.7.57", "5.7.60", "5.7.708"})
_SENDER_WORDS = ("sending quota", "submissionquota", "submission quota", "sendasdenied")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to deliver.

    Attributes:
        sender: the envelope sender (``MAIL FROM``); "" for the null reverse-path ``<>``.
        recipients: the envelope recipients (``RCPT TO``): at least one, normally exactly one.
        message_id: the Message-ID fixed when the message was queued.
        raw: the rendered RFC 5322 message, never changed (SMTP sends it CRLF and dot-stuffed).

    """

    sender: str
    recipients: tuple[str, ...]
    message_id: str
    raw: bytes

    def __post_init__(self) -> None:
        """Reject an empty recipient list, and CR, LF or NUL in an address (SMTP injection)."""
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")
        for address in (self.sender, *self.recipients):
            if any(char in address for char in "\r\n\0"):
                raise ValueError(f"envelope address {address!r} contains a line break or NUL")


class Transport(Protocol):
    """Delivers envelopes; see the module docstring for the errors it raises."""

    def deliver(self, envelope: Envelope) -> None:
        """Deliver one envelope or raise a delivery error saying what happened."""

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""


class RecipientsRefusedError(PermanentDeliveryError):
    """The relay refused some or all recipients at ``RCPT TO`` with a 5xx.

    Attributes:
        refused: each refused address with the server's code and text.
        delivered: the recipients that accepted the message (empty when all were refused).

    """

    def __init__(self, message: str, refused: Replies, delivered: tuple[str, ...]) -> None:
        """Keep the refused and delivered recipients beside the message."""
        super().__init__(message)
        self.refused = refused
        self.delivered = delivered


def classify_reply(stage: str, code: int, text: str, where: str) -> MailflowError:
    """Turn a failed SMTP reply into the delivery error the outbox acts on.

    ``stage`` names the command (``greeting`` to ``end of DATA``), ``where`` the relay. A 5xx before
    ``RCPT TO`` or one refusing the sender (authentication, sending quota, relaying denied) gives
    SenderRefusedError, any other 5xx PermanentDeliveryError, and anything else (4xx, or -1 for an
    unreadable reply) TransientDeliveryError.
    """
    message = f"{where} refused {stage}: {code} {text}".rstrip()
    if not 500 <= code < 600:
        return TransientDeliveryError(message)
    # The enhanced status code (RFC 3463), when the relay gives one, leads the text.
    status, lowered = text.partition(" ")[0], text.lower()
    if (
        stage in _SENDER_STAGES
        or status in _SENDER_STATUS
        or any(word in lowered for word in _SENDER_WORDS)
        or (status.startswith("5.7.") and "relay" in lowered)
    ):
        return SenderRefusedError(message)
    return PermanentDeliveryError(message)


def _reply_text(text: bytes | str) -> str:
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return " ".join(decoded.split())


def _listing(replies: Replies) -> str:
    return "; ".join(f"<{rcpt}>: {code} {text}" for rcpt, (code, text) in replies.items())


def _wire(raw: bytes) -> bytes:
    """Return ``raw`` as SMTP sends it: CRLF line ends, dot-stuffed, ending in ``CRLF.CRLF``."""
    data = _EOL.sub(b"\r\n", raw)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


class SmtpTransport:
    """Delivers through an SMTP relay with :mod:`smtplib`, reusing one connection.

    When the relay has closed the connection meanwhile (``MAIL FROM`` fails or answers 421), one
    fresh connection is opened and ``MAIL FROM`` sent again: nothing of the message had left yet.
    Several recipients: when some get a 5xx at ``RCPT TO`` and others are accepted, the message is
    delivered to the accepted ones and :class:`RecipientsRefusedError` names the refused ones (its
    ``delivered`` the others: do not send to them again). A 4xx for any recipient aborts the whole
    transaction with TransientDeliveryError, so a retry cannot deliver twice.
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        *,
        username: str | None,
        password: str | None,
        timeout: float,
        local_hostname: str | None = None,
    ) -> None:
        """Remember the relay's settings; the first :meth:`deliver` connects.

        Raises:
            ConfigError: a username is set without a password.

        """
        if username is not None and password is None:
            raise ConfigError("[smtp] username is set but no password_env or password_file")
        self._host, self._port, self._security = host, port, security
        self._username, self._password = username, password or ""
        self._timeout, self._local_hostname = timeout, local_hostname
        self._where = f"{host}:{port}"
        self._conn: smtplib.SMTP | None = None

    def deliver(self, envelope: Envelope) -> None:
        """Send one envelope through the relay.

        Raises:
            TransientDeliveryError: a 4xx, or the connection failed before the data was sent.
            DeliveryUncertainError: the data was sent, then the reply was lost.
            RecipientsRefusedError: recipients were refused with a 5xx (the others got it).
            PermanentDeliveryError: a 5xx to the message itself.
            SenderRefusedError: the relay refuses us (authentication, quota, TLS, MAIL FROM).

        """
        payload = _wire(envelope.raw)
        conn = self._begin(envelope, len(payload))
        data_sent = False
        try:
            accepted, refused = self._recipients(conn, envelope)
            code, text = conn.docmd("DATA")
            if code != 354:
                raise classify_reply("DATA", code, _reply_text(text), self._where)
            # smtplib's data() would hide whether the payload had left when the connection dies.
            conn.send(payload)
            data_sent = True
            code, text = conn.getreply()
        except OSError as exc:
            self._drop()
            if data_sent:
                lost = f"{self._where}: reply to the data of {envelope.message_id} lost ({exc})"
                raise DeliveryUncertainError(f"{lost}; it may have been delivered") from exc
            raise TransientDeliveryError(f"{self._where}: connection lost: {exc}") from exc
        except MailflowError:
            self._reset()
            raise
        if not 200 <= code < 300:
            raise classify_reply("end of DATA", code, _reply_text(text), self._where)
        if refused:
            message = f"{self._where} refused RCPT TO for {_listing(refused)}; others got it"
            raise RecipientsRefusedError(message, refused, tuple(accepted))

    def close(self) -> None:
        """Say QUIT and close the connection, ignoring a relay that has gone away."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.quit()
        self._drop()

    def _begin(self, envelope: Envelope, size: int) -> smtplib.SMTP:
        """Reuse or open the connection and start a transaction with ``MAIL FROM``."""
        reused = self._conn is not None
        conn = self._conn or self._open()
        self._conn = conn
        try:
            code, raw_text = conn.mail(envelope.sender, self._mail_options(conn, envelope, size))
            text = _reply_text(raw_text)
        except OSError as exc:
            code, text = -1, f"connection lost ({exc})"
        if code in {-1, 421}:
            self._drop()
            if reused:
                return self._begin(envelope, size)
        if code != 250:
            raise classify_reply("MAIL FROM", code, text, self._where)
        return conn

    def _open(self) -> smtplib.SMTP:
        """Connect, greet, start TLS and log in as configured."""
        stage = "greeting"
        conn: smtplib.SMTP | None = None
        try:
            host, port, name, timeout = self._host, self._port, self._local_hostname, self._timeout
            if self._security == "ssl":
                context = ssl.create_default_context()
                conn = smtplib.SMTP_SSL(host, port, name, timeout=timeout, context=context)
            else:
                conn = smtplib.SMTP(host, port, name, timeout)
            stage = "EHLO"
            conn.ehlo_or_helo_if_needed()
            if self._security == "starttls":
                stage = "STARTTLS"
                if not conn.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("relay offers no STARTTLS")
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if self._username is not None:
                stage = "AUTH"
                conn.login(self._username, self._password)
        except OSError as exc:
            if conn is not None:
                conn.close()
            raise self._open_error(stage, exc) from exc
        return conn

    def _open_error(self, stage: str, exc: OSError) -> MailflowError:
        """Map what smtplib or ssl raised while connecting, starting TLS or logging in."""
        if isinstance(exc, smtplib.SMTPResponseException):
            return classify_reply(stage, exc.smtp_code, _reply_text(exc.smtp_error), self._where)
        if isinstance(exc, smtplib.SMTPServerDisconnected | ssl.SSLEOFError):
            return TransientDeliveryError(f"{self._where}: connection lost at {stage}: {exc}")
        if isinstance(exc, smtplib.SMTPException):
            # A missing STARTTLS or AUTH extension, or no AUTH mechanism in common.
            return SenderRefusedError(f"{self._where}: {stage} failed: {exc}")
        if isinstance(exc, ssl.SSLError):
            return SenderRefusedError(f"{self._where}: TLS failed at {stage}: {exc}")
        return TransientDeliveryError(f"cannot connect to {self._where}: {exc}")

    def _mail_options(self, conn: smtplib.SMTP, envelope: Envelope, size: int) -> list[str]:
        options = [f"SIZE={size}"] if conn.has_extn("size") else []
        if not envelope.raw.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in (envelope.sender, *envelope.recipients)):
            if not conn.has_extn("smtputf8"):
                raise PermanentDeliveryError(f"{self._where} offers no SMTPUTF8: non-ASCII address")
            options.append("SMTPUTF8")
        return options

    def _recipients(self, conn: smtplib.SMTP, envelope: Envelope) -> tuple[list[str], Replies]:
        accepted: list[str] = []
        refused: Replies = {}
        deferred: Replies = {}
        for rcpt in envelope.recipients:
            code, raw_text = conn.rcpt(rcpt)
            text = _reply_text(raw_text)
            if code in {250, 251}:
                accepted.append(rcpt)
                continue
            error = classify_reply("RCPT TO", code, text, self._where)
            if isinstance(error, SenderRefusedError):
                raise error
            bucket = deferred if isinstance(error, TransientDeliveryError) else refused
            bucket[rcpt] = (code, text)
        if deferred:
            message = f"{self._where} deferred RCPT TO for {_listing(deferred)}; nothing was sent"
            raise TransientDeliveryError(message)
        if not accepted:
            message = f"{self._where} refused RCPT TO for {_listing(refused)}"
            raise RecipientsRefusedError(message, refused, ())
        return accepted, refused

    def _reset(self) -> None:
        """End an unfinished transaction with RSET, or drop the connection if that fails."""
        with contextlib.suppress(OSError):
            if self._conn is None or self._conn.rset()[0] == 250:
                return
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class MaildirTransport:
    """Writes each message, unchanged, into a Maildir's ``new/`` (for development and tests).

    The file name hashes the Message-ID, sender and recipients, so the same envelope delivered again
    (a retry after a crash) leaves one file. It has no ``:2,`` suffix: Maildir reserves that for
    ``cur/``, where a file a mail client has moved still counts as delivered.
    """

    def __init__(self, path: Path) -> None:
        """Use the Maildir at ``path``; its folders are created on the first delivery."""
        self._path = path

    def deliver(self, envelope: Envelope) -> None:
        """Write the message durably: ``tmp/``, fsync, rename into ``new/``, fsync ``new/``.

        Raises:
            SenderRefusedError: the Maildir cannot be written (permissions, disk full): pause.

        """
        name = self.file_name(envelope)
        tmp, new, cur = (self._path / sub for sub in ("tmp", "new", "cur"))
        try:
            for folder in (tmp, new, cur):
                folder.mkdir(parents=True, exist_ok=True)
            if (new / name).exists() or (cur / name).exists() or any(cur.glob(f"{name}:*")):
                return
            fd, tmp_name = tempfile.mkstemp(dir=tmp, prefix=f"{name}.")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(envelope.raw)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(tmp_name).replace(new / name)
            finally:
                Path(tmp_name).unlink(missing_ok=True)
            directory = os.open(new, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise SenderRefusedError(f"cannot write to Maildir {self._path}: {exc}") from exc

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def file_name(envelope: Envelope) -> str:
        """Return the file name an envelope gets in ``new/``: the same for the same envelope."""
        identity = "\0".join((envelope.message_id, envelope.sender, *envelope.recipients))
        return f"{hashlib.sha256(identity.encode('utf-8', 'surrogateescape')).hexdigest()}.mailflow"


def make_transport(settings: SmtpSettings, maildir: Path, password: str | None) -> Transport:
    """Build the transport ``[smtp]`` asks for (``maildir`` resolved, ``password`` read).

    Raises:
        ConfigError: a username is set without a password.

    """
    if settings.transport == "maildir":
        return MaildirTransport(maildir)
    return SmtpTransport(
        settings.host,
        settings.port,
        settings.security,
        username=settings.username,
        password=password,
        timeout=settings.timeout_seconds,
    )
