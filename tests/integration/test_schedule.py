"""``tick``: meeting reminders, the facilitator's summary and the meetings-a-year reminder, each sent once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailflow.app import meeting_ops
from mailflow.app.runtime import Runtime
from mailflow.app.schedule import tick
from mailflow.cli import main
from mailflow.store.schema import Contact, Group, Organisation, OutboxMessage
from tests.conftest import Clock, seat

ROOT = Path(__file__).resolve().parents[2]
START = "2027-03-12T14:00"  # Europe/Brussels, CET: 13:00 UTC
EVE = datetime(2027, 3, 11, 15, 0, tzinfo=UTC)  # within 24 h of the start


def _group(runtime: Runtime, members: int, facilitator: bool = True) -> list[str]:
    """Make circular active with ``members`` contacts of participant organisations (the first facilitates)."""
    emails = [f"member{i}@ghent.example" for i in range(members)]
    with runtime.sessions.begin() as session:
        group = session.scalars(select(Group).where(Group.slug == "circular")).one()
        ghent = session.scalars(select(Organisation).where(Organisation.name == "City of Ghent")).one()
        now = runtime.clock()
        for index, email in enumerate(emails):
            contact = Contact(email=email, name=f"Member {index}", organisation_id=ghent.id, created_at=now)
            session.add(contact)
            session.flush()
            seat(session, group, contact, "facilitator" if facilitator and index == 0 else "member", now)
        group.status, group.activated_at = "active", now
    return emails


def _schedule(runtime: Runtime, start: str = START) -> int:
    args = meeting_ops.ScheduleArgs(
        group="circular", start=start, duration=90, kind="web", url="https://meet.example/c"
    )
    return meeting_ops.schedule(runtime, args)


def _outbox(runtime: Runtime, kind: str) -> list[OutboxMessage]:
    with runtime.sessions() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def test_each_attendee_is_reminded_once_before_the_meeting(runtime: Runtime):
    """Inside the reminder window every invited member gets one reminder; ticking again sends none."""
    emails = _group(runtime, 4)
    _schedule(runtime)
    early = tick(runtime, EVE - timedelta(days=2))
    assert 0 == early.queued["meeting_reminders"]

    first = tick(runtime, EVE)
    second = tick(runtime, EVE + timedelta(hours=1))

    assert (4, 0) == (first.queued["meeting_reminders"], first.already["meeting_reminders"])
    assert (0, 4) == (second.queued["meeting_reminders"], second.already["meeting_reminders"])
    assert sorted(emails) == sorted(row.to_addr for row in _outbox(runtime, "meeting_reminder"))


def test_a_member_who_declined_is_not_reminded_and_the_facilitator_sees_who_comes(runtime: Runtime):
    """The summary lists the answers; a declined member gets no reminder."""
    emails = _group(runtime, 3)
    meeting_id = _schedule(runtime)
    with runtime.sessions.begin() as session:
        from mailflow.store.schema import Attendance  # noqa: PLC0415

        row = session.scalars(
            select(Attendance).where(Attendance.meeting_id == meeting_id, Attendance.email == emails[2])
        ).one()
        row.partstat = "DECLINED"

    tick(runtime, EVE)

    assert sorted(emails[:2]) == sorted(row.to_addr for row in _outbox(runtime, "meeting_reminder"))
    [summary] = _outbox(runtime, "meeting_summary")
    assert emails[0] == summary.to_addr  # the facilitator
    assert "0 yes, 1 no" in summary.subject
    assert emails[2].encode() in summary.raw


def test_a_moved_meeting_is_reminded_again(runtime: Runtime):
    """The reminder is keyed by the start: after a move, attendees are reminded of the new time."""
    _group(runtime, 2)
    meeting_id = _schedule(runtime)
    tick(runtime, EVE)
    meeting_ops.update(runtime, meeting_id, start="2027-03-12T16:00")
    again = tick(runtime, EVE + timedelta(hours=2))
    assert 2 == again.queued["meeting_reminders"]
    assert 4 == len(_outbox(runtime, "meeting_reminder"))


def test_facilitator_and_secretariat_hear_of_too_few_meetings_once_a_quarter(runtime: Runtime, clock: Clock):
    """From the second quarter of the group's year, once a quarter, while it has fewer than two meetings."""
    emails = _group(runtime, 3)
    activated = clock.now
    assert 0 == tick(runtime, activated + timedelta(days=80)).queued["meetings_due"]

    second_quarter = tick(runtime, activated + timedelta(days=100))
    again = tick(runtime, activated + timedelta(days=120))

    # The config's food and ict groups are active with no meetings either: the secretariat hears of them too.
    assert 4 == second_quarter.queued["meetings_due"]
    assert (0, 4) == (again.queued["meetings_due"], again.already["meetings_due"])
    [to_facilitator] = _outbox(runtime, "meetings_due")
    [to_secretariat] = [m for m in _outbox(runtime, "meetings_due_secretariat") if "Circular" in m.subject]
    assert emails[0] == to_facilitator.to_addr
    assert runtime.secretariat_address == to_secretariat.to_addr
    assert "0 of 2" in to_facilitator.subject

    clock.now = activated + timedelta(days=130)
    _schedule(runtime, "2027-05-10T10:00")
    _schedule(runtime, "2027-06-10T10:00")
    later = tick(runtime, activated + timedelta(days=200))
    assert 2 == later.queued["meetings_due"]  # food and ict, still without meetings; circular has two
    assert 1 == len(_outbox(runtime, "meetings_due"))


