"""Benchmark of scheduling a meeting for a large group: N invitations rendered and queued in the outbox.

Each run gets a fresh temp folder and database (a SQLite file, or a new PostgreSQL schema on 127.0.0.1) from
bench/requests.py's ``workspace``. N contacts in N/10 organisations, each an active member of a few bench
groups, are then inserted with SQLAlchemy Core (setup, not timed). Four cases, each queueing one REQUEST per
member: a single web meeting, a weekly series for six months, an update of the single meeting (SEQUENCE 1)
and one occurrence of the series moved. Two modes: ``cli`` runs ``mailflow meeting schedule|update`` as a
subprocess (wall time with start-up, peak RSS); ``inproc`` calls ``mailflow.app.meeting_ops`` in a fresh
Python process (the first call of each case, then the same case again on other groups). Every call's mails
are checked, a sample of them parsed in full. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import math
import os
import pstats
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

from icalendar import Calendar
from sqlalchemy import Engine, create_engine, func, insert, select

from mailflow.app import meeting_ops
from mailflow.app.effects import Mailer
from mailflow.app.meeting_rows import overrides_of
from mailflow.app.meetings import Meetings
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.config import load_settings
from mailflow.core import calendar as cal
from mailflow.core.compose import render
from mailflow.core.plans import CalendarPart, Mail
from mailflow.store.schema import (
    Attendance,
    Contact,
    Group,
    Meeting,
    Membership,
    Organisation,
    OrgDomain,
    OutboxMessage,
)


def _load_requests_bench() -> ModuleType:
    """bench/requests.py, under a name that cannot shadow the PyPI ``requests``."""
    spec = importlib.util.spec_from_file_location("bench_requests", Path(__file__).with_name("requests.py"))
    if spec is None or spec.loader is None:
        raise ImportError("bench/requests.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rq = _load_requests_bench()  # workspace, Children, mailflow, reader, vm_hwm_mib, table, _f

OUTBOX, MEETINGS = OutboxMessage.__table__, Meeting.__table__
TZ, PER_ORG = "Europe/Brussels", 10  # the meetings' zone; contacts per organisation
SAMPLE, STARTUP_RUNS, POLL_SECONDS, STEP_RUNS = 25, 3, 0.005, 3
TARGET_RATE = 500.0  # invitations per second: 500 in under a second
TARGET_PEAK_MIB = rq.TARGET_PEAK_MIB
ROUNDS = 2  # inproc: each case once in a fresh process, then again on two other groups (all warm)
SINGLE = {
    "start": "2027-03-02T14:00",
    "duration": 60,
    "kind": "web",
    "tz": TZ,
    "title": "Quarterly call",
    "url": "https://meet.example/bench/quarterly",
    "dial_in": "+32 2 123 45 67",
    "pin": "4711",
}
SERIES = {
    "start": "2027-03-02T10:00",  # a Tuesday; 27 half-hour meetings, 13.5 h: inside the 16 h budget
    "duration": 30,
    "kind": "web",
    "tz": TZ,
    "title": "Weekly stand-up",
    "url": "https://meet.example/bench/weekly",
    "dial_in": "+32 2 123 45 67",  # the same access as the single meeting: the calendars differ by the RRULE
    "pin": "4711",
    "repeat": "every week for six months",
}
UPDATE = {"start": "2027-03-04T15:00", "url": "https://meet.example/bench/moved"}
MOVE = ("2027-03-16T10:00", "2027-03-17T11:00")  # one occurrence of the series, a day and an hour later


def slugs(index: int) -> tuple[str, str]:
    """The groups of one repetition: one for the single meeting, one for the series (each with a budget)."""
    return f"bench-single-{index}", f"bench-series-{index}"


@dataclass(frozen=True)
class Case:
    """One operation that queues an invitation per member, and what each of those mails must carry."""

    name: str
    kind: str  # outbox kind (template name)
    sequence: int
    vevents: int  # VEVENTs in each calendar: the master, plus one per moved occurrence
    cli: Callable[[dict[str, int], int], list[str]]  # (meeting ids by case, group index) -> arguments
    call: Callable[[Runtime, dict[str, int], int], int]  # the same in process; returns the meeting id
    series: bool
    target: str  # the meeting (by case name) the mails are about


def _options(values: dict[str, Any]) -> list[str]:
    return [x for key, value in values.items() for x in (f"--{key.replace('_', '-')}", str(value))]


def _schedule(values: dict[str, Any], column: int) -> tuple[Callable[..., list[str]], Callable[..., int]]:
    def cli(_: dict[str, int], index: int) -> list[str]:
        return ["meeting", "schedule", slugs(index)[column], *_options(values)]

    def call(runtime: Runtime, _: dict[str, int], index: int) -> int:
        return meeting_ops.schedule(runtime, meeting_ops.ScheduleArgs(group=slugs(index)[column], **values))

    return cli, call


def _update_cli(ids: dict[str, int], _: int) -> list[str]:
    return ["meeting", "update", str(ids["single"]), *_options(UPDATE)]


def _update_call(runtime: Runtime, ids: dict[str, int], _: int) -> int:
    meeting_ops.update(runtime, ids["single"], **UPDATE)
    return ids["single"]


def _move_cli(ids: dict[str, int], _: int) -> list[str]:
    return ["meeting", "update", str(ids["series"]), "--occurrence", MOVE[0], "--start", MOVE[1]]


def _move_call(runtime: Runtime, ids: dict[str, int], _: int) -> int:
    meeting_ops.update(runtime, ids["series"], occurrence=MOVE[0], start=MOVE[1])
    return ids["series"]


CASES = (
    Case("single", "meeting_invitation", 0, 1, *_schedule(SINGLE, 0), series=False, target="single"),
    Case("series", "meeting_invitation", 0, 1, *_schedule(SERIES, 1), series=True, target="series"),
    Case("update", "meeting_updated", 1, 1, _update_cli, _update_call, series=False, target="single"),
    Case("move", "meeting_updated", 1, 2, _move_cli, _move_call, series=True, target="series"),
)


@dataclass
class Run:
    """One case in one mode on one database, over the repetitions: times in s, sizes in bytes, MiB.

    ``cli``: ``walls`` are the processes' wall times, ``startups`` the wall time of the same command for an
    unknown group in the same repetition; in-process time is estimated as their difference. ``inproc``:
    ``firsts`` are the case's calls in fresh processes, ``repeats`` the same case once more in each.
    """

    db: str
    mode: str  # cli, inproc or profile
    case: str
    members: int
    walls: list[float] = field(default_factory=list)
    startups: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    repeats: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # outbox rows each repetition queued
    checked: int = 0  # mails parsed in full (MIME and iCalendar)
    ics_bytes: float | None = None
    mail_bytes: float | None = None
    stamp_span: float | None = None  # last outbox created_at - meeting created_at (schedule cases)
    peak_mib: float = 0.0
    problems: list[str] = field(default_factory=list)
    profile: dict[str, list[float]] = field(default_factory=dict)  # component -> [seconds, calls]
    steps: dict[str, float] = field(default_factory=dict)  # profile mode: steps timed without the profiler

    @property
    def seconds(self) -> list[float]:
        """In-process seconds: the first calls, or the CLI's wall less start-up."""
        if self.mode == "cli":
            return [w - s for w, s in zip(self.walls, self.startups, strict=True)]
        return self.firsts


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# -- setup --------------------------------------------------------------------------------------------------


