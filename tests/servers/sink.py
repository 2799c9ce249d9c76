# Copyright 2026 The mailflow authors
# SPDX-License-Identifier: MIT
"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 in its own thread, recording what arrives.

Use it as a context manager::

    with SmtpSink() as sink:
        transport = SmtpTransport(sink.host, sink.port, "none", ...)
        transport.deliver(envelope)
        assert 1 == len(sink.wait_for(1))

Tests program failures by setting attributes between deliveries: :attr:`SmtpSink.refuse_rcpt`,
:attr:`SmtpSink.fail_data_once`, :attr:`SmtpSink.drop_after_data`,
:attr:`SmtpSink.delay_data_reply` and :attr:`SmtpSink.require_auth`.

AUTH is advertised on the plain connection (``auth_require_tls=False``) and enforced by the
``MAIL`` hook rather than by aiosmtpd's ``auth_required=True``: that flag makes aiosmtpd emit a
``UserWarning`` ("Requiring AUTH while not requiring TLS ...") from the server thread, which the
suite's ``filterwarnings = error`` would turn into a failed start.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

if TYPE_CHECKING:
    from types import TracebackType

HOST = "127.0.0.1"
OK = "250 OK"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
_START_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the sink received it.

    Attributes:
        mail_from: the ``MAIL FROM`` address ("" for ``<>``).
        rcpt_tos: the accepted ``RCPT TO`` addresses, in order.
        data: the message bytes after dot-unstuffing, without the final ``.CRLF``.

    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


class SmtpSink:
    """An aiosmtpd server that records messages and fails on request.

    Attributes:
        refuse_rcpt: address (any case) -> the full reply to give at ``RCPT TO``,
            e.g. ``"550 5.1.1 no such user"``.
        fail_data_once: the reply to give after the next message's data instead of
            ``250``; cleared once used. Nothing is recorded for that message.
        drop_after_data: record each message, then close the connection without replying.
        delay_data_reply: seconds to wait after recording a message before replying ``250``.
        require_auth: ``(user, password)`` that must log in before ``MAIL FROM``, or None.
        host: the address the server listens on.
        port: the port it listens on, chosen free at :meth:`start`.

    """

    def __init__(self, *, require_auth: tuple[str, str] | None = None, idle_timeout: float = 300.0) -> None:
        """Prepare a sink; :meth:`start` (or ``with``) runs it.

        Args:
            require_auth: see :attr:`require_auth`.
            idle_timeout: seconds after which the server closes an idle connection.

        """
        self.refuse_rcpt: dict[str, str] = {}
        self.fail_data_once: str | None = None
        self.drop_after_data = False
        self.delay_data_reply = 0.0
        self.require_auth = require_auth
        self.host = HOST
        self.port = 0
        self._idle_timeout = idle_timeout
        self._changed = threading.Condition()
        self._messages: list[Received] = []
        self._connections = 0
        self._controller: Controller | None = None

    def start(self) -> None:
        """Start the server thread on a free port.

        Raises:
            OSError: no free port could be bound after a few attempts.

        """
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            controller = Controller(
                _Handler(self),
                hostname=HOST,
                port=port,
                server_hostname="sink.localhost",
                authenticator=self._authenticate,
                auth_require_tls=False,
                timeout=self._idle_timeout,
            )
            try:
                controller.start()
            except OSError as exc:
                # Another process took the port between probing and binding: try another.
                if exc.errno != errno.EADDRINUSE or attempt == _START_ATTEMPTS:
                    raise
                continue
            self._controller = controller
            self.port = port
            return

    def stop(self) -> None:
        """Stop the server thread; connections still open are cut."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        """Start the sink."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the sink."""
        self.stop()

    @property
    def connection_count(self) -> int:
        """How many SMTP sessions greeted the server with EHLO since it started."""
        with self._changed:
            return self._connections

    def messages(self) -> list[Received]:
        """Return a copy of every message received so far, oldest first."""
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``count`` messages have arrived and return them all.

        Raises:
            TimeoutError: fewer than ``count`` arrived within ``timeout`` seconds.

        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"expected {count} messages within {timeout}s, got {len(self._messages)}")
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far (the connection count stays)."""
        with self._changed:
            self._messages.clear()

    def _record(self, message: Received) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def _count_connection(self) -> None:
        with self._changed:
            self._connections += 1

    def _take_data_failure(self) -> str | None:
        with self._changed:
            reply, self.fail_data_once = self.fail_data_once, None
            return reply

    def _authenticate(
        self,
        _server: SMTP,
        _session: Session,
        _envelope: Envelope,
        _mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        expected = self.require_auth
        if expected is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given = (auth_data.login.decode(), auth_data.password.decode())
        return AuthResult(success=given == expected, handled=False)


class _Handler:
    """The aiosmtpd hooks; each returns the reply the server sends.

    aiosmtpd passes hook arguments by position, so unused ones carry a leading underscore.
    """

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_EHLO(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self,
        _server: SMTP,
        session: Session,
        _envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # With a five-argument EHLO hook aiosmtpd leaves recording the client's name to us.
        session.host_name = hostname
        self._sink._count_connection()
        return responses

    async def handle_MAIL(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self,
        _server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._sink.require_auth is not None and not session.authenticated:
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK

    async def handle_RCPT(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self,
        _server: SMTP,
        _session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusals = {key.lower(): reply for key, reply in self._sink.refuse_rcpt.items()}
        if address.lower() in refusals:
            return refusals[address.lower()]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK

    async def handle_DATA(  # noqa: N802 - aiosmtpd finds hooks by this exact name
        self, server: SMTP, _session: Session, envelope: Envelope
    ) -> str:
        failure = self._sink._take_data_failure()
        if failure is not None:
            return failure
        data = envelope.original_content
        assert isinstance(data, bytes)
        self._sink._record(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), data))
        if self._sink.drop_after_data:
            assert server.transport is not None
            server.transport.close()
            # Closing the connection makes aiosmtpd cancel this coroutine; no reply is sent.
            await asyncio.Event().wait()
        if self._sink.delay_data_reply:
            await asyncio.sleep(self._sink.delay_data_reply)
        return OK


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