def test_a_group_without_facilitator_is_reported_to_the_secretariat(runtime: Runtime, clock: Clock):
    """With no facilitator to remind, the secretariat alone is told."""
    _group(runtime, 3, facilitator=False)
    tick(runtime, clock.now + timedelta(days=100))
    assert [] == _outbox(runtime, "meetings_due")
    [notice] = [m for m in _outbox(runtime, "meetings_due_secretariat") if "Circular" in m.subject]
    assert b"no facilitator" in notice.raw


def test_a_tick_killed_halfway_and_run_again_reminds_each_attendee_once(runtime: Runtime, config_path: Path):
    """SIGKILL during a real `mailflow tick` of 150 reminders, then a second tick: one reminder each."""
    emails = _group(runtime, 150)
    _schedule(runtime)

    def reminders() -> int:
        with runtime.sessions() as session:
            return (
                session.scalar(
                    select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "meeting_reminder")
                )
                or 0
            )

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "mailflow",
        "--config",
        str(config_path),
        "tick",
        "--now",
        EVE.isoformat(),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and reminders() < 20:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    halfway = reminders()
    assert 0 < halfway < 150, "the tick was to be killed halfway"

    result = tick(runtime, EVE)

    assert 150 - halfway == result.queued["meeting_reminders"]
    counts = Counter(row.to_addr for row in _outbox(runtime, "meeting_reminder"))
    assert set(emails) == set(counts)
    assert {1} == set(counts.values())


def test_tick_command_reports_each_job_and_refuses_a_bad_time(
    runtime: Runtime, config_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`mailflow tick --now` prints one line per job; a time that is not ISO 8601 is one clear error."""
    _group(runtime, 2)
    _schedule(runtime)
    capsys.readouterr()
    assert 0 == main(["--config", str(config_path), "tick", "--now", "2027-03-11T15:00:00+00:00"])
    out = capsys.readouterr().out
    assert "meeting_reminders: 2 queued, 0 already sent" in out.splitlines()
    assert 1 == main(["--config", str(config_path), "tick", "--now", "tomorrow"])
    assert "mailflow: error: --now: 'tomorrow' is not ISO 8601" in capsys.readouterr().err


def test_two_ticks_at_once_remind_each_attendee_once(runtime: Runtime):
    """Two instances ticking at the same moment (two threads here) queue every reminder exactly once."""
    emails = _group(runtime, 150)
    _schedule(runtime)
    results = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(tick(runtime, EVE, jobs=["meeting_reminders"]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert 150 == sum(r.queued["meeting_reminders"] for r in results)
    counts = Counter(row.to_addr for row in _outbox(runtime, "meeting_reminder"))
    assert set(emails) == set(counts)
    assert {1} == set(counts.values())