def member_name(i: int) -> str:
    """Some names need RFC 2047 and iCalendar escaping, as real ones do."""
    return f"Zoë Ångström-Łukasz {i}" if i % 4 == 0 else f"Member {i}"


def populate(url: str, members: int, pairs: int) -> list[str]:
    """N contacts in N/10 organisations, each a member of the 2·pairs bench groups; their addresses."""
    orgs, domains, groups = Organisation.__table__, OrgDomain.__table__, Group.__table__
    contacts, memberships = Contact.__table__, Membership.__table__
    now = datetime.now(UTC)
    names = [f"Bench Authority {k}" for k in range(math.ceil(members / PER_ORG))]
    emails = [f"member{i:05d}@authority{i // PER_ORG}.example" for i in range(members)]
    group_rows = [
        {"slug": slug, "name": f"Bench group {slug}", "aliases": [], "status": "active", "created_at": now}
        for index in range(pairs)
        for slug in slugs(index)
    ]
    group_rows = [row | {"activated_at": now} for row in group_rows]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(groups), group_rows)
            org_rows = [
                {"name": n, "status": "participant", "created_at": now, "updated_at": now} for n in names
            ]
            conn.execute(insert(orgs), org_rows)
            org_ids = dict(
                conn.execute(select(orgs.c.name, orgs.c.id).where(orgs.c.name.like("Bench %"))).all()
            )
            domain_rows = [
                {"organisation_id": org_ids[n], "domain": f"authority{k}.example"}
                for k, n in enumerate(names)
            ]
            conn.execute(insert(domains), domain_rows)
            contact_rows = [
                {"email": e, "name": member_name(i), "organisation_id": org_ids[names[i // PER_ORG]]}
                for i, e in enumerate(emails)
            ]
            conn.execute(insert(contacts), [row | {"created_at": now} for row in contact_rows])
            people = conn.execute(
                select(contacts.c.id, contacts.c.organisation_id).where(contacts.c.email.like("member%"))
            ).all()
            group_ids = conn.execute(select(groups.c.id).where(groups.c.slug.like("bench-%"))).scalars().all()
            base = {"role": "member", "status": "active", "joined_at": now, "left_at": None}
            conn.execute(
                insert(memberships),
                [
                    base | {"group_id": g, "contact_id": c, "organisation_id": o}
                    for g in group_ids
                    for c, o in people
                ],
            )
    finally:
        engine.dispose()
    if len(people) != members or len(group_ids) != 2 * pairs:
        raise RuntimeError(f"set-up: {len(people)} contacts, {len(group_ids)} groups")
    return emails


# -- measuring ----------------------------------------------------------------------------------------------


def timed(children: list[subprocess.Popen[bytes]], cmd: list[str], folder: Path) -> tuple[float, float, str]:
    """Run one process to its end: wall time, peak RSS (VmHWM sampled every 5 ms) and its stdout.

    Raises:
        RuntimeError: the process failed; its stderr is in the message.
    """
    peak, done = [0.0], threading.Event()

    def watch(pid: int) -> None:
        while not done.wait(POLL_SECONDS):
            try:
                peak[0] = rq.vm_hwm_mib(pid)
            except (OSError, IndexError):  # IndexError: a zombie has no VmHWM
                return

    log = folder / "meetings.log"
    start = time.perf_counter()
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=folder, start_new_session=True)
    children.append(proc)
    watcher = threading.Thread(target=watch, args=(proc.pid,), daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate()
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        watcher.join()
    if proc.returncode != 0:
        args = " ".join(a for a in cmd[2:] if not a.startswith("/"))  # no interpreter, no temp paths
        raise RuntimeError(f"`{args}` exited {proc.returncode}: {_tail(log.read_text())}")
    return elapsed, peak[0], out.decode()


def startup_seconds(config: Path, folder: Path) -> float:
    """The median wall time of ``meeting schedule`` for an unknown group.

    The same interpreter start, imports, config, engine, connection and first query as a real run, and no
    work: what a real run's wall time less its in-process work is estimated to be.
    """
    walls = []
    for _ in range(STARTUP_RUNS):
        cmd = rq.mailflow(config, "meeting", "schedule", "no-such-group", *_options(SINGLE))
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, check=False)
        walls.append(time.perf_counter() - start)
        if done.returncode != 1 or "no group" not in done.stderr:
            raise RuntimeError(f"start-up probe: exit {done.returncode}: {_tail(done.stderr)}")
    return statistics.median(walls)


def _tail(text: str) -> str:
    """The last non-empty line of a process's stderr: the error, after any traceback."""
    return next((line for line in reversed(text.splitlines()) if line.strip()), "(nothing on stderr)")


def last_outbox_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(OUTBOX.c.id), 0))).scalar_one())


