"""Benchmark of mailflow's request pipeline: ``mailflow ingest`` and the SMTP listener of ``mailflow serve``.

Each run gets a fresh temp folder and database (a SQLite file, or a new PostgreSQL schema on 127.0.0.1), a
registry where every sender (``user{i}@ghent.example``) belongs to a participant organisation, and
pre-generated "JOIN circular" requests. Reported: requests/s, the first and last 10% apart (does it slow down
as pending requests pile up?), the mailflow process's peak RSS, and with serve running the latency from the
listener's 250 to the acknowledgement in the outbound Maildir. See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import math
import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

import mailflow as mailflow_package
from mailflow.store.schema import InboundMessage
from mailflow.testing import APPROVER, DEFAULT_GROUPS, DEMO_REGISTRY, SERVICE, request_mail, write_config

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"
SUBJECT, BODY = (
    "JOIN circular",
    "Could the City of Ghent take part in the circular procurement group?\n\nKind regards",
)
APPROVERS = (APPROVER, "second@iclei.example")  # write_config's default: one approval mail each
MAX_CHUNK = 2000  # files per `ingest` process: far below the argv limit
SEND_THREADS, POLL_SECONDS, STALL_SECONDS, WARMUP = 4, 0.1, 120.0, 3
PSS_EVERY = 20  # VmHWM samples (10 ms apart) per PSS sample
STOP_WAIT, KILL_WAIT = 60.0, 10.0  # how long serve may take after SIGTERM; any child after terminate()
TARGET_RATE, TARGET_P50_MS, TARGET_PEAK_MIB, SAME_RATE, TARGET_STOP = 500.0, 100.0, 150.0, 0.9, 5.0
COUNTS = text(
    "SELECT (SELECT count(*) FROM requests WHERE state = 'pending_approval'), (SELECT count(*) FROM outbox),"
    " (SELECT count(*) FROM inbound_messages WHERE status = 'quarantined')"
)


@dataclass
class Run:
    """One measurement (path ``ingest``, ``smtp`` or ``latency``): rates in requests/s, times in s, MiB."""

    db: str
    path: str
    size: int
    seconds: float = 0.0
    rate: float = 0.0
    net_rate: float | None = None  # ingest: process start-ups left out
    intake_rate: float | None = None  # smtp: messages accepted (250) per second
    first10: float | None = None
    last10: float | None = None
    startup: float | None = None
    chunks: int = 1
    chunk_rates: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    with_helper_mib: float | None = None  # ingest: the peak PSS of the process and its helper together
    stop_seconds: float | None = None
    p50_ms: float | None = None  # latency: SMTP 250 -> acknowledgement in sent/new
    p99_ms: float | None = None
    max_ms: float | None = None
    poll_ms: float | None = None
    problems: list[str] = field(default_factory=list)


class Children(list[subprocess.Popen[bytes]]):
    """The mailflow processes the bench starts; whatever still runs at close is stopped."""

    def start(self, cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C reaches only the bench, which then stops the child itself.
        with log.open("ab") as out:
            self.append(subprocess.Popen(cmd, stdout=out, stderr=out, cwd=cwd, start_new_session=True))
        return self[-1]

    def close(self) -> None:
        for proc in (p for p in self if p.returncode is None and p.poll() is None):
            proc.terminate()
            try:
                proc.wait(KILL_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def mailflow(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailflow", "--config", str(config), *args]


def run_cli(config: Path, *args: str) -> str:
    done = subprocess.run(mailflow(config, *args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mailflow {' '.join(args)} failed: {done.stderr[-1500:]}")
    return done.stdout


def _execute(engine: Engine, statement: str) -> None:
    with engine.connect() as conn:
        conn.execute(text(statement))


@contextlib.contextmanager
def workspace(db: str, smtp_port: int | None = None) -> Iterator[tuple[Path, str, Path, Children]]:
    """A temp folder, a fresh database, an initialised config and the child processes; all gone after."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailflow-bench-")))
        url = f"sqlite:///{folder / 'mailflow.db'}"
        if db == "postgresql":
            schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            stack.callback(admin.dispose)
            _execute(admin, f'CREATE SCHEMA "{schema}"')
            stack.callback(_execute, admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        children = Children()
        stack.callback(children.close)
        config = write_config(folder, url, groups=DEFAULT_GROUPS, approvers=APPROVERS)
        if smtp_port is not None:
            # write_config always writes `enabled = false` for the listener: switch it on, on 127.0.0.1.
            old = config.read_text(encoding="utf-8")
            new = f'[smtp_intake]\nenabled = true\nhost = "{HOST}"\nport = {smtp_port}\n'
            config.write_text(old.replace("[smtp_intake]\nenabled = false\n", new), encoding="utf-8")
            if new not in config.read_text(encoding="utf-8"):
                raise RuntimeError("write_config's [smtp_intake] section changed; update the bench")
        (folder / "registry.csv").write_text(DEMO_REGISTRY, encoding="utf-8")
        run_cli(config, "init")
        run_cli(config, "org", "import", str(folder / "registry.csv"))
        yield folder, url, config, children


def messages(count: int, prefix: str = "user") -> list[tuple[str, bytes]]:
    return [(s, request_mail(s, SUBJECT, BODY)) for s in (f"{prefix}{i}@ghent.example" for i in range(count))]


def free_port() -> int:
    with socket.create_server((HOST, 0)) as sock:
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def reader(url: str) -> Iterator[Session]:
    """A session for read-only queries (SQLite opened with mode=ro); its engine is disposed after."""
    if url.startswith("sqlite:///"):
        url = url.replace("sqlite:///", "sqlite:///file:", 1) + "?mode=ro&uri=true"
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def timestamps(url: str) -> list[tuple[float, float]]:
    """(received_at, processed_at) of every stored message in arrival order, in POSIX seconds."""
    with reader(url) as session:
        query = select(InboundMessage.received_at, InboundMessage.processed_at).order_by(InboundMessage.id)
        rows = session.execute(query).all()
    return [(r.timestamp(), p.timestamp() if p else math.nan) for r, p in rows]


def vm_hwm_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    return int(status.partition("VmHWM:")[2].split()[0]) / 1024  # the kernel reports kB


def verify(config: Path, senders: Sequence[str]) -> list[str]:
    """Each sender: one request pending approval and a reply; each approver: one approval mail per request."""
    problems = []
    rows = json.loads(run_cli(config, "requests", "--json"))
    wrong = [r for r in rows if r["state"] != "pending_approval"]
    if len(rows) != len(senders) or wrong or {r["contact_email"] for r in rows} != set(senders):
        problems.append(f"{len(rows)} requests for {len(senders)} senders, {len(wrong)} not pending_approval")
    to = [m["to"] for m in json.loads(run_cli(config, "outbox", "--json")) if m["state"] != "failed"]
    if missing := set(senders) - set(to):
        problems.append(f"{len(missing)} senders have no reply queued")
    counts = {a: to.count(a) for a in APPROVERS}
    problems += [f"{n} approval mails to {a}" for a, n in counts.items() if n != len(senders)]
    return problems


def pss_mib(pid: int) -> float:
    """The process's proportional set size now (pages shared with its helper counted half each), in MiB."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
    return int(rollup.partition("\nPss:")[2].split()[0]) / 1024


def family_pss_mib(pid: int) -> float:
    """The PSS of the process and its children (ingest's helper process), in MiB."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    return pss_mib(pid) + sum(pss_mib(int(child)) for child in children)


def timed_child(children: Children, cmd: list[str], folder: Path) -> tuple[float, float, float]:
    """Run one mailflow process to its end: its wall time, its peak RSS (VmHWM, read every 10 ms), and the
    peak of its and its helper's memory together (PSS, so pages they share count once; read every 0.2 s,
    as reading smaps costs the processes measured about 1 ms each time).

    Not wait4's ru_maxrss: Linux carries the pre-exec image (this bench, via fork or vfork) into it.
    """
    peak, together, done = [0.0], [0.0], threading.Event()

    def watch(pid: int) -> None:
        ticks = 0
        while not done.wait(0.01):
            with contextlib.suppress(OSError, IndexError, ValueError):  # a zombie has no VmHWM nor smaps
                peak[0] = vm_hwm_mib(pid)
                if ticks % PSS_EVERY == 0:
                    together[0] = max(together[0], family_pss_mib(pid))
            ticks += 1

    start = time.perf_counter()
    proc = children.start(cmd, folder / "ingest.log", folder)
    watcher = threading.Thread(target=watch, args=(proc.pid,), daemon=True)
    watcher.start()
    try:
        code = proc.wait()
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        watcher.join()
    if code != 0:
        raise RuntimeError(f"ingest exited {code}: {(folder / 'ingest.log').read_text()[-1500:]}")
    return elapsed, peak[0], together[0]


def run_ingest(run: Run) -> None:
    """Ingest with one process per MAX_CHUNK files; in-process time comes from the stored timestamps."""
    with workspace(run.db) as (folder, url, config, children):
        (folder / "in").mkdir()
        batch = messages(run.size)
        for i, (_, raw) in enumerate(batch):
            (folder / "in" / f"{i:05d}.eml").write_bytes(raw)
        step = MAX_CHUNK
        starts = range(0, run.size, step)
        walls = []
        for k in starts:
            chunk = [f"in/{i:05d}.eml" for i in range(k, min(k + step, run.size))]
            wall, peak, together = timed_child(children, mailflow(config, "ingest", *chunk), folder)
            walls.append(wall)
            run.peak_mib = max(run.peak_mib, peak)
            run.with_helper_mib = max(run.with_helper_mib or 0.0, together)
        stamps = timestamps(url)
        spans = [
            max(p for _, p in stamps[k : k + step]) - min(r for r, _ in stamps[k : k + step]) for k in starts
        ]
        run.chunks, run.seconds, run.rate = len(walls), sum(walls), run.size / sum(walls)
        run.net_rate = run.size / sum(spans)
        run.startup = statistics.mean(w - s for w, s in zip(walls, spans, strict=True))
        run.chunk_rates = [min(step, run.size - k) / s for k, s in zip(starts, spans, strict=True)]
        # The first and last tenth of the messages, by the time each was done (both within one process).
        done_at = sorted(p for _, p in stamps)
        tenth = max(1, run.size // 10)
        run.first10 = tenth / max(done_at[tenth - 1] - stamps[0][0], 1e-6)
        run.last10 = tenth / max(done_at[-1] - done_at[-1 - tenth], 1e-6) if run.size > tenth else None
        run.problems += verify(config, [s for s, _ in batch])


def start_serve(children: Children, folder: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``mailflow serve`` and wait until its listener accepts connections."""
    proc = children.start(mailflow(config, "serve"), folder / "serve.log", folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"serve exited {proc.returncode}: {(folder / 'serve.log').read_text()[-1500:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return proc
        time.sleep(0.05)
    raise RuntimeError(f"serve did not listen on {HOST}:{port} within 60 s")


def stop_serve(proc: subprocess.Popen[bytes], run: Run) -> None:
    """SIGTERM; record how long serve took to exit; an unclean exit is a problem."""
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        if code := proc.wait(STOP_WAIT):
            run.problems.append(f"serve exited {code} after SIGTERM")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        run.problems.append(f"serve ignored SIGTERM for {STOP_WAIT:.0f} s and was killed")
    run.stop_seconds = time.perf_counter() - start


def _send(port: int, batch: list[tuple[str, bytes]], ends: list[float], errors: list[str]) -> None:
    try:
        # local_hostname spares the DNS lookup smtplib would make for its EHLO name.
        with smtplib.SMTP(HOST, port, local_hostname="bench.localhost", timeout=120) as client:
            for sender, raw in batch:
                client.sendmail(sender, [SERVICE], raw)
    except (smtplib.SMTPException, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    ends.append(time.perf_counter())


def run_smtp(run: Run) -> None:
    """Send over a few SMTP connections at once; time until every request is processed with replies queued."""
    port = free_port()
    with workspace(run.db, port) as (folder, url, config, children):
        batch = messages(run.size)
        proc = start_serve(children, folder, config, port)
        ends: list[float] = []
        errors: list[str] = []
        args = [(port, batch[k::SEND_THREADS], ends, errors) for k in range(SEND_THREADS)]
        threads = [threading.Thread(target=_send, args=a, daemon=True) for a in args]
        with reader(url) as session:
            last, epoch, start = (0, 0.0), time.time(), time.perf_counter()
            for thread in threads:
                thread.start()
            while True:
                time.sleep(POLL_SECONDS)
                done, queued, bad = session.execute(COUNTS).one()
                session.rollback()  # a fresh snapshot next time
                now = time.perf_counter() - start
                last = (done, now) if done > last[0] else last
                if done == run.size and queued >= run.size * (1 + len(APPROVERS)):
                    break
                if bad or errors or now - last[1] > STALL_SECONDS:
                    raise RuntimeError(
                        f"{done}/{run.size} processed, {bad} quarantined, errors: {errors[:3]}"
                    )
        run.seconds, run.rate = now, run.size / now
        run.intake_rate = run.size / (max(ends) - start) if len(ends) == SEND_THREADS else None
        done_at = sorted(p for _, p in timestamps(url))
        k = max(1, run.size // 10)
        run.first10 = k / (done_at[k - 1] - epoch)
        run.last10 = k / max(done_at[-1] - done_at[-1 - k], 1e-6) if run.size > k else None
        run.peak_mib = vm_hwm_mib(proc.pid)
        stop_serve(proc, run)
        run.problems += verify(config, [s for s, _ in batch])


def _wait_reply(new: Path, sender: str, seen: set[str], deadline: float) -> tuple[float, int]:
    parser, polls = BytesHeaderParser(), 0
    while time.perf_counter() < deadline:
        polls += 1
        with contextlib.suppress(FileNotFoundError), os.scandir(new) as entries:
            for entry in (e for e in entries if e.name not in seen):
                seen.add(entry.name)
                head = Path(entry.path).read_bytes()[:16384]
                if sender in str(parser.parsebytes(head).get("To", "")).lower():
                    return time.perf_counter(), polls
        time.sleep(0.001)
    raise TimeoutError(f"no reply to {sender} in time")


def run_latency(run: Run) -> None:
    """One request at a time: from sendmail's return (the 250) to the acknowledgement file in sent/new."""
    port = free_port()
    with workspace(run.db, port) as (folder, _, config, children):
        batch = messages(WARMUP + run.size, prefix="latency")
        proc = start_serve(children, folder, config, port)
        seen: set[str] = set()
        samples, polls = [], 0
        with smtplib.SMTP(HOST, port, local_hostname="bench.localhost", timeout=30) as client:
            for i, (sender, raw) in enumerate(batch):
                client.sendmail(sender, [SERVICE], raw)
                t0 = time.perf_counter()
                t1, n = _wait_reply(folder / "sent" / "new", sender, seen, t0 + 30)
                if i >= WARMUP:  # the first few compile templates and warm caches
                    samples.append((t1 - t0) * 1000)
                    polls += n
        run.seconds = sum(samples) / 1000
        run.p50_ms, run.max_ms, run.poll_ms = statistics.median(samples), max(samples), sum(samples) / polls
        run.p99_ms = (
            statistics.quantiles(samples, n=100, method="inclusive")[98] if run.size > 1 else samples[0]
        )
        run.peak_mib = vm_hwm_mib(proc.pid)
        stop_serve(proc, run)


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(head: str, rows: Sequence[str]) -> str:
    return "\n".join([f"| {head.replace(',', ' | ')} |", "|" + "---|" * (head.count(",") + 1), *rows])


def verdicts(runs: Sequence[Run]) -> list[list[str]]:
    """Each target beside what was measured, and whether it is met."""
    good = [r for r in runs if not r.problems]
    label = f"ingest on SQLite >= {TARGET_RATE:.0f} req/s"
    rows = [
        (label, f"{r.rate:,.0f} at {r.size:,} ({_f(r.net_rate)} net)", r.rate >= TARGET_RATE)
        for r in good
        if (r.db, r.path) == ("sqlite", "ingest")
    ]
    for db, path in sorted({(r.db, r.path) for r in good if r.path != "latency"}):
        mine = sorted((r for r in good if (r.db, r.path) == (db, path)), key=lambda r: r.size)
        small, big = mine[0], mine[-1]
        ratio = big.rate / small.rate if big.size != small.size else None
        inner = big.last10 / big.first10 if big.last10 and big.first10 else None
        measured = (
            f"{db} {path}: {big.size:,} / {small.size:,}: {_f(ratio, 2)}; last / first 10%: {_f(inner, 2)}"
        )
        worst = min(x for x in (ratio, inner, 1.0) if x is not None)
        rows.append((f"same rate at 10,000 as at 1,000 (ratio >= {SAME_RATE})", measured, worst >= SAME_RATE))
    label = f"p50 latency < {TARGET_P50_MS:.0f} ms"
    rows += [(label, f"{r.db}: {r.p50_ms:,.1f} ms", r.p50_ms < TARGET_P50_MS) for r in good if r.p50_ms]
    if peaks := [max(r.peak_mib, r.with_helper_mib or 0.0) for r in good]:
        label = f"peak memory < {TARGET_PEAK_MIB:.0f} MB (MiB here)"
        rows.append((label, f"max {max(peaks):,.0f} MiB", max(peaks) < TARGET_PEAK_MIB))
    if stops := [r for r in good if r.stop_seconds is not None]:
        slow = max(stops, key=lambda r: r.stop_seconds or 0.0)
        measured = f"max {slow.stop_seconds or 0.0:,.1f} s ({slow.db} {slow.path} {slow.size:,})"
        label = f"serve exits within {TARGET_STOP:.0f} s of SIGTERM (brief: a few seconds)"
        rows.append((label, measured, (slow.stop_seconds or 0.0) < TARGET_STOP))
    return [[target, measured, "met" if met else "**not met**"] for target, measured, met in rows]


def report(runs: Sequence[Run]) -> str:
    """The Markdown tables: throughput, latency and the targets."""
    head = "db,path,N,wall s,req/s,net req/s,SMTP 250/s,first 10%,last 10%,start-up s,processes"
    head += ",peak MiB,with helper MiB,stop s,problems"
    rows = [
        f"| {r.db} | {r.path} | {r.size:,} | {_f(r.seconds, 1)} | {_f(r.rate)} | {_f(r.net_rate)} "
        f"| {_f(r.intake_rate)} | {_f(r.first10)} | {_f(r.last10)} | {_f(r.startup, 2)} | {r.chunks} "
        f"| {_f(r.peak_mib)} | {_f(r.with_helper_mib)} | {_f(r.stop_seconds, 1)} "
        f"| {'; '.join(r.problems) or 'none'} |"
        for r in runs
        if r.path != "latency"
    ]
    out = ["## Throughput (requests/s)\n", table(head, rows)]
    if rows := [
        f"| {r.db} | {r.size:,} | {_f(r.p50_ms, 1)} | {_f(r.p99_ms, 1)} | {_f(r.max_ms, 1)} "
        f"| {_f(r.poll_ms, 2)} | {_f(r.peak_mib)} | {_f(r.stop_seconds, 1)} "
        f"| {'; '.join(r.problems) or 'none'} |"
        for r in runs
        if r.path == "latency"
    ]:
        out += ["\n## Latency: SMTP 250 to the acknowledgement in sent/new (ms)\n"]
        out += [table("db,n,p50,p99,max,poll loop ms,peak MiB,stop s,problems", rows)]
    targets = [f"| {' | '.join(row)} |" for row in verdicts(runs)]
    return "\n".join([*out, "\n## Targets\n", table("target,measured,verdict", targets)])


RUNNERS = {"ingest": run_ingest, "smtp": run_smtp, "latency": run_latency}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the Markdown report and write JSON when asked."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--paths", nargs="+", choices=["ingest", "smtp"], default=["ingest", "smtp"])
    parser.add_argument("--latency", type=int, default=200, help="requests for the latency test (0: skip)")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up as Ctrl-C does
    # As an installed package is: byte-compiled (pip compiles on install; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE, as here, would otherwise compile every module in every process it starts).
    compileall.compile_dir(Path(mailflow_package.__file__).parent, quiet=1)
    jobs = [Run(db, path, size) for db in args.db for size in args.sizes for path in args.paths]
    jobs += [Run(db, "latency", args.latency) for db in args.db if args.latency > 0]
    jobs.sort(key=lambda r: args.db.index(r.db))
    started, finished = time.perf_counter(), 0
    try:
        for run in jobs:
            try:
                RUNNERS[run.path](run)
            except Exception as exc:  # recorded beside the numbers; Ctrl-C still stops the bench
                run.problems.append(f"{type(exc).__name__}: {exc}")
            finished += 1
            print(run, file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: children stopped, temp folders and schemas removed", file=sys.stderr)
    command = " ".join([".venv/bin/python bench/requests.py", *(sys.argv[1:] if argv is None else argv)])
    elapsed = time.perf_counter() - started
    print(f"\n`{command}`: {os.cpu_count()} CPUs, {elapsed:,.0f} s\n\n{report(jobs[:finished])}")
    if args.out:
        results = {"command": command, "complete": finished == len(jobs), "seconds": elapsed}
        results |= {"runs": [asdict(r) for r in jobs[:finished]], "targets": verdicts(jobs[:finished])}
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if finished == len(jobs) else 130


if __name__ == "__main__":
    sys.exit(main())
