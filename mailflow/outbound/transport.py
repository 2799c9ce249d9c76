# Copyright 2026 The mailflow authors
# SPDX-License-Identifier: MIT
"""Outbound transports: hand one rendered message to an SMTP relay or write it into a Maildir.

A transport delivers an :class:`Envelope` or raises one of the errors the outbox acts on:
``TransientDeliveryError`` (4xx, connection refused or reset, a timeout before the data was sent:
retry later); ``DeliveryUncertainError`` (data sent, final reply lost: it may have arrived; retry
with the same Message-ID); ``PermanentDeliveryError`` (a 5xx to this message; only its subclass
:class:`RecipientsRefusedError`, which names the refused addresses, should suppress addresses);
``SenderRefusedError`` (the relay refuses *us*: authentication, 5xx to ``MAIL FROM``, sending quota,
TLS; every message would fail alike, so the queue pauses and alerts).
Transports are not thread-safe: use one per sending thread.
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
from typing import TYPE_CHECKING, Literal, Protocol

from mailflow.errors import (
    ConfigError,
    DeliveryUncertainError,
    MailflowError,
    PermanentDeliveryError,
    SenderRefusedError,
    TransientDeliveryError,
)

if TYPE_CHECKING:
    from mailflow.config import SmtpSettings

Security = Literal["ssl", "starttls", "none"]

_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")
# Stages before RCPT concern the sender: a 5xx there refuses us, not a recipient.
_SENDER_STAGES = frozenset({"greeting", "EHLO", "STARTTLS", "AUTH", "MAIL FROM"})
# Enhanced status codes (RFC 3463 and the big relays' own) that refuse the sender at any stage:
# authentication required/invalid/too weak, encryption required, sending quota, send-as denied,
# and Microsoft 365's "client not authenticated" and "traffic not accepted from this IP".
_SENDER_STATUS = frozenset(
    {"5.7.0", "5.7.8", "5.7.9", "5.7.11", "5.4.5", "5.7.57", "5.7.60", "5.7.708"}
)
_SENDER_WORDS = ("sending quota", "submissionquota", "submission quota", "sendasdenied")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message to deliver.

    Attributes:
        sender: the envelope sender (``MAIL FROM``); "" for the null reverse-path ``<>``.
        recipients: the envelope recipients (``RCPT TO``): at least one, normally exactly one.
        message_id: the Message-ID fixed when the message was queued.
        raw: the complete rendered RFC 5322 message. Transports never change it; SMTP only
            applies the wire encoding (CRLF line ends, dot-stuffing).

    """

    sender: str
    recipients: tuple[str, ...]
    message_id: str
    raw: bytes

    def __post_init__(self) -> None:
        """Refuse an envelope without recipients or with CR, LF or NUL in an address.

        Such characters would break or inject SMTP commands.
        """
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")
        for address in (self.sender, *self.recipients):
            if any(char in address for char in "\r\n\0"):
                raise ValueError(f"envelope address {address!r} contains a line break or NUL")


class Transport(Protocol):
    """Delivers envelopes; see the module docstring for the errors it raises."""

    def deliver(self, envelope: Envelope) -> None:
        """Deliver one envelope or raise a delivery error saying what happened."""
        ...

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""
        ...


class RecipientsRefusedError(PermanentDeliveryError):
    """The relay refused some or all recipients at ``RCPT TO`` with a 5xx.

    Attributes:
        refused: each refused address with the server's code and text.
        delivered: the recipients that accepted the message (empty when all were refused).

    """

    def __init__(
        self, message: str, refused: dict[str, tuple[int, str]], delivered: tuple[str, ...]
    ) -> None:
        """Keep the refused and delivered recipients beside the message."""
        super().__init__(message)
        self.refused = refused
        self.delivered = delivered


def classify_reply(stage: str, code: int, text: str, where: str) -> MailflowError:
    """Turn a failed SMTP reply into the delivery error the outbox acts on.

    ``stage`` is the command that failed (``greeting``, ``EHLO``, ``STARTTLS``, ``AUTH``,
    ``MAIL FROM``, ``RCPT TO``, ``DATA``, ``end of DATA``); ``where`` is the relay's ``host:port``.

    Returns:
        SenderRefusedError for a 5xx before ``RCPT TO`` or one whose status refuses the sender
        (authentication, sending quota, relaying denied); TransientDeliveryError for a 4xx or an
        unexpected code (-1: unreadable); PermanentDeliveryError for any other 5xx.

    """
    message = f"{where} refused {stage}: {code} {text}".rstrip()
    if not 500 <= code < 600:
        return TransientDeliveryError(message)
    match = _ENHANCED.match(text)
    status, lowered = (match.group(1) if match else ""), text.lower()
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


def _listing(replies: dict[str, tuple[int, str]]) -> str:
    return "; ".join(f"<{rcpt}>: {code} {text}" for rcpt, (code, text) in replies.items())


def _wire(raw: bytes) -> bytes:
    """Return ``raw`` as SMTP sends it: CRLF line ends, dot-stuffed, ending in ``CRLF.CRLF``."""
    data = _EOL.sub(b"\r\n", raw)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