def _calendar_part(message: EmailMessage) -> tuple[str, bytes, bytes]:
    """The inline text/calendar part's method and bytes, and the invite.ics attachment's bytes."""
    inline = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    attached = [p for p in message.walk() if p.get_filename() == "invite.ics"]
    if len(inline) != 1 or len(attached) != 1:
        raise ValueError(f"{len(inline)} text/calendar parts, {len(attached)} invite.ics attachments")
    body, copy = inline[0].get_payload(decode=True), attached[0].get_payload(decode=True)
    if not isinstance(body, bytes) or not isinstance(copy, bytes):
        raise TypeError("calendar parts without a body")
    return str(inline[0].get_param("method") or ""), body, copy


def check_mail(raw: bytes, to: str, case: Case, uid: str) -> int:
    """Parse one queued mail in full; return its calendar's size. Raises ValueError on what is wrong."""
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    if not isinstance(message, EmailMessage) or message["X-Mailflow"] != case.kind:
        raise ValueError(f"X-Mailflow {message['X-Mailflow']!r}")
    method, ics, copy = _calendar_part(message)
    if method != "REQUEST" or ics != copy:
        raise ValueError(f"method={method!r}, attachment {'equal' if ics == copy else 'differs'}")
    calendar = Calendar.from_ical(ics)
    events = calendar.walk("VEVENT")
    if (
        str(calendar.get("METHOD")) != "REQUEST"
        or len(events) != case.vevents
        or not calendar.walk("VTIMEZONE")
    ):
        raise ValueError(f"METHOD {calendar.get('METHOD')}, {len(events)} VEVENTs, VTIMEZONE or not")
    for event in events:
        attendee = str(event.get("ATTENDEE"))
        if str(event.get("UID")) != uid or int(event.get("SEQUENCE")) != case.sequence:
            raise ValueError(f"UID {event.get('UID')} SEQUENCE {event.get('SEQUENCE')}")
        if attendee != f"mailto:{to}":
            raise ValueError(f"ATTENDEE {attendee} in the mail to {to}")
    if ("RRULE" in events[0]) != case.series:
        raise ValueError("RRULE missing" if case.series else "an RRULE in a single meeting")
    return len(ics)


