"""Two approvers deciding at the same moment: exactly one decision counts, the other is told."""

from __future__ import annotations

import threading

from sqlalchemy import select

from mailflow.app.process import Pipeline, process_one, store_raw
from mailflow.app.runtime import Runtime
from mailflow.store.schema import OutboxMessage, Request
from mailflow.testing import APPROVER, gmail_reply, outlook_reply, request_mail


def test_simultaneous_approve_and_reject_decide_once(runtime: Runtime):
    """APPROVE and REJECT processed concurrently: one wins, the loser gets a refusal, nothing is half done."""
    Pipeline(runtime).accept(request_mail("anna@ghent.example", "JOIN circular", "Hello"), "file", "")
    with runtime.sessions() as session:
        approvals = {
            row.to_addr: row.raw
            for row in session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "approval_request"))
        }
    second = "second@iclei.example"
    replies = [
        outlook_reply(approvals[APPROVER], APPROVER, "APPROVE"),
        gmail_reply(approvals[second], second, "REJECT not in scope"),
    ]
    stored = [store_raw(runtime, raw, "file") for raw in replies]
    start = threading.Barrier(2)

    def work(inbound_id: int) -> None:
        start.wait()
        process_one(runtime, inbound_id)

    threads = [threading.Thread(target=work, args=(s.inbound_id,)) for s in stored]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with runtime.sessions() as session:
        [request] = session.scalars(select(Request)).all()
        kinds = sorted(
            session.scalars(select(OutboxMessage.kind).where(OutboxMessage.to_addr == "anna@ghent.example"))
        )
        # The loser hears either that the request is already decided, or (when the winner committed
        # before its token was read) that its reply code was already used.
        notices = session.scalars(
            select(OutboxMessage.to_addr).where(OutboxMessage.kind.in_(["refusal", "token_refused"]))
        ).all()
    assert request.state in {"approved", "rejected"}
    assert 1 == len(notices)
    decided = {"approved": "welcome", "rejected": "rejected"}[request.state]
    assert ["acknowledge", decided] == kinds
