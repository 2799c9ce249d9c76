"""The helper process of ``mailflow ingest``: the same results as in-process, and no harm when it fails."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mailflow.app import helper as helper_module
from mailflow.app.helper import Helper, RenderJob, start_helper
from mailflow.app.process import Pipeline
from mailflow.app.runtime import Runtime, default_templates
from mailflow.core.compose import Identity, make_environment
from mailflow.core.model import GroupRef
from mailflow.core.plans import Mail, TokenSpec
from mailflow.core.reading import View, understand
from mailflow.intake.base import Disposition
from mailflow.store.schema import OutboxMessage, Request
from mailflow.testing import gmail_reply, request_mail

VIEW = View(
    "ig@network.example",
    "network.example",
    max_bytes=1_000_000,
    max_parts=50,
    max_depth=5,
    groups=(
        GroupRef("circular", "Circular Public Procurement", ("cpp",)),
        GroupRef("food", "Sustainable Food"),
    ),
)


def _count(runtime: Runtime, column: object) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count(column))) or 0  # type: ignore[arg-type]


def test_the_helper_reads_and_renders_what_this_process_would():
    """Messages read and mails rendered in the helper equal, field for field and byte for byte, in-process."""
    raws = [
        request_mail("anna@ghent.example", "JOIN circular", "Could we take part?\n\nKind regards"),
        gmail_reply(
            request_mail("ig@network.example", "Approve?", "Reply APPROVE"), "a@iclei.example", "APPROVE"
        ),
        request_mail("bo@ghent.example", "Anfrage", "<p>Wir möchten <b>beitreten</b>.</p>", html_only=True),
        b"not a message at all",
    ]
    templates = make_environment(default_templates())
    job = RenderJob(
        Mail(
            "help", "anna@ghent.example", {"not_understood": True}, token=TokenSpec("approval", "a@x.example")
        ),
        identity=Identity("ig@network.example", "Network Interest Groups", "Network", "ICLEI"),
        message_id="abc@network.example",
        date=datetime(2027, 3, 1, 9, 30, tzinfo=UTC),
        token="tok123",  # noqa: S106 - a reply token, not a password
        in_reply_to="parent@ghent.example",
        references=("root@ghent.example",),
        extra={"groups": [{"slug": "circular", "name": "Circular", "status": "active", "associated": False}]},
        bodies=None,
    )
    helper = Helper(templates)
    try:
        read = helper.read(raws, VIEW).result(timeout=30)
        rendered = helper.render([job, job]).result(timeout=30)
    finally:
        helper.close()

    assert [understand(raw, VIEW) for raw in raws] == read
    # A reply with no token is nothing the service asked for; a non-message is not read at all.
    assert ["join", "unknown", "join", None] == [r.intent.kind.value if r.intent else None for r in read]
    assert [job.render(templates)] * 2 == rendered


def test_ingest_with_the_helper_ends_as_without_it(runtime: Runtime):
    """Three batches processed with the helper: every request decided and answered, every mail complete."""
    mails = [request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello") for i in range(250)]
    with start_helper(runtime) as helper:
        assert helper is not None, "this machine has one core: the helper is not used"
        outcome = Pipeline(runtime).accept_many([(raw, "file", "") for raw in mails])

    assert [Disposition.PROCESSED] * 250 == outcome
    assert runtime.helper is None
    assert 250 == _count(runtime, Request.id)
    with runtime.sessions() as session:
        rows = session.execute(select(OutboxMessage.kind, OutboxMessage.subject, OutboxMessage.raw)).all()
    assert 750 == len(rows)
    assert all(subject and raw.startswith(b"From: ") for _kind, subject, raw in rows)
    assert 500 == sum(kind == "approval_request" for kind, _subject, _raw in rows)


def test_a_helper_that_dies_leaves_the_work_to_this_process(runtime: Runtime):
    """The helper killed mid-run: its batch is redone in-process, nothing lost or doubled, no helper after."""
    first = [request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello") for i in range(20)]
    then = [request_mail(f"late{i}@ghent.example", "JOIN circular", "Hello") for i in range(20)]
    pipeline = Pipeline(runtime)
    with start_helper(runtime) as helper:
        assert helper is not None
        assert [Disposition.PROCESSED] * 20 == pipeline.accept_many([(raw, "file", "") for raw in first])
        [process] = multiprocessing.active_children()
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        outcome = pipeline.accept_many([(raw, "file", "") for raw in then])
        assert runtime.helper is None

    assert [Disposition.PROCESSED] * 20 == outcome
    assert 40 == _count(runtime, Request.id)
    assert 120 == _count(runtime, OutboxMessage.id)


def test_a_helper_that_hangs_is_left_behind(runtime: Runtime, monkeypatch: pytest.MonkeyPatch):
    """A helper that stops answering (SIGSTOP here) is waited for a while, then the work is done here."""
    monkeypatch.setattr(helper_module, "WAIT_SECONDS", 1.0)
    mails = [request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello") for i in range(20)]
    with start_helper(runtime) as helper:
        assert helper is not None
        [process] = multiprocessing.active_children()
        os.kill(process.pid, signal.SIGSTOP)
        try:
            outcome = Pipeline(runtime).accept_many([(raw, "file", "") for raw in mails])
            assert runtime.helper is None
        finally:
            os.kill(process.pid, signal.SIGCONT)
    process.terminate()  # abandoned, it would otherwise live until pytest ends
    process.join(10)

    assert [Disposition.PROCESSED] * 20 == outcome
    assert 20 == _count(runtime, Request.id)
    assert 60 == _count(runtime, OutboxMessage.id)