def verify(
    run: Run, url: str, case: Case, span: tuple[int, int], meeting_id: int, *, emails: Sequence[str]
) -> None:
    """The outbox rows one call queued: one per member, each with its calendar; a sample parsed in full.

    What is found is added to ``run``: the row count, the sizes, and any problem.
    """
    lo, hi = span
    with rq.reader(url) as session:
        rows = session.execute(
            select(OUTBOX.c.kind, OUTBOX.c.to_addr, OUTBOX.c.raw, OUTBOX.c.created_at)
            .where(OUTBOX.c.id > lo, OUTBOX.c.id <= hi)
            .order_by(OUTBOX.c.id)
        ).all()
        uid, created = session.execute(
            select(MEETINGS.c.uid, MEETINGS.c.created_at).where(MEETINGS.c.id == meeting_id)
        ).one()
    run.rows.append(len(rows))
    if len(rows) != len(emails) or sorted(r.to_addr for r in rows) != sorted(emails):
        run.problems.append(f"{len(rows)} mails queued for {len(emails)} members")
    if wrong := sum(r.kind != case.kind for r in rows):
        run.problems.append(f"{wrong} mails not of kind {case.kind}")
    marker = b'Content-Type: text/calendar; charset="UTF-8"; method=REQUEST'
    if missing := sum(marker not in r.raw for r in rows):
        run.problems.append(f"{missing} mails without a text/calendar method=REQUEST part")
    if not rows:
        return
    run.mail_bytes = statistics.mean(len(r.raw) for r in rows)
    sizes = []
    for k in sorted({round(i * (len(rows) - 1) / max(SAMPLE - 1, 1)) for i in range(SAMPLE)}):
        try:
            sizes.append(check_mail(rows[k].raw, rows[k].to_addr, case, uid))
        except (ValueError, TypeError, KeyError) as exc:
            run.problems.append(f"mail to {rows[k].to_addr}: {exc}")
    run.checked += len(sizes)
    run.ics_bytes = statistics.mean(sizes) if sizes else run.ics_bytes
    if case.target == case.name:  # a schedule: the meeting row was written in the same transaction
        run.stamp_span = (max(r.created_at for r in rows) - created).total_seconds()


