"""A private Dovecot instance for the test suite, on 127.0.0.1 with its own config and Maildir.

The system's Dovecot service is never touched: this runs ``dovecot -F -c <conf>`` from a temporary
directory with its own ``base_dir``, log file and passwd-file user. The test user gets uid 5000
because Dovecot refuses mail access for uid 0, and everything lives under ``/tmp/dcXXXX`` (mode
0755) because pytest's ``tmp_path`` sits under a 0700 directory that uid 5000 cannot traverse and
Unix socket paths are limited to 107 bytes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import imapclient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from types import TracebackType

MAIL_UID = 5000
"""The uid and gid the test user's mail belongs to (no passwd entry needed)."""

_START_TIMEOUT = 5.0
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailflow-test-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_plugins =
{capability}
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""

_SSL_OFF = "ssl = no\n"
_SSL_ON = "ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem\n"


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _live_members(pgid: int) -> list[int]:
    """Return the pids in process group ``pgid`` that are still running (not zombies)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


class DovecotServer:
    """A real Dovecot IMAP server on 127.0.0.1 with one user, for tests.

    Args:
        username: the test user's login.
        password: the test user's password (``{PLAIN}`` in the passwd-file); None makes a random one.
        tls: also offer STARTTLS on :attr:`port` and implicit TLS on :attr:`tls_port`, with a
            self-signed certificate for ``127.0.0.1`` written to :attr:`ca_file` at start.
        imap_capability: overrides Dovecot's ``imap_capability`` (e.g. ``"IMAP4rev1 IDLE"``) to
            imitate servers without MOVE or UIDPLUS; None keeps Dovecot's own list.

    Attributes:
        host: always ``127.0.0.1``.
        port: the plain (and STARTTLS) IMAP port, chosen free at construction and kept on restart.
        tls_port: the implicit-TLS port when ``tls`` is set, else 0.
        ca_file: the self-signed certificate to trust when ``tls`` is set, else None.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        username: str = "mailflow",
        password: str | None = None,
        tls: bool = False,
        imap_capability: str | None = None,
    ) -> None:
        """Choose ports; nothing runs until :meth:`start`."""
        self.username = username
        self.password = password or secrets.token_hex(8)
        self.port = _free_port()
        self.tls_port = _free_port() if tls else 0
        self.ca_file: Path | None = None
        self._tls = tls
        self._imap_capability = imap_capability
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server and remove its files."""
        self.stop()

    @property
    def log_file(self) -> Path:
        """Dovecot's log file (useful when a test fails)."""
        if self._root is None:
            raise RuntimeError("the Dovecot test server is not started")
        return self._root / "dovecot.log"

    def start(self) -> None:
        """Write the config, start ``dovecot -F`` and wait until the test user can log in.

        Raises:
            RuntimeError: dovecot is not installed, exited, or did not accept a login in time.
        """
        if self._process is not None:
            return
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd")
        if self._root is None:
            self._root = self._prepare()
        self._launch()

    def restart(self) -> None:
        """Kill the server, dropping its connections, and start it again with the same data."""
        self._kill()
        self._launch()

    def stop(self) -> None:
        """Kill the server's whole process tree and remove its temporary directory."""
        self._kill()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def deliver(
        self,
        raw: bytes,
        mailbox: str = "INBOX",
        *,
        msg_time: datetime | None = None,
        flags: tuple[str, ...] = (),
    ) -> int:
        """APPEND ``raw`` to ``mailbox`` (created when missing) and return its UID.

        Args:
            raw: the message.
            mailbox: where to put it.
            msg_time: its INTERNALDATE (timezone-aware); None lets the server use now.
            flags: flags to set, e.g. ``imapclient.SEEN``.
        """
        with self.client() as client:
            if not client.folder_exists(mailbox):
                client.create_folder(mailbox)
            response = client.append(mailbox, raw, flags=flags, msg_time=msg_time)
            match = _APPENDUID.search(response)
            if match is not None:
                return int(match.group(1))
            client.select_folder(mailbox, readonly=True)
            return int(max(client.search("ALL")))

    def list_uids(self, mailbox: str = "INBOX") -> list[int]:
        """Return the UIDs in ``mailbox``, ascending."""
        with self.client() as client:
            client.select_folder(mailbox, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def fetch_all(self, mailbox: str = "INBOX") -> list[bytes]:
        """Return every message in ``mailbox`` in UID order, without setting the Seen flag."""
        with self.client() as client:
            client.select_folder(mailbox, readonly=True)
            data = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
            return [data[uid][b"BODY[]"] for uid in sorted(data)]

    def flags(self, mailbox: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """Return each message's flags in ``mailbox`` by UID."""
        with self.client() as client:
            client.select_folder(mailbox, readonly=True)
            flags = client.get_flags(client.search("ALL"))
            return {int(uid): tuple(values) for uid, values in flags.items()}

    def mailboxes(self) -> list[str]:
        """Return the names of all mailboxes, sorted."""
        with self.client() as client:
            return sorted(str(name) for _flags, _sep, name in client.list_folders())

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        """Return the UIDVALIDITY of ``mailbox``."""
        with self.client() as client:
            status = client.folder_status(mailbox, ["UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])

    def delete_mailbox(self, mailbox: str) -> None:
        """Delete ``mailbox`` and its messages (not INBOX)."""
        with self.client() as client:
            client.delete_folder(mailbox)

    def reset(self) -> None:
        """Empty INBOX and delete every other mailbox, so tests can share one server."""
        with self.client() as client:
            names = [str(name) for _flags, _sep, name in client.list_folders()]
            for name in sorted(names, key=len, reverse=True):
                if name.upper() != "INBOX":
                    client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()
            client.close_folder()

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """Yield an ``imapclient.IMAPClient`` logged in as the test user (plain, no TLS)."""
        client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def _prepare(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="dc", dir="/tmp"))
        root.chmod(0o755)
        for name in ("run", "state", "home"):
            (root / name).mkdir()
        os.chown(root / "home", MAIL_UID, MAIL_UID)
        (root / "passwd").write_text(
            f"{self.username}:{{PLAIN}}{self.password}:{MAIL_UID}:{MAIL_UID}::{root / 'home'}\n",
            encoding="utf-8",
        )
        ssl_lines = _SSL_OFF
        if self._tls:
            self._make_certificate(root)
            ssl_lines = _SSL_ON.format(root=root)
        capability = f"imap_capability = {self._imap_capability}" if self._imap_capability else ""
        config = _CONFIG.format(root=root, port=self.port, tls_port=self.tls_port, capability=capability)
        (root / "dovecot.conf").write_text(ssl_lines + config, encoding="utf-8")
        return root

    def _make_certificate(self, root: Path) -> None:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(root / "key.pem"),
                "-out",
                str(root / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        self.ca_file = root / "cert.pem"

    def _launch(self) -> None:
        assert self._root is not None
        with (self._root / "stdout.log").open("ab") as output:
            self._process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self._root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise

    def _wait_ready(self) -> None:
        assert self._root is not None
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        penalty_removed = False
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self._process.returncode}: {self._log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
                if not penalty_removed:
                    # Dovecot delays every later login from an address by 2-15 s after one failed
                    # login; without this socket the auth process cannot ask anvil for a penalty.
                    (self._root / "run" / "anvil-auth-penalty").unlink(missing_ok=True)
                    penalty_removed = True
                with self.client():
                    return
            except (OSError, imapclient.exceptions.IMAPClientError):
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not accept a login within {_START_TIMEOUT} s: {self._log()}")

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # Dovecot forks its children into the new session's process group: kill them all at once.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._wait_group_gone(process.pid)

    @staticmethod
    def _wait_group_gone(pgid: int) -> None:
        # Killed children are reparented to init, which may reap them late; a zombie holds no
        # sockets, so waiting until every member has exited or is a zombie frees the ports.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _live_members(pgid):
            time.sleep(0.01)

    def _log(self) -> str:
        if self._root is None:
            return ""
        parts = []
        for name in ("stdout.log", "dovecot.log"):
            path = self._root / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace")[-2000:])
        return "\n".join(parts)
