"""Benchmark of mailflow's request pipeline: ``mailflow ingest`` and the SMTP listener of ``mailflow serve``.

Every run gets a fresh temp folder and database (a SQLite file, or a new PostgreSQL schema on 127.0.0.1), a
registry in which every sender (``user{i}@ghent.example``) belongs to a participant organisation, and
pre-generated "JOIN circular" requests. It reports requests/s, the first and last 10% separately (does it slow
down as pending requests pile up?), the mailflow process's peak RSS and, with serve running, the latency from
the listener's ``250`` to the acknowledgement appearing in the outbound Maildir. Run it with::

    .venv/bin/python bench/requests.py [--sizes 1000 10000] [--db sqlite postgresql] [--paths ingest smtp]
        [--latency N] [--out FILE.json] [--profile N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
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
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import create_engine, text

from mailflow.testing import APPROVER, DEFAULT_GROUPS, DEMO_REGISTRY, SERVICE, request_mail, write_config

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"
SUBJECT = "JOIN circular"
BODY = "Could the City of Ghent take part in the circular procurement group?\n\nKind regards"
APPROVERS = (APPROVER, "second@iclei.example")  # write_config's default: one approval mail each
MAX_CHUNK = 2000  # files per `ingest` invocation, far below the argv limit
SEND_THREADS = 4
POLL_SECONDS = 0.1
STALL_SECONDS = 120.0
STOP_GRACE = 10.0
WARMUP = 3
TARGET_RATE, TARGET_P50_MS, TARGET_PEAK_MIB, SAME_RATE = 500.0, 100.0, 150.0, 0.9


@dataclass
class Run:
    """One throughput measurement; rates are requests/s."""

    db: str
    path: str
    size: int
    seconds: float = 0.0
    rate: float = 0.0
    net_rate: float | None = None
    intake_rate: float | None = None
    first10: float | None = None
    last10: float | None = None
    startup: float | None = None
    chunks: int = 1
    chunk_rates: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    stop_seconds: float | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Latency:
    """Latency from the listener's 250 to the acknowledgement file, in ms."""

    db: str
    n: int
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    poll_ms: float = 0.0
    peak_mib: float = 0.0
    problems: list[str] = field(default_factory=list)