def run_cli(db: str, members: int, repeat: int) -> list[Run]:
    """Each case as its own ``mailflow meeting …`` process, ``repeat`` times, each after a start-up probe."""
    runs = [Run(db, "cli", c.name, members) for c in CASES]
    with rq.workspace(db) as (folder, url, config, children):
        emails = populate(url, members, repeat)
        engine = create_engine(url)
        try:
            for index in range(repeat):
                startup = startup_seconds(config, folder)
                ids: dict[str, int] = {}
                for case, run in zip(CASES, runs, strict=True):
                    try:
                        lo = last_outbox_id(engine)
                        cmd = rq.mailflow(config, *case.cli(ids, index))
                        wall, peak, out = timed(children, cmd, folder)
                        if case.target == case.name:
                            ids[case.name] = int(out.strip())
                        run.walls.append(wall)
                        run.startups.append(startup)
                        run.peak_mib = max(run.peak_mib, peak)
                        span = (lo, last_outbox_id(engine))
                        verify(run, url, case, span, ids[case.target], emails=emails)
                    except (RuntimeError, KeyError, ValueError) as exc:
                        run.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            engine.dispose()
    return runs


def run_inproc(db: str, members: int, repeat: int, profile: Path | None = None) -> list[Run]:
    """``repeat`` fresh Python processes (this script's --child mode), each calling every case twice.

    With ``profile``, one process and a third round under cProfile; the second round's calls are followed by
    each step of an invitation timed on its own (see ``steps``).
    """
    runs = [Run(db, "inproc" if profile is None else "profile", c.name, members) for c in CASES]
    names = [c.name for c in CASES]
    with rq.workspace(db) as (folder, url, config, children):
        emails = populate(url, members, repeat * (ROUNDS + 1))
        for index in range(repeat):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                str(config),
                "--index",
                str(index),
            ]
            if profile is not None:
                cmd += ["--profile", str(profile / db)]
            _, _, out = timed(children, cmd, folder)
            for call in json.loads(out):
                run, case = runs[names.index(call["case"])], CASES[names.index(call["case"])]
                if call["round"] < ROUNDS:
                    (run.firsts if call["round"] == 0 else run.repeats).append(call["seconds"])
                run.profile = call.get("profile", run.profile)
                run.steps = call.get("steps", run.steps)
                run.peak_mib = max(run.peak_mib, call["peak_mib"])
                if "error" in call:
                    run.problems.append(call["error"])
                    continue
                verify(run, url, case, (call["lo"], call["hi"]), call["meeting_id"], emails=emails)
    return runs


# -- the in-process child -----------------------------------------------------------------------------------

COMPONENTS = {  # name -> (a fragment of the file's path, function names): cumulative time, summed over names
    "total (meeting_ops)": ("mailflow/app/meeting_ops.py", ("schedule", "update")),
    "calendar: cal.invitation": ("mailflow/core/", ("invitation",)),
    "· icalendar to_ical": ("icalendar/cal/component.py", ("to_ical",)),
    "· VTIMEZONE (_vtimezone)": ("mailflow/core/", ("_vtimezone",)),
    "· recurrence expansion (_check_overrides)": ("mailflow/core/", ("_check_overrides",)),
    "mail: compose.render": ("mailflow/core/compose.py", ("render",)),
    "· Jinja Template.render": ("jinja2/environment.py", ("render",)),
    "· Jinja get_template": ("jinja2/environment.py", ("get_template",)),
    "· MIME (build, text_part, base64_part)": (
        "mailflow/core/mime.py",
        ("build", "text_part", "base64_part"),
    ),
    "outbox: Mailer.queue": ("mailflow/app/effects.py", ("queue",)),
    "· suppression SELECT (_suppressed)": ("mailflow/app/effects.py", ("_suppressed",)),
    "attendance SELECT + add (_attend)": ("mailflow/app/", ("_attend",)),
    "template facts (meeting_context)": ("mailflow/core/", ("meeting_context",)),
    "budget check (check_budget)": ("mailflow/app/", ("check_budget",)),
    "ORM flush": ("sqlalchemy/orm/session.py", ("flush",)),
    "commit (DBAPI)": ("sqlalchemy/engine/default.py", ("do_commit",)),
    "SQL: DBAPI execute, all": (
        "sqlalchemy/engine/default.py",
        ("do_execute", "do_executemany", "do_execute_no_params"),
    ),
}


