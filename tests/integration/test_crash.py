"""A crash at any moment loses nothing and answers nothing twice: real processes killed with SIGKILL."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from mailflow.app.runtime import build_runtime
from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.store.schema import OutboxMessage, Request
from mailflow.testing import DEMO_REGISTRY, request_mail, write_config

ROOT = Path(__file__).resolve().parents[2]
COUNT = 150


def _mailflow(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "mailflow", "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if ready():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=30)


def _children(pid: int) -> list[int]:
    """The process's children, from /proc (none once it is gone)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _json(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert 0 == main(["--config", str(config), *args, "--json"])
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def prepared(tmp_path: Path, database_url: str) -> tuple[Path, list[Path]]:
    """A service with the demo registry and COUNT join requests from distinct senders written to files."""
    config = write_config(tmp_path, database_url)
    registry = tmp_path / "registry.csv"
    registry.write_text(DEMO_REGISTRY, encoding="utf-8")
    assert 0 == main(["--config", str(config), "init"])
    assert 0 == main(["--config", str(config), "org", "import", str(registry)])
    folder = tmp_path / "in"
    folder.mkdir()
    files = []
    for i in range(COUNT):
        path = folder / f"{i:04}.eml"
        path.write_bytes(request_mail(f"user{i}@ghent.example", "JOIN circular", "Could Ghent join?"))
        files.append(path)
    return config, files


def test_ingest_killed_midway_then_rerun_processes_each_message_once(
    prepared: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
):
    """SIGKILL during ingest, then the same files again: one request and one acknowledgement per sender.

    Ingest of this many files has a helper process; it ends with the killed one (an orphan would hold the
    killed process's database connection, and on PostgreSQL its transaction's locks, open).
    """
    config, files = prepared
    runtime = build_runtime(load_settings(config))
    helpers: list[int] = []

    def a_third_processed() -> bool:
        with runtime.sessions() as session:
            done = session.scalar(select(func.count(Request.id)))
        helpers[:] = _children(process.pid)
        return (done or 0) >= COUNT // 3

    process = _mailflow(config, "ingest", *map(str, files))
    try:
        _kill_when(process, a_third_processed)
    finally:
        runtime.engine.dispose()
    assert -signal.SIGKILL == process.returncode, "ingest finished before it could be killed; raise COUNT"
    assert 1 == len(helpers), "ingest of many files on two cores starts one helper process"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{helpers[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{helpers[0]}").exists(), "the helper outlived the killed ingest"

    assert 0 == main(["--config", str(config), "ingest", *map(str, files)])
    requests = _json(config, capsys, "requests")
    assert COUNT == len(requests)
    assert {"pending_approval"} == {r["state"] for r in requests}
    acks = Counter(row["to"] for row in _json(config, capsys, "outbox") if row["kind"] == "acknowledge")
    assert COUNT == len(acks)
    assert {1} == set(acks.values())


def test_sender_killed_midway_sends_each_message_once(
    prepared: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]
):
    """SIGKILL during `send --once` to the Maildir, then again: every queued mail is written exactly once."""
    config, files = prepared
    assert 0 == main(["--config", str(config), "ingest", *map(str, files)])
    queued = _json(config, capsys, "outbox")
    sent = config.parent / "sent" / "new"
    process = _mailflow(config, "send", "--once")
    _kill_when(process, lambda: sent.is_dir() and sum(1 for _ in sent.iterdir()) >= len(queued) // 3)
    assert -signal.SIGKILL == process.returncode, "send finished before it could be killed; raise COUNT"
    # The killed sender's lease on the row it held runs out (here: is moved into the past, as five
    # minutes passing would); a later run takes the row again, with the same Message-ID.
    runtime = build_runtime(load_settings(config))
    try:
        with runtime.sessions.begin() as session:
            held = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.state == "sending")
                .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC))
            )
            assert held.rowcount in {0, 1}  # type: ignore[attr-defined]
    finally:
        runtime.engine.dispose()
    assert 0 == main(["--config", str(config), "send", "--once"])
    capsys.readouterr()
    box = mailbox.Maildir(config.parent / "sent", create=False)
    ids = Counter(box.get_message(key)["Message-ID"] for key in box.iterkeys())
    assert {f"<{row['message_id']}>" for row in queued} == set(ids)
    assert {1} == set(ids.values())