class Children:
    """Every mailflow process the bench starts; whatever still runs at close is stopped."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C reaches the bench, which then stops the child itself.
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc.returncode is None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise KeyboardInterrupt


def mailflow(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailflow", "--config", str(config), *args]


def run_cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        mailflow(config, *args), capture_output=True, text=True, check=False, cwd=config.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"mailflow {' '.join(args)} failed: {done.stderr[-1500:]}")
    return done.stdout


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of a fresh database: a SQLite file in ``folder``, or a PostgreSQL schema dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'mailflow.db'}"
        return
    schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{PG_URL}?options=-csearch_path%3D{schema}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


def setup(folder: Path, url: str, smtp_port: int | None) -> Path:
    """Write the config (with the SMTP listener on ``smtp_port`` when given), init and import the registry."""
    config = write_config(folder, url, groups=DEFAULT_GROUPS, approvers=APPROVERS)
    if smtp_port is not None:
        old = "[smtp_intake]\nenabled = false\n"
        content = config.read_text(encoding="utf-8")
        if old not in content:
            raise RuntimeError("write_config no longer writes [smtp_intake] as expected; update the bench")
        new = f'[smtp_intake]\nenabled = true\nhost = "{HOST}"\nport = {smtp_port}\n'
        config.write_text(content.replace(old, new), encoding="utf-8")
    (folder / "registry.csv").write_text(DEMO_REGISTRY, encoding="utf-8")
    run_cli(config, "init")
    run_cli(config, "org", "import", str(folder / "registry.csv"))
    return config


def messages(count: int, prefix: str = "user") -> list[tuple[str, bytes]]:
    return [(s, request_mail(s, SUBJECT, BODY)) for s in (f"{prefix}{i}@ghent.example" for i in range(count))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def vm_hwm_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def verify(config: Path, senders: Sequence[str]) -> list[str]:
    """Every sender has one request pending approval, an acknowledgement and one approval mail per approver."""
    problems = []
    rows = json.loads(run_cli(config, "requests", "--json"))
    wrong = [r for r in rows if r["state"] != "pending_approval"]
    if len(rows) != len(senders) or wrong or {r["contact_email"] for r in rows} != set(senders):
        problems.append(f"{len(rows)} requests for {len(senders)} senders, {len(wrong)} not pending_approval")
    mails = json.loads(run_cli(config, "outbox", "--json"))
    to = [m["to"] for m in mails if m["state"] != "failed"]
    missing = set(senders) - set(to)
    if missing:
        problems.append(f"{len(missing)} senders have no reply queued")
    for approver in APPROVERS:
        if to.count(approver) != len(senders):
            problems.append(f"{to.count(approver)} approval mails to {approver} for {len(senders)} requests")
    return problems


def timed_child(children: Children, cmd: list[str], folder: Path) -> tuple[float, float]:
    """Run one mailflow process to its end; its wall time (s) and peak RSS (MiB) from its own rusage."""
    start = time.perf_counter()
    proc = children.start(cmd, folder / "ingest.log", folder)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:6])} exited {proc.returncode}; see {folder / 'ingest.log'}")
    return elapsed, usage.ru_maxrss / 1024


def run_ingest(children: Children, folder: Path, config: Path, run: Run) -> None:
    """Ingest the requests in chunks (one process each), timed per chunk; start-up measured apart."""
    inbox = folder / "in"
    inbox.mkdir()
    names, batch = [], messages(run.size)
    for i, (_, raw) in enumerate(batch):
        (inbox / f"{i:05d}.eml").write_bytes(raw)
        names.append(f"in/{i:05d}.eml")
    step = min(MAX_CHUNK, math.ceil(run.size / 10))
    chunks = [names[i : i + step] for i in range(0, len(names), step)]
    times = []
    for chunk in chunks:
        elapsed, peak = timed_child(children, mailflow(config, "ingest", *chunk), folder)
        times.append(elapsed)
        run.peak_mib = max(run.peak_mib, peak)
    # Start-up: the same process fed one message already stored (a duplicate costs one lookup).
    run.startup = statistics.median(
        timed_child(children, mailflow(config, "ingest", names[0]), folder)[0] for _ in range(3)
    )
    run.chunks, run.seconds = len(chunks), sum(times)
    run.rate = run.size / run.seconds
    run.net_rate = run.size / max(run.seconds - run.chunks * run.startup, 1e-9)
    run.chunk_rates = [len(c) / max(t - run.startup, 1e-9) for c, t in zip(chunks, times, strict=True)]
    run.first10, run.last10 = run.chunk_rates[0], run.chunk_rates[-1]
    run.problems += verify(config, [s for s, _ in batch])


def start_serve(children: Children, folder: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``mailflow serve`` and wait until its listener accepts connections."""
    proc = children.start(mailflow(config, "serve"), folder / "serve.log", folder)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited {proc.returncode}; see {folder / 'serve.log'}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return proc
        time.sleep(0.05)
    raise RuntimeError(f"serve did not listen on {HOST}:{port} within 60 s")


def stop_serve(proc: subprocess.Popen[bytes], problems: list[str]) -> float:
    """SIGTERM, then the seconds it took to exit; a slow or unclean exit is a problem."""
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        problems.append(f"serve ignored SIGTERM for {STOP_GRACE:.0f} s and was killed")
    else:
        if code != 0:
            problems.append(f"serve exited {code} after SIGTERM")
    return time.perf_counter() - start


