"""Batches: storing and processing many messages per transaction gives what one at a time gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailflow.app.effects import Mailer, spend_waiting_tokens
from mailflow.app.helper import start_helper
from mailflow.app.process import Pipeline, process_batch, store_many
from mailflow.app.runtime import Runtime, default_templates
from mailflow.core.compose import make_environment
from mailflow.core.plans import Mail, TokenSpec
from mailflow.intake.base import Disposition
from mailflow.intake.files import ingest
from mailflow.store.schema import Contact, InboundMessage, OutboxMessage, ReplyToken, Request
from mailflow.store.writes import at_end
from mailflow.testing import APPROVER, gmail_reply, request_mail


def _count(runtime: Runtime, column: object) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count(column))) or 0  # type: ignore[arg-type]


def _statuses(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.sessions() as session:
        rows = session.execute(
            select(InboundMessage.from_addr, InboundMessage.status).order_by(InboundMessage.id)
        )
        return [(sender, status) for sender, status in rows]


def test_repeats_in_a_batch_and_in_the_store_are_stored_once(runtime: Runtime):
    """A message twice in one batch, and one stored before, each end as one stored, processed message."""
    anna = request_mail("anna@ghent.example", "JOIN circular", "Hello")
    bo = request_mail("bo@ghent.example", "JOIN food", "Hello")
    assert Disposition.PROCESSED is Pipeline(runtime).accept(anna, "file", "")

    stored = store_many(runtime, [(anna, "file", ""), (bo, "file", ""), (bo, "file", "")])

    assert [True, False, True] == [item.duplicate for item in stored]
    assert stored[1].inbound_id == stored[2].inbound_id
    assert ["processed", "pending", "pending"] == [item.status for item in stored]
    assert 2 == _count(runtime, InboundMessage.id)


def test_a_batch_ends_as_one_message_at_a_time_would(runtime: Runtime):
    """Every request of a batch is stored, decided and answered, repeats included, once each."""
    mails = [request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello") for i in range(5)]
    outcome = Pipeline(runtime).accept_many([(raw, "file", "") for raw in [*mails, mails[0]]])

    assert [Disposition.PROCESSED] * 6 == outcome
    assert 5 == _count(runtime, Request.id)
    # Per request: the acknowledgement and one approval mail for each of the two approvers.
    assert 15 == _count(runtime, OutboxMessage.id)
    with runtime.sessions() as session:
        states = set(session.scalars(select(Request.state)))
    assert {"pending_approval"} == states


def test_a_new_sender_twice_in_one_batch_is_one_contact_with_one_request(runtime: Runtime):
    """The second mail of a sender new in the batch finds the contact and the request the first one made.

    A batch reads its senders' contacts before it starts; the ones it creates must be found again too.
    """
    first = request_mail("new@ghent.example", "JOIN circular", "Hello")
    again = request_mail("new@ghent.example", "JOIN circular", "Hello again, did you get my mail?")
    outcome = Pipeline(runtime).accept_many([(first, "file", ""), (again, "file", "")])

    assert [Disposition.PROCESSED] * 2 == outcome
    assert 1 == _count(runtime, Contact.id)
    assert 1 == _count(runtime, Request.id)
    with runtime.sessions() as session:
        kinds = list(
            session.scalars(select(OutboxMessage.kind).where(OutboxMessage.to_addr == "new@ghent.example"))
        )
    assert ["acknowledge", "refusal"] == kinds  # the refusal: "your request is already with the secretariat"


@pytest.mark.parametrize("helped", [False, True], ids=["in-process", "helper"])
def test_a_group_the_batch_creates_is_found_by_a_later_message_of_it(runtime: Runtime, helped: bool):
    """An approved START early in a batch makes a group; a JOIN later in the batch names it and finds it.

    The batch reads its messages (in the helper, or ahead in-process) against the groups it began with; a
    message read before the group existed is read again against the new list.
    """
    start = request_mail("anna@ghent.example", "START Green roofs", "Aim: share tenders for green roofs.")
    Pipeline(runtime).accept(start, "file", "")
    with runtime.sessions() as session:
        approval = session.scalars(
            select(OutboxMessage.raw).where(
                OutboxMessage.kind == "approval_request", OutboxMessage.to_addr == APPROVER
            )
        ).one()
    batch = [
        gmail_reply(approval, APPROVER, "APPROVE"),
        request_mail("bo@malmo.example", "JOIN Green roofs", "Malmo would like to take part."),
    ]
    with start_helper(runtime, wanted=helped):
        outcome = Pipeline(runtime).accept_many([(raw, "file", "") for raw in batch])

    assert [Disposition.PROCESSED] * 2 == outcome
    with runtime.sessions() as session:
        requests = session.execute(select(Request.kind, Request.state).order_by(Request.id)).all()
    assert [("start", "approved"), ("join", "pending_approval")] == [tuple(r) for r in requests]


def test_the_reply_rate_limit_holds_within_one_batch(runtime: Runtime):
    """One sender's many mails in one batch get the replies one at a time would: the limit, no more.

    A batch writes its outbox rows at its end; the limit must count the replies still waiting to be written.
    """
    limit = runtime.settings.limits.replies_per_sender_per_hour
    mails = [request_mail("anna@ghent.example", f"HELP {i}", "How does this work?") for i in range(limit + 4)]
    outcome = Pipeline(runtime).accept_many([(raw, "file", "") for raw in mails])

    assert [Disposition.PROCESSED] * len(mails) == outcome
    with runtime.sessions() as session:
        replies = session.scalars(
            select(OutboxMessage.kind).where(OutboxMessage.to_addr == "anna@ghent.example")
        )
        assert ["help"] * limit == list(replies)


@pytest.mark.parametrize("helped", [False, True], ids=["in-process", "helper"])
def test_a_failing_message_quarantines_only_itself(runtime: Runtime, tmp_path: Path, helped: bool):
    """When one message of a batch fails, the batch is retried one by one and only that one is quarantined.

    With the helper process, the failure happens there (rendering), and reaches the batch the same way.
    """
    folder = tmp_path / "templates"
    shutil.copytree(default_templates(), folder)
    (folder / "help.txt.j2").unlink()  # a deployment's broken override: help replies cannot be rendered
    runtime.templates = make_environment(folder)
    good = [request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello") for i in range(2)]
    bad = request_mail("bo@ghent.example", "HELP", "What can I do here?")
    stored = store_many(runtime, [(good[0], "file", ""), (bad, "file", ""), (good[1], "file", "")])

    with start_helper(runtime, wanted=helped):
        outcome = process_batch(runtime, [(item.inbound_id, None) for item in stored])

    assert [Disposition.PROCESSED, Disposition.QUARANTINED, Disposition.PROCESSED] == outcome
    assert [
        ("user0@ghent.example", "processed"),
        ("", "quarantined"),
        ("user1@ghent.example", "processed"),
    ] == _statuses(runtime)
    with runtime.sessions() as session:
        reason = session.scalar(select(InboundMessage.reason).where(InboundMessage.status == "quarantined"))
    assert reason is not None
    assert "TemplateNotFound" in reason
    assert 2 == _count(runtime, Request.id)


def test_ingest_of_many_files_processes_each_once(runtime: Runtime, tmp_path: Path):
    """More files than one batch holds, one of them given twice, are each processed once."""
    paths = []
    for i in range(130):
        path = tmp_path / f"m{i}.eml"
        path.write_bytes(request_mail(f"user{i}@ghent.example", "JOIN circular", "Hello"))
        paths.append(str(path))

    result = ingest([*paths, paths[7]], Pipeline(runtime))

    assert (131, 0, 0, []) == (result.processed, result.quarantined, result.pending, result.unreadable)
    assert 130 == _count(runtime, Request.id)
    assert 130 * 3 == _count(runtime, OutboxMessage.id)


def test_tokens_minted_and_spent_in_one_transaction_are_written_spent(runtime: Runtime):
    """A decision spends its request's tokens, the ones its transaction minted and keeps for its end too.

    One message at a time these were written before the decision read them; in a batch they still wait.
    """
    Pipeline(runtime).accept(request_mail("anna@ghent.example", "JOIN circular", "Hello"), "file", "")
    with runtime.sessions() as session:
        request = session.scalars(select(Request)).one()
    now = runtime.clock()
    with runtime.sessions.begin() as session, at_end(session):
        request = session.get_one(Request, request.id)
        mailer = Mailer(session, runtime, now)
        for approver in ("a@iclei.example", "b@iclei.example"):
            token = TokenSpec("approval", approver)
            mailer.queue(Mail("approval_reminder", approver, {"pending": []}, token=token), request)
        spend_waiting_tokens(session, now, request_id=request.id)
        spend_waiting_tokens(session, now, request_id=request.id + 1)  # another request's: nothing here
    with runtime.sessions() as session:
        minted = session.scalars(select(ReplyToken).where(ReplyToken.bound_to.like("%@iclei.example"))).all()
    ours = [t for t in minted if t.bound_to in {"a@iclei.example", "b@iclei.example"}]
    assert 2 == len(ours)
    assert all(t.used_at is not None for t in ours)
