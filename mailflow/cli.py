"""The command line of SPEC §6: ``mailflow [--config PATH] COMMAND``.

Every command maps a :class:`~mailflow.errors.MailflowError` to one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import click
from sqlalchemy.exc import SQLAlchemyError

from mailflow.config import Settings, load_settings
from mailflow.errors import MailflowError

log = logging.getLogger("mailflow")


class _State:
    def __init__(self, config: Path | None) -> None:
        self.config_path = config
        self._settings: Settings | None = None
        self._runtime: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    def runtime(self) -> Any:  # noqa: ANN401 - the app layer is imported lazily to keep --help fast
        if self._runtime is None:
            from mailflow.app.runtime import build_runtime  # noqa: PLC0415

            self._runtime = build_runtime(self.settings)
            if _whole_process:
                # What the command imported and built lives as long as the process: the garbage collector
                # need not walk it again on every full collection, nor the interpreter at exit (about 0.1 s).
                gc.freeze()
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.engine.dispose()


pass_state = click.make_pass_decorator(_State)


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    widths = {
        c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns
    }
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo(
            "  ".join(str(row.get(c) if row.get(c) is not None else "-").ljust(widths[c]) for c in columns)
        )


@click.group()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default ./config.toml or $MAILFLOW_CONFIG).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
@click.version_option(package_name="mailflow")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Run a network's Interest Groups by email."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every SMTP command, and alembic every plugin, at INFO; keep their warnings only.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = _State(config)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@pass_state
def init(state: _State) -> None:
    """Create or upgrade the database schema and load the groups declared in config."""
    from mailflow.app.setup import initialise  # noqa: PLC0415

    result = initialise(state.runtime())
    click.echo(
        f"database ready; groups created: {', '.join(result.created) or 'none'};"
        f" updated: {', '.join(result.updated) or 'none'}"
    )


@cli.command()
@pass_state
def serve(state: _State) -> None:
    """Run intake, processing and the outbox sender until SIGTERM/SIGINT."""
    from mailflow.app.serve import serve as run  # noqa: PLC0415

    run(state.runtime())


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Fetch and process all new mail, then exit.")
@pass_state
def poll(state: _State, once: bool) -> None:
    """Fetch and process all new IMAP mail, then exit."""
    del once
    from mailflow.app.process import Cursors, Pipeline  # noqa: PLC0415
    from mailflow.intake.imap import ImapIntake  # noqa: PLC0415

    runtime = state.runtime()
    imap = runtime.settings.imap
    if imap is None:
        raise MailflowError("[imap] is not configured in the config file")
    result = ImapIntake(imap, imap.password(), Pipeline(runtime), Cursors(runtime)).poll_once()
    click.echo(
        f"fetched {result.fetched}: {result.processed} processed, {result.quarantined} quarantined,"
        f" {result.skipped_backlog} old messages left alone"
    )


@cli.command()
@click.argument("files", nargs=-1, required=True)
@pass_state
def ingest(state: _State, files: tuple[str, ...]) -> None:
    """Process raw RFC 5322 messages from files, or from stdin with '-'."""
    from mailflow.app.helper import start_helper  # noqa: PLC0415
    from mailflow.app.process import BATCH_SIZE, Pipeline  # noqa: PLC0415
    from mailflow.intake.files import ingest as run  # noqa: PLC0415

    runtime = state.runtime()
    # Many files make batches: a second process reads them and renders the replies while this one decides.
    with start_helper(runtime, wanted=len(files) > BATCH_SIZE):
        result = run(list(files), Pipeline(runtime))
    click.echo(f"{result.processed} processed, {result.quarantined} quarantined")
    if result.unreadable:
        raise MailflowError(f"could not read: {', '.join(result.unreadable)}")


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Deliver the pending outbox, then exit.")
@pass_state
def send(state: _State, once: bool) -> None:
    """Deliver the pending outbox, then exit."""
    del once
    from mailflow.app.outbox import send_once  # noqa: PLC0415
    from mailflow.outbound.transport import make_transport  # noqa: PLC0415

    runtime = state.runtime()
    settings = runtime.settings
    transport = make_transport(settings.smtp, settings.maildir, settings.smtp.password())
    try:
        result = send_once(runtime, transport)
    finally:
        transport.close()
    click.echo(f"{result.sent} sent, {result.retried} to retry, {result.failed} failed")
    if result.paused:
        raise MailflowError(f"outbox paused: {result.paused}")


@cli.group()
def org() -> None:
    """The network registry of organisations."""


@org.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@pass_state
def org_import(state: _State, file: Path) -> None:
    """Import or update organisations from a CSV file."""
    from mailflow.app.registry import import_file  # noqa: PLC0415

    result = import_file(state.runtime(), file)
    click.echo(
        f"{result.created} organisations created, {result.updated} updated, {result.contacts} contacts added"
    )


_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")


@cli.command()
@_json
@pass_state
def groups(state: _State, as_json: bool) -> None:
    """List the groups."""
    from mailflow.app import queries  # noqa: PLC0415

    _emit(
        queries.groups(state.runtime()),
        as_json,
        ("slug", "status", "participant_count", "member_count", "facilitator_email", "name"),
    )


@cli.command()
@_json
@click.option("--state", "request_state", default=None, help="Only requests in this state.")
@pass_state
def requests(state: _State, as_json: bool, request_state: str | None) -> None:
    """List the requests."""
    from mailflow.app import queries  # noqa: PLC0415

    _emit(
        queries.requests(state.runtime(), request_state),
        as_json,
        ("id", "kind", "state", "contact_email", "organisation", "group_slug", "created_at"),
    )


@cli.command()
@click.argument("group")
@_json
@pass_state
def members(state: _State, group: str, as_json: bool) -> None:
    """List a group's members."""
    from mailflow.app import queries  # noqa: PLC0415

    _emit(
        queries.members(state.runtime(), group),
        as_json,
        ("contact_email", "organisation", "role", "status"),
    )