def breakdown(profiler: cProfile.Profile) -> dict[str, list[float]]:
    """Cumulative seconds and calls of the components above (each function counted once, at its top)."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    result = {}
    for name, (fragment, functions) in COMPONENTS.items():
        found = [
            (value[3], value[1])  # (cumulative time, primitive calls)
            for (path, _, function), value in stats.items()
            if fragment in path.replace(os.sep, "/") and function in functions
        ]
        # Several entries of one name (a method and a module function) may nest: the largest stands for all.
        if name.startswith(("· icalendar", "· Jinja Template")):
            found = sorted(found)[-1:]
        result[name] = [sum(f[0] for f in found), sum(f[1] for f in found)]
    return result


def steps(runtime: Runtime, meeting_id: int, kind: str) -> dict[str, float]:
    """Each step of the invitations to one meeting, timed on its own without a profiler (s, all members).

    The same calls as ``Meetings._send_all`` and ``Mailer.queue`` make, on the meeting as a call left it:
    the calendar (``cal.invitation``), the three templates (Jinja), and ``compose.render`` (Jinja, headers
    and MIME); nothing is written.
    """
    now = runtime.clock()
    with runtime.sessions() as session:
        meeting = session.get_one(Meeting, meeting_id)
        meetings = Meetings(session, runtime, now, Mailer(session, runtime, now))
        group = meetings.group_of(meeting)
        core = meetings.core(meeting, group)
        overrides = overrides_of(session, meeting_id)
        context = {**meetings.context(meeting, group, core, overrides), "occurrence": None}
        people = session.execute(
            select(Attendance.email, Contact.name)
            .join(Contact, Contact.id == Attendance.contact_id)
            .where(Attendance.meeting_id == meeting_id, Attendance.occurrence == "", Attendance.invited)
        ).all()
    attendees = [cal.Attendee(email=email, name=name) for email, name in people]
    identity, templates = runtime.identity, runtime.templates
    facts = {
        "network": identity.network,
        "secretariat": identity.secretariat,
        "service_address": identity.address,
        "token": None,
        "reply_address": identity.address,
        **context,
    }

    def calendars() -> list[bytes]:
        return [cal.invitation(core, a, cal.Method.REQUEST, now, overrides) for a in attendees]

    def jinja() -> None:
        for _ in attendees:
            for part in ("subject", "txt", "html"):
                templates.get_template(f"{kind}.{part}.j2").render(facts)

    def mails() -> None:
        for attendee, ics in zip(attendees, ics_list, strict=True):
            mail = Mail(kind, attendee.email, context, calendar=CalendarPart("REQUEST", ics))
            render(templates, mail, identity=identity, message_id=runtime.new_message_id(), date=now)

    ics_list = calendars()
    found = {"members": float(len(attendees))}
    for name, step in (("calendar", calendars), ("jinja", jinja), ("render", mails)):
        found[name] = min(_seconds(step) for _ in range(STEP_RUNS))  # the least disturbed of a few
    return found


def _seconds(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def child(config: Path, index: int, profile: Path | None) -> int:
    """Call each case ROUNDS times (one more under cProfile with ``profile``); print the calls as JSON."""
    runtime = build_runtime(load_settings(config))
    last_outbox_id(runtime.engine)  # connect before timing: a long-running process is connected already
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    calls: list[dict[str, Any]] = []
    rounds = ROUNDS + (profile is not None)
    for rnd in range(rounds):
        ids: dict[str, int] = {}
        profiled = profile is not None and rnd == ROUNDS
        for case in CASES:
            entry: dict[str, Any] = {"case": case.name, "round": rnd, "lo": last_outbox_id(runtime.engine)}
            profiler = cProfile.Profile() if profiled else None
            start = time.perf_counter()
            try:
                if profiler is not None:
                    profiler.enable()
                try:
                    entry["meeting_id"] = case.call(runtime, ids, index * rounds + rnd)
                finally:
                    if profiler is not None:
                        profiler.disable()
            except Exception as exc:  # reported beside the numbers
                entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["seconds"] = time.perf_counter() - start
            if case.target == case.name and "meeting_id" in entry:
                ids[case.name] = entry["meeting_id"]
            entry["hi"], entry["peak_mib"] = last_outbox_id(runtime.engine), rq.vm_hwm_mib(os.getpid())
            if profile is not None and rnd == ROUNDS - 1 and "meeting_id" in entry:
                fastest = min(c["seconds"] for c in calls if c["case"] == case.name and "error" not in c)
                entry["steps"] = steps(runtime, entry["meeting_id"], case.kind)
                entry["steps"]["total"] = min(fastest, entry["seconds"])
            if profiler is not None and profile is not None:
                profiler.dump_stats(profile / f"{case.name}.prof")
                entry["profile"] = breakdown(profiler)
            calls.append(entry)
    runtime.engine.dispose()
    print(json.dumps(calls))
    return 0


# -- report -------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    return rq._f(value, digits)  # noqa: SLF001 - the same number format as requests.py


def verdicts(runs: Sequence[Run]) -> list[list[str]]:
    """Each target beside what was measured (medians), and whether it is met."""
    good = [r for r in runs if not r.problems and r.mode != "profile"]
    rows = []
    label = f"500 invitations in < 1 s, in-process (>= {TARGET_RATE:.0f}/s)"
    for r in good:
        if r.mode == "inproc" and (first := _median(r.firsts)):
            measured = (
                f"{r.db} {r.case}: {r.members:,} in {first:.2f} s (again: {_f(_median(r.repeats), 2)} s)"
            )
            rows.append((label, measured, r.members / first >= TARGET_RATE))
    label = f"the same through the CLI, start-up included (>= {TARGET_RATE:.0f}/s)"
    for r in good:
        if r.mode == "cli" and (wall := _median(r.walls)):
            measured = (
                f"{r.db} {r.case}: {r.members:,} in {wall:.2f} s (start-up {_f(_median(r.startups), 2)} s)"
            )
            rows.append((label, measured, r.members / wall >= TARGET_RATE))
    if peaks := [r for r in good if r.peak_mib]:
        top = max(peaks, key=lambda r: r.peak_mib)
        label = f"peak memory < {TARGET_PEAK_MIB:.0f} MB (MiB here)"
        measured = f"max {top.peak_mib:,.0f} MiB ({top.db} {top.mode} {top.case})"
        rows.append((label, measured, top.peak_mib < TARGET_PEAK_MIB))
    return [[target, measured, "met" if met else "**not met**"] for target, measured, met in rows]


def report(runs: Sequence[Run]) -> str:
    """The Markdown tables: the runs, the profile breakdown when asked, and the targets."""
    head = "db,mode,case,N,wall s,start-up s,in-process s,fastest s,again s,invitations/s,mails queued"
    head += ",ICS bytes,mail bytes,peak MiB,problems"
    rows = []
    for r in (r for r in runs if r.mode != "profile"):
        seconds = _median(r.seconds)
        mails = f"{r.rows[0]:,} x {len(r.rows)}" if len(set(r.rows)) == 1 else ", ".join(map(str, r.rows))
        rows.append(
            f"| {r.db} | {r.mode} | {r.case} | {r.members:,} | {_f(_median(r.walls), 2)} "
            f"| {_f(_median(r.startups), 2)} | {_f(seconds, 2)} | {_f(min(r.seconds, default=None), 2)} "
            f"| {_f(_median(r.repeats), 2)} | {_f(r.members / seconds if seconds and seconds > 0 else None)} "
            f"| {mails} ({r.checked} parsed) | {_f(r.ics_bytes)} | {_f(r.mail_bytes)} | {_f(r.peak_mib)} "
            f"| {_one_line('; '.join(dict.fromkeys(r.problems))) or 'none'} |"
        )
    out = ["## Invitations queued (medians over the repetitions)\n", rq.table(head, rows)]
    for db in dict.fromkeys(r.db for r in runs if r.mode == "profile" and r.profile):
        mine = [r for r in runs if r.db == db and r.mode == "profile" and r.profile]
        lines = [f"| {name} | " + " | ".join(_ms(r, name) for r in mine) + " |" for name in COMPONENTS]
        head = "component: ms per invitation (calls)," + ",".join(r.case for r in mine)
        out += [f"\n## Where the time goes: {db}, repeated call, under cProfile\n", rq.table(head, lines)]
    for db in dict.fromkeys(r.db for r in runs if r.mode == "profile" and r.steps):
        mine = [r for r in runs if r.db == db and r.mode == "profile" and r.steps]
        lines = [f"| {name} | " + " | ".join(_step(r, name) for r in mine) + " |" for name in STEPS]
        head = "step: ms per invitation (share)," + ",".join(r.case for r in mine)
        out += [
            f"\n## Where the time goes: {db}, repeated call, each step timed alone\n",
            rq.table(head, lines),
        ]
    targets = [f"| {' | '.join(row)} |" for row in verdicts(runs)]
    return "\n".join([*out, "\n## Targets\n", rq.table("target,measured,verdict", targets)])


STEPS = (
    "calendar (cal.invitation)",
    "Jinja (3 templates)",
    "headers and MIME (compose.render less Jinja)",
    "SQL, ORM and the rest (the call less the above)",
    "the call (the faster of its two unprofiled runs)",
)


def _step(run: Run, name: str) -> str:
    found = run.steps
    parts = {
        STEPS[0]: found["calendar"],
        STEPS[1]: found["jinja"],
        STEPS[2]: found["render"] - found["jinja"],
        STEPS[3]: found["total"] - found["calendar"] - found["render"],
        STEPS[4]: found["total"],
    }
    return f"{parts[name] * 1000 / found['members']:.3f} ({parts[name] / found['total']:.0%})"


def _one_line(text: str, limit: int = 300) -> str:
    """A problem as one table cell: on one line, without pipes, cut to ``limit`` characters."""
    flat = " ".join(text.replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ms(run: Run, name: str) -> str:
    seconds, calls = run.profile[name]
    return f"{seconds * 1000 / run.members:.3f} ({calls:,.0f})" if calls else "-"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the Markdown report and write JSON when asked."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--modes", nargs="+", choices=["cli", "inproc"], default=["cli", "inproc"])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each case; medians are shown")
    parser.add_argument("--profile", type=Path, help="also profile the in-process calls; .prof files go here")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # inproc: the config of the process
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)  # inproc: its repetition
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.index, args.profile)
    if args.members < 1 or args.repeat < 1:
        parser.error("--members and --repeat must be at least 1")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up as Ctrl-C does
    jobs: list[tuple[str, str]] = [(db, mode) for db in args.db for mode in args.modes]
    jobs += [(db, "profile") for db in args.db if args.profile]
    runs: list[Run] = []
    load = os.getloadavg()[0]
    started, finished = time.perf_counter(), 0
    try:
        for db, mode in jobs:
            try:
                if mode == "cli":
                    found = run_cli(db, args.members, args.repeat)
                elif mode == "inproc":
                    found = run_inproc(db, args.members, args.repeat)
                else:
                    found = run_inproc(db, args.members, 1, args.profile.resolve())
            except Exception as exc:  # recorded beside the numbers; Ctrl-C still stops the bench
                found = [Run(db, mode, "all", args.members, problems=[f"{type(exc).__name__}: {exc}"])]
            runs += found
            finished += 1
            for run in found:
                print({k: v for k, v in asdict(run).items() if k != "profile"}, file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: children stopped, temp folders and schemas removed", file=sys.stderr)
    command = " ".join([".venv/bin/python bench/meetings.py", *(sys.argv[1:] if argv is None else argv)])
    elapsed, loads = time.perf_counter() - started, f"{load:.1f} → {os.getloadavg()[0]:.1f}"
    print(f"\n`{command}`: {os.cpu_count()} CPUs, load {loads}, {elapsed:,.0f} s\n\n{report(runs)}")
    if args.out:
        results = {"command": command, "complete": finished == len(jobs), "seconds": elapsed, "load": loads}
        results |= {"runs": [asdict(r) for r in runs], "targets": verdicts(runs)}
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if finished == len(jobs) else 130


if __name__ == "__main__":
    sys.exit(main())