class SmtpTransport:
    """Delivers through an SMTP relay with :mod:`smtplib`, keeping one connection open.

    The connection is reused across :meth:`deliver` calls. When the relay has closed it meanwhile
    (``MAIL FROM`` fails or answers 421), one fresh connection is opened and ``MAIL FROM`` sent
    again, which is safe because nothing of the message had been sent.

    Several recipients: when some get a 5xx at ``RCPT TO`` and others are accepted, the message is
    delivered to the accepted ones and :class:`RecipientsRefusedError` names the refused ones
    (its ``delivered`` names the others: do not send to them again). A 4xx for any recipient
    aborts the transaction with TransientDeliveryError, so a retry cannot deliver twice.
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
                raise DeliveryUncertainError(
                    f"{self._where}: connection lost after the data of {envelope.message_id} was"
                    f" sent, before the reply ({exc}); it may have been delivered"
                ) from exc
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
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.quit()
            conn.close()

    def _begin(self, envelope: Envelope, size: int) -> smtplib.SMTP:
        """Reuse or open the connection and start a transaction with ``MAIL FROM``."""
        reused = self._conn is not None
        conn = self._conn or self._open()
        self._conn = conn
        options = self._mail_options(conn, envelope, size)
        try:
            code, raw_text = conn.mail(envelope.sender, options)
            text = _reply_text(raw_text)
        except OSError as exc:
            code, text = -1, str(exc)
        if code == 250:
            return conn
        if code in {-1, 421}:
            self._drop()
            if reused:
                return self._begin(envelope, size)
            raise TransientDeliveryError(f"{self._where}: connection lost at MAIL FROM: {text}")
        raise classify_reply("MAIL FROM", code, text, self._where)

    def _open(self) -> smtplib.SMTP:
        """Connect, greet, start TLS and log in as configured."""
        stage, conn = "greeting", None
        try:
            conn = self._connect()
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

    def _connect(self) -> smtplib.SMTP:
        if self._security == "ssl":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(
                self._host, self._port, self._local_hostname, timeout=self._timeout, context=context
            )
        return smtplib.SMTP(self._host, self._port, self._local_hostname, self._timeout)

    def _open_error(self, stage: str, exc: OSError) -> MailflowError:
        """Map what smtplib or ssl raised while connecting, starting TLS or logging in."""
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return SenderRefusedError(f"{self._where}: {exc} ({stage})")
        if isinstance(exc, smtplib.SMTPResponseException):
            return classify_reply(stage, exc.smtp_code, _reply_text(exc.smtp_error), self._where)
        if isinstance(exc, smtplib.SMTPServerDisconnected | ssl.SSLEOFError):
            return TransientDeliveryError(f"{self._where}: connection lost at {stage}: {exc}")
        if isinstance(exc, smtplib.SMTPException):
            # smtplib raises the bare class when no AUTH mechanism matches.
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

    def _recipients(
        self, conn: smtplib.SMTP, envelope: Envelope
    ) -> tuple[list[str], dict[str, tuple[int, str]]]:
        accepted: list[str] = []
        refused: dict[str, tuple[int, str]] = {}
        deferred: dict[str, tuple[int, str]] = {}
        for rcpt in envelope.recipients:
            code, raw_text = conn.rcpt(rcpt)
            text = _reply_text(raw_text)
            if code in {250, 251}:
                accepted.append(rcpt)
                continue
            error = classify_reply("RCPT TO", code, text, self._where)
            if isinstance(error, SenderRefusedError):
                raise error
            (deferred if isinstance(error, TransientDeliveryError) else refused)[rcpt] = (
                code,
                text,
            )
        if deferred:
            message = f"{self._where} deferred RCPT TO for {_listing(deferred)}; nothing was sent"
            raise TransientDeliveryError(message)
        if not accepted:
            message = f"{self._where} refused RCPT TO for {_listing(refused)}"
            raise RecipientsRefusedError(message, refused, ())
        return accepted, refused

    def _reset(self) -> None:
        """End an unfinished transaction with RSET, or drop the connection if that fails."""
        if self._conn is not None:
            try:
                code, _ = self._conn.rset()
            except OSError:
                code = -1
            if code != 250:
                self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class MaildirTransport:
    """Writes each message into a Maildir's ``new/`` folder (for development and tests).

    The file name is a hash of the Message-ID, sender and recipients, so delivering the same
    envelope again (a retry after a crash) leaves exactly one file. The name carries no ``:2,``
    info suffix because Maildir reserves that for ``cur/``; a file a mail client has moved to
    ``cur/`` still counts as delivered. ``raw`` is written unchanged.
    """

    def __init__(self, path: Path) -> None:
        """Use the Maildir at ``path``; its folders are created on the first delivery."""
        self._path = path

    def deliver(self, envelope: Envelope) -> None:
        """Write the message durably: ``tmp/``, fsync, rename into ``new/``, fsync ``new/``.

        Raises:
            SenderRefusedError: the Maildir cannot be written (permissions, disk full); every
                message would fail alike, so the queue should pause.

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
    """Build the transport ``[smtp]`` asks for.

    Args:
        settings: the ``[smtp]`` section.
        maildir: the Maildir path, already resolved against the config folder.
        password: the relay password resolved from ``password_env``/``password_file``.

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
