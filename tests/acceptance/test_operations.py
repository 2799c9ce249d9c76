"""Operator commands: idempotent init, check, quarantine retry, and the outbox pausing on a refusing relay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailflow.cli import main
from mailflow.testing import DEMO_REGISTRY, request_mail, write_config
from tests.servers.dovecot import DovecotServer
from tests.servers.sink import SmtpSink


def _run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_is_idempotent(config_path: Path, capsys: pytest.CaptureFixture[str]):
    """Running init twice creates the groups once and changes nothing the second time."""
    assert 0 == _run(config_path, capsys, "init")[0]
    code, out, _ = _run(config_path, capsys, "init")
    assert 0 == code
    assert "groups created: none" in out
    slugs = [g["slug"] for g in json.loads(_run(config_path, capsys, "groups", "--json")[1])]
    assert ["big-buyers", "circular", "food", "ict"] == slugs


def test_check_reports_each_server(
    tmp_path: Path,
    database_url: str,
    dovecot: DovecotServer,
    sink: SmtpSink,
    capsys: pytest.CaptureFixture[str],
):
    """`check` logs in to IMAP and talks to SMTP; a wrong password is one FAIL line and exit status 1."""
    (tmp_path / "pw").write_text(dovecot.password, encoding="utf-8")
    imap = (
        f'[imap]\nhost = "127.0.0.1"\nport = {dovecot.port}\nsecurity = "none"\n'
        f'username = "{dovecot.username}"\npassword_file = "pw"\n'
    )
    smtp = f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"'
    config = write_config(tmp_path, database_url, extra=imap, smtp=smtp)
    code, out, _ = _run(config, capsys, "check")
    assert 0 == code, out
    assert {"config", "templates", "database", "imap", "outbound"} == {
        line.split()[1].rstrip(":") for line in out.splitlines()
    }
    (tmp_path / "pw").write_text("wrong", encoding="utf-8")
    code, out, err = _run(config, capsys, "check")
    assert 1 == code
    assert 1 == sum(line.startswith("FAIL imap") for line in out.splitlines())
    assert "some checks failed" in err


def test_quarantined_message_can_be_retried(config_path: Path, capsys: pytest.CaptureFixture[str]):
    """A quarantined message is listed with its reason and can be processed again from the CLI."""
    assert 0 == _run(config_path, capsys, "init")[0]
    bad = config_path.parent / "bad.eml"
    bad.write_bytes(b"Subject: no sender here\r\n\r\nJOIN circular\r\n")
    assert 0 == _run(config_path, capsys, "ingest", str(bad))[0]
    [row] = json.loads(_run(config_path, capsys, "quarantine", "--json")[1])
    assert "no sender address could be read" == row["reason"]
    code, out, _ = _run(config_path, capsys, "quarantine", "--retry", str(row["id"]))
    assert (0, f"message {row['id']}: quarantined\n") == (code, out)
    code, _, err = _run(config_path, capsys, "quarantine", "--retry", "999")
    assert (1, "mailflow: error: no quarantined message with id 999\n") == (code, err)


def test_unreadable_ingest_file_is_an_error(config_path: Path, capsys: pytest.CaptureFixture[str]):
    """A file that cannot be read is named in one error line and the exit status is 1."""
    assert 0 == _run(config_path, capsys, "init")[0]
    code, _, err = _run(config_path, capsys, "ingest", str(config_path.parent / "missing.eml"))
    assert 1 == code
    assert "could not read" in err


def test_refusing_relay_pauses_the_queue_and_keeps_the_mail(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
):
    """A relay that refuses our login pauses the outbox: the mail stays queued, nothing is dropped."""
    with SmtpSink(require_auth=("mailflow", "right")) as sink:
        (tmp_path / "pw").write_text("wrong", encoding="utf-8")
        smtp = (
            f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
            'username = "mailflow"\npassword_file = "pw"'
        )
        config = write_config(tmp_path, database_url, smtp=smtp)
        registry = tmp_path / "registry.csv"
        registry.write_text(DEMO_REGISTRY, encoding="utf-8")
        assert 0 == _run(config, capsys, "init")[0]
        assert 0 == _run(config, capsys, "org", "import", str(registry))[0]
        request = tmp_path / "join.eml"
        request.write_bytes(request_mail("anna@ghent.example", "JOIN circular", "Hello"))
        assert 0 == _run(config, capsys, "ingest", str(request))[0]
        code, _, err = _run(config, capsys, "send", "--once")
        assert 1 == code
        assert "outbox paused" in err
        states = {row["state"] for row in json.loads(_run(config, capsys, "outbox", "--json")[1])}
        assert {"pending"} == states
        assert [] == sink.messages()


def test_commands_before_init_say_what_to_do(config_path: Path, capsys: pytest.CaptureFixture[str]):
    """Before `init`, reading commands and `serve` fail with one line that points at `mailflow init`."""
    code, _, err = _run(config_path, capsys, "requests")
    assert 1 == code
    assert "mailflow init" in err
    assert 1 == len(err.strip().splitlines())
    code, _, err = _run(config_path, capsys, "serve")
    assert (1, "mailflow: error: the database schema is missing or old: run `mailflow init` first\n") == (
        code,
        err,
    )


def test_ingest_reads_standard_input_as_an_mta_pipe(config_path: Path):
    """`mailflow ingest -` takes the message on stdin, as an MTA pipe delivers it."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    assert 0 == main(["--config", str(config_path), "init"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "mailflow", "--config", str(config_path), "ingest", "-"],
        input=request_mail("anna@ghent.example", "HELP", ""),
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert (0, b"1 processed, 0 quarantined\n") == (done.returncode, done.stdout)


def test_deployment_templates_override_the_shipped_ones(tmp_path: Path, database_url: str):
    """`templates = "…"` in the config points at a deployment's own copy; its wording is what goes out."""
    import shutil  # noqa: PLC0415

    from mailflow.app.process import Pipeline  # noqa: PLC0415
    from mailflow.app.runtime import build_runtime, default_templates  # noqa: PLC0415
    from mailflow.app.setup import initialise  # noqa: PLC0415
    from mailflow.config import load_settings  # noqa: PLC0415

    ours = tmp_path / "our-templates"
    shutil.copytree(default_templates(), ours)
    (ours / "help.subject.j2").write_text("Hoe werkt het? ({{ network }})\n", encoding="utf-8")
    config = write_config(tmp_path, database_url, extra='templates = "our-templates"')
    text = config.read_text(encoding="utf-8")
    # Top-level keys must come before the first table in TOML.
    config.write_text(
        'templates = "our-templates"\n' + text.replace('templates = "our-templates"', ""), "utf-8"
    )
    runtime = build_runtime(load_settings(config))
    try:
        initialise(runtime)
        Pipeline(runtime).accept(request_mail("anna@ghent.example", "HELP", ""), "file", "")
        with runtime.sessions() as session:
            from sqlalchemy import select  # noqa: PLC0415

            from mailflow.store.schema import OutboxMessage  # noqa: PLC0415

            [subject] = session.scalars(select(OutboxMessage.subject)).all()
        assert "Hoe werkt het? (Procura+ Network)" == subject
    finally:
        runtime.engine.dispose()