@cli.command()
@_json
@pass_state
def outbox(state: _State, as_json: bool) -> None:
    """List outbound mail."""
    from mailflow.app import queries  # noqa: PLC0415

    _emit(queries.outbox(state.runtime()), as_json, ("id", "state", "kind", "to", "subject"))


@cli.command()
@_json
@click.option("--retry", "retry_id", type=int, default=None, help="Process this quarantined message again.")
@pass_state
def quarantine(state: _State, as_json: bool, retry_id: int | None) -> None:
    """List quarantined messages, or retry one."""
    from mailflow.app import queries  # noqa: PLC0415

    runtime = state.runtime()
    if retry_id is not None:
        click.echo(f"message {retry_id}: {queries.retry_quarantined(runtime, retry_id).value}")
        return
    _emit(queries.quarantine(runtime), as_json, ("id", "from", "subject", "reason"))


@cli.command()
@click.argument("request_id", type=int)
@pass_state
def approve(state: _State, request_id: int) -> None:
    """Approve a request (the fallback to approval by email)."""
    from mailflow.app import queries  # noqa: PLC0415
    from mailflow.core.model import Verdict  # noqa: PLC0415

    click.echo(f"request {request_id}: {queries.decide(state.runtime(), request_id, Verdict.APPROVE)}")


@cli.command()
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why; the requester reads it.")
@pass_state
def reject(state: _State, request_id: int, reason: str) -> None:
    """Reject a request with a reason."""
    from mailflow.app import queries  # noqa: PLC0415
    from mailflow.core.model import Verdict  # noqa: PLC0415

    click.echo(f"request {request_id}: {queries.decide(state.runtime(), request_id, Verdict.REJECT, reason)}")


@cli.command()
@click.option("--now", "now_text", default=None, help="Run as at this time (ISO 8601; default: now).")
@pass_state
def tick(state: _State, now_text: str | None) -> None:
    """Run the scheduled jobs (reminders, summaries) that are due at that time, then exit."""
    from mailflow.app.schedule import tick as run  # noqa: PLC0415

    now = None
    if now_text is not None:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise MailflowError(f"--now: {now_text!r} is not ISO 8601, e.g. 2027-03-11T09:00Z") from None
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    with _Bars() as bars:
        result = run(state.runtime(), now, progress=bars.update if sys.stderr.isatty() else None)
    for name, queued in result.queued.items():
        click.echo(f"{name}: {queued} queued, {result.already[name]} already sent")


class _Bars:
    """One progress bar per job on stderr, for runs large enough to watch (a terminal only)."""

    _WORTH_A_BAR = 200

    def __init__(self) -> None:
        self._bar: Any = None
        self._job = ""

    def update(self, job: str, done: int, total: int) -> None:
        if total < self._WORTH_A_BAR:
            return
        if job != self._job:
            self.close()
            self._bar = click.progressbar(length=total, label=job, file=sys.stderr)
            self._bar.__enter__()
            self._job = job
        self._bar.update(done - self._bar.pos)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar, self._job = None, ""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@cli.command("meetings")
@_json
@click.option("--group", default=None, help="Only this group's meetings (its slug).")
@pass_state
def meetings_list(state: _State, as_json: bool, group: str | None) -> None:
    """List meetings with every attendee's answer."""
    from mailflow.app import meeting_ops  # noqa: PLC0415

    rows = meeting_ops.rows(state.runtime(), group)
    for row in [] if as_json else rows:
        answers = [a["partstat"] for a in row["attendees"]]
        row["answers"] = (
            f"{answers.count('ACCEPTED')} yes, {answers.count('DECLINED')} no, {len(answers)} invited"
        )
    _emit(rows, as_json, ("id", "group_slug", "status", "start", "kind", "sequence", "answers"))


@cli.group()
def meeting() -> None:
    """Schedule, change or cancel a group's meetings; members get the invitations."""