def _send(port: int, batch: list[tuple[str, bytes]], errors: list[str]) -> None:
    try:
        # local_hostname avoids the DNS lookup smtplib would make for its EHLO name.
        with smtplib.SMTP(HOST, port, local_hostname="bench.localhost", timeout=120) as client:
            for sender, raw in batch:
                client.sendmail(sender, [SERVICE], raw)
    except (smtplib.SMTPException, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def _reader_url(url: str) -> str:
    return (
        url.replace("sqlite:///", "sqlite:///file:", 1) + "?mode=ro&uri=true"
        if url.startswith("sqlite")
        else url
    )


def run_smtp(children: Children, folder: Path, config: Path, port: int, url: str, run: Run) -> None:
    """Send every request over a few SMTP connections; time until all are processed with replies queued."""
    batch = messages(run.size)
    proc = start_serve(children, folder, config, port)
    engine = create_engine(_reader_url(url))
    query = text(
        "SELECT (SELECT count(*) FROM requests WHERE state = 'pending_approval'), (SELECT count(*) FROM outbox),"
        " (SELECT count(*) FROM inbound_messages WHERE status = 'quarantined')"
    )
    errors: list[str] = []
    threads = [
        threading.Thread(target=_send, args=(port, batch[k::SEND_THREADS], errors))
        for k in range(SEND_THREADS)
    ]
    marks: list[tuple[float, int]] = [(0.0, 0)]
    try:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        while True:
            time.sleep(POLL_SECONDS)
            with engine.connect() as conn:
                done, queued, quarantined = conn.execute(query).one()
            now = time.perf_counter() - start
            if run.intake_rate is None and not any(t.is_alive() for t in threads):
                run.intake_rate = run.size / now
            if done > marks[-1][1]:
                marks.append((now, done))
            if done == run.size and queued >= run.size * (1 + len(APPROVERS)):
                break
            if quarantined or errors or now - marks[-1][0] > STALL_SECONDS:
                raise RuntimeError(
                    f"{done}/{run.size} processed, {quarantined} quarantined, errors: {errors[:3]}"
                )
        for thread in threads:
            thread.join()
    finally:
        engine.dispose()
    run.seconds, run.rate = now, run.size / now
    p10 = next(m for m in marks if m[1] >= run.size / 10)
    p90 = next(m for m in marks if m[1] >= run.size * 0.9)
    run.first10 = p10[1] / p10[0]
    run.last10 = (run.size - p90[1]) / max(now - p90[0], POLL_SECONDS) if p90[1] < run.size else None
    run.peak_mib = vm_hwm_mib(proc.pid)
    run.stop_seconds = stop_serve(proc, run.problems)
    run.problems += verify(config, [s for s, _ in batch])


def one_run(db: str, size: int, path: str) -> Run:
    """One measurement in a fresh folder and database; failures are recorded, not raised."""
    run = Run(db, path, size)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailflow-bench-")))
        try:
            url = stack.enter_context(database(db, folder))
            children = Children()
            stack.callback(children.close)
            port = free_port() if path == "smtp" else None
            config = setup(folder, url, port)
            if port is None:
                run_ingest(children, folder, config, run)
            else:
                run_smtp(children, folder, config, port, url, run)
        except Exception as exc:
            run.problems.append(f"{type(exc).__name__}: {exc}")
    return run


def _wait_reply(new: Path, sender: str, seen: set[str], deadline: float) -> tuple[float, int]:
    parser, polls = BytesHeaderParser(), 0
    while time.perf_counter() < deadline:
        polls += 1
        with contextlib.suppress(FileNotFoundError), os.scandir(new) as entries:
            for entry in entries:
                if entry.name in seen:
                    continue
                seen.add(entry.name)
                head = Path(entry.path).read_bytes()[:16384]
                if sender in str(parser.parsebytes(head).get("To", "")).lower():
                    return time.perf_counter(), polls
        time.sleep(0.001)
    raise TimeoutError(f"no reply to {sender} within 30 s")


def latency(db: str, count: int) -> Latency:
    """Send one request at a time; from sendmail's return (the 250) to the acknowledgement file in sent/new."""
    result = Latency(db, count)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailflow-bench-")))
        try:
            url = stack.enter_context(database(db, folder))
            children = Children()
            stack.callback(children.close)
            port = free_port()
            config = setup(folder, url, port)
            batch = messages(WARMUP + count, prefix="latency")
            proc = start_serve(children, folder, config, port)
            seen: set[str] = set()
            samples, polls, waited = [], 0, 0.0
            with smtplib.SMTP(HOST, port, local_hostname="bench.localhost", timeout=30) as client:
                for i, (sender, raw) in enumerate(batch):
                    client.sendmail(sender, [SERVICE], raw)
                    t0 = time.perf_counter()
                    t1, n = _wait_reply(config.parent / "sent" / "new", sender, seen, t0 + 30)
                    if i >= WARMUP:
                        samples.append((t1 - t0) * 1000)
                        polls, waited = polls + n, waited + t1 - t0
            result.p50, result.max = statistics.median(samples), max(samples)
            result.p99 = (
                statistics.quantiles(samples, n=100, method="inclusive")[98] if count > 1 else samples[0]
            )
            result.poll_ms = waited * 1000 / max(polls, 1)
            result.peak_mib = vm_hwm_mib(proc.pid)
            stop_serve(proc, result.problems)
        except Exception as exc:
            result.problems.append(f"{type(exc).__name__}: {exc}")
    return result


def profile(count: int, out: Path | None) -> None:
    """Ingest ``count`` requests on SQLite under cProfile in one process; print the hottest functions."""
    with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as name:
        folder = Path(name)
        out = (out or folder / "ingest").with_suffix(".prof").resolve()
        config = setup(folder, f"sqlite:///{folder / 'mailflow.db'}", None)
        for i, (_, raw) in enumerate(messages(count)):
            (folder / f"{i:05d}.eml").write_bytes(raw)
        files = [f"{i:05d}.eml" for i in range(count)]
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), *mailflow(config, "ingest", *files)[1:]]
        subprocess.run(cmd, check=True, cwd=folder, capture_output=True)
        stats = pstats.Stats(str(out), stream=sys.stdout)
        print(f"\n### cProfile: ingest of {count} requests on SQLite in one process\n")
        stats.sort_stats("cumulative").print_stats(r"mailflow[/\\](core|app|store|intake|outbound)", 25)
        stats.sort_stats("tottime").print_stats(20)


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def verdicts(runs: Sequence[Run], lats: Sequence[Latency]) -> list[list[str]]:
    """Each target, what was measured and whether it is met."""
    good = [r for r in runs if not r.problems]
    ingest = [r for r in good if r.path == "ingest" and r.db == "sqlite"]
    rows = []
    if ingest:
        worst = min(ingest, key=lambda r: r.rate)
        rows.append(
            [
                f"ingest on SQLite >= {TARGET_RATE:.0f} req/s",
                f"worst {worst.rate:,.0f} req/s at {worst.size:,} (net of start-ups {_fmt(worst.net_rate)})",
                _ok(worst.rate >= TARGET_RATE),
            ]
        )
    for db, path in sorted({(r.db, r.path) for r in good}):
        mine = sorted((r for r in good if (r.db, r.path) == (db, path)), key=lambda r: r.size)
        small, big = mine[0], mine[-1]
        ratio = big.rate / small.rate if big is not small else None
        inner = big.last10 / big.first10 if big.last10 and big.first10 else None
        measured = (
            f"{db} {path}: {big.size:,} vs {small.size:,} {_fmt(ratio, 2)}x; last/first 10% {_fmt(inner, 2)}x"
        )
        worst_ratio = min(x for x in (ratio, inner, 1.0) if x is not None)
        rows.append(
            [f"same rate at 10,000 as at 1,000 (>= {SAME_RATE:.0%})", measured, _ok(worst_ratio >= SAME_RATE)]
        )
    for lat in (x for x in lats if not x.problems):
        rows.append(
            [
                f"p50 latency < {TARGET_P50_MS:.0f} ms",
                f"{lat.db}: {lat.p50:,.1f} ms",
                _ok(lat.p50 < TARGET_P50_MS),
            ]
        )
    peaks = [r.peak_mib for r in good] + [x.peak_mib for x in lats if not x.problems]
    if peaks:
        rows.append(
            [
                f"peak memory < {TARGET_PEAK_MIB:.0f} MB",
                f"max {max(peaks):,.0f} MiB",
                _ok(max(peaks) < TARGET_PEAK_MIB),
            ]
        )
    return rows


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"