@meeting.command("schedule")
@click.argument("group")
@click.option("--start", required=True, help="ISO 8601, e.g. 2027-03-12T14:00 (read in --tz).")
@click.option("--duration", type=int, required=True, help="Length in minutes.")
@click.option("--kind", type=click.Choice(["web", "phone"]), required=True)
@click.option("--tz", default=None, help="IANA time zone (default: [network] timezone).")
@click.option("--title", default="", help="The meeting's title.")
@click.option("--url", default="", help="The join link of a web meeting.")
@click.option("--dial-in", "dial_in", default="", help="The dial-in number, e.g. +32 2 123 45 67.")
@click.option("--pin", default="", help="The dial-in PIN or conference code.")
@click.option("--repeat", default="", help='A series, e.g. "every second Tuesday for six months".')
@pass_state
def meeting_schedule(state: _State, /, group: str, **options: Any) -> None:  # noqa: ANN401
    """Schedule a meeting and invite every active member; prints the new meeting's id."""
    from mailflow.app import meeting_ops  # noqa: PLC0415
    from mailflow.app.meetings import MeetingRefusedError  # noqa: PLC0415

    try:
        click.echo(meeting_ops.schedule(state.runtime(), meeting_ops.ScheduleArgs(group=group, **options)))
    except MeetingRefusedError as exc:
        raise MailflowError(f"meeting refused: {exc}") from None


@meeting.command("update")
@click.argument("meeting_id", type=int)
@click.option("--start", default=None, help="New start, ISO 8601 (read in the meeting's zone).")
@click.option("--duration", type=int, default=None, help="New length in minutes.")
@click.option("--url", default=None)
@click.option("--dial-in", "dial_in", default=None)
@click.option("--pin", default=None)
@click.option("--title", default=None)
@click.option(
    "--occurrence", default=None, help="Move only this occurrence of a series (its original start)."
)
@pass_state
def meeting_update(state: _State, /, meeting_id: int, **options: Any) -> None:  # noqa: ANN401
    """Change a meeting; attendees get the update."""
    from mailflow.app import meeting_ops  # noqa: PLC0415
    from mailflow.app.meetings import MeetingRefusedError  # noqa: PLC0415

    try:
        sequence = meeting_ops.update(state.runtime(), meeting_id, **options)
    except MeetingRefusedError as exc:
        raise MailflowError(f"meeting {meeting_id}: {exc}") from None
    click.echo(f"meeting {meeting_id}: updated, sequence {sequence}")


@meeting.command("cancel")
@click.argument("meeting_id", type=int)
@click.option("--occurrence", default=None, help="Cancel only this occurrence of a series (its start).")
@pass_state
def meeting_cancel(state: _State, meeting_id: int, occurrence: str | None) -> None:
    """Cancel a meeting; attendees get the cancellation."""
    from mailflow.app import meeting_ops  # noqa: PLC0415
    from mailflow.app.meetings import MeetingRefusedError  # noqa: PLC0415

    try:
        told = meeting_ops.cancel(state.runtime(), meeting_id, occurrence)
    except MeetingRefusedError as exc:
        raise MailflowError(f"meeting {meeting_id}: {exc}") from None
    click.echo(f"meeting {meeting_id}: cancelled, {told} attendees told")


@cli.group()
def report() -> None:
    """Reports for the secretariat."""


@report.command("facilitators", short_help="Facilitators of a year and their months.")
@click.option("--year", "year_text", default=None, help="The calendar year, e.g. 2027.")
@_json
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV with a header row.")
@pass_state
def report_facilitators(state: _State, year_text: str | None, as_json: bool, as_csv: bool) -> None:
    """List the organisations that facilitated a group in a year, and for how many months (fee discount)."""
    from mailflow.app import report as reports  # noqa: PLC0415

    if as_json and as_csv:
        raise MailflowError("give --json or --csv, not both")
    year = reports.parse_year(year_text)
    rows = reports.facilitators(state.runtime(), year)
    if as_csv:
        click.echo(reports.csv_text(rows), nl=False)
        return
    _emit(
        rows if as_json else reports.table_rows(rows),
        as_json,
        ("organisation", "country", "status", "eligible", "months", "days", "groups"),
    )


@cli.command()
@pass_state
def check(state: _State) -> None:
    """Validate the config and connect to the database, IMAP and SMTP."""
    from mailflow.app.check import run_checks  # noqa: PLC0415

    checks = run_checks(state.runtime())
    for item in checks:
        click.echo(f"{'ok  ' if item.ok else 'FAIL'} {item.name}: {item.detail}")
    if not all(item.ok for item in checks):
        raise MailflowError("some checks failed")


_whole_process = False
"""Whether the process runs one command and ends (``mailflow …``), not commands called by a longer one."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting.

    Called without ``argv`` (the ``mailflow`` program), the command is the process's only work; called with it
    (tests, scripts), the caller's objects are left to the garbage collector as they were.
    """
    global _whole_process  # noqa: PLW0603 - set once per process, read when the runtime is built
    _whole_process = argv is None
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="mailflow",
            standalone_mode=False,
        )
    except MailflowError as exc:
        click.echo(f"mailflow: error: {exc}", err=True)
        return 1
    except SQLAlchemyError as exc:
        # One line for the operator, not a traceback: the usual causes are a database that is down or a
        # schema that `mailflow init` has not created yet.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        click.echo(
            f"mailflow: error: database: {reason} (is it running, and has `mailflow init` run?)", err=True
        )
        return 1
    except click.exceptions.Abort:
        click.echo("mailflow: aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0