def report(runs: Sequence[Run], lats: Sequence[Latency]) -> str:
    out = [
        "## Throughput (requests/s)\n",
        table(
            [
                "db",
                "path",
                "N",
                "wall s",
                "req/s",
                "net req/s",
                "SMTP accepted/s",
                "first 10%",
                "last 10%",
                "start-up s x chunks",
                "peak RSS MiB",
                "stop s",
                "problems",
            ],
            [
                [
                    r.db,
                    r.path,
                    f"{r.size:,}",
                    _fmt(r.seconds, 1),
                    _fmt(r.rate),
                    _fmt(r.net_rate),
                    _fmt(r.intake_rate),
                    _fmt(r.first10),
                    _fmt(r.last10),
                    f"{_fmt(r.startup, 2)} x {r.chunks}" if r.startup else "-",
                    _fmt(r.peak_mib),
                    _fmt(r.stop_seconds, 2),
                    "; ".join(r.problems) or "none",
                ]
                for r in runs
            ],
        ),
    ]
    if lats:
        out += [
            "\n## Latency: SMTP 250 -> acknowledgement in sent/new (ms)\n",
            table(
                ["db", "n", "p50", "p99", "max", "poll granularity ms", "peak RSS MiB", "problems"],
                [
                    [
                        x.db,
                        str(x.n),
                        _fmt(x.p50, 1),
                        _fmt(x.p99, 1),
                        _fmt(x.max, 1),
                        _fmt(x.poll_ms, 2),
                        _fmt(x.peak_mib),
                        "; ".join(x.problems) or "none",
                    ]
                    for x in lats
                ],
            ),
        ]
    out += ["\n## Targets\n", table(["target", "measured", "verdict"], verdicts(runs, lats))]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the Markdown report and write JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--paths", nargs="+", choices=["ingest", "smtp"], default=["ingest", "smtp"])
    parser.add_argument("--latency", type=int, default=200, help="requests for the latency test (0: skip)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--profile", type=int, default=0, help="then ingest N under cProfile and print hot spots"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    runs: list[Run] = []
    lats: list[Latency] = []
    started = time.perf_counter()
    interrupted = False
    try:
        for db in args.db:
            for size in args.sizes:
                for path in args.paths:
                    runs.append(one_run(db, size, path))
                    r = runs[-1]
                    print(f"{db} {path} {size}: {r.rate:,.1f} req/s {'; '.join(r.problems)}", file=sys.stderr)
            if args.latency > 0:
                lats.append(latency(db, args.latency))
                print(
                    f"{db} latency: p50 {lats[-1].p50:.1f} ms {'; '.join(lats[-1].problems)}", file=sys.stderr
                )
        if args.profile:
            profile(args.profile, args.out)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: children stopped, temp folders and schemas removed", file=sys.stderr)
    command = " ".join(
        [".venv/bin/python", "bench/requests.py", *(argv if argv is not None else sys.argv[1:])]
    )
    print(
        f"\n`{command}` on {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - started:,.0f} s\n"
    )
    print(report(runs, lats))
    if args.out:
        document: dict[str, Any] = {
            "command": command,
            "finished": datetime.now(UTC).isoformat(),
            "cpus": os.cpu_count(),
            "interrupted": interrupted,
            "runs": [asdict(r) for r in runs],
            "latency": [asdict(x) for x in lats],
            "targets": verdicts(runs, lats),
        }
        args.out.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
