"""Rules of the pipeline that need a clock or a store: token expiry, rate limits, subdomains, DMARC."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import select

from mailflow.app.process import Pipeline
from mailflow.app.runtime import Runtime
from mailflow.store.schema import OutboxMessage, Request
from mailflow.testing import APPROVER, gmail_reply, request_mail
from tests.conftest import Clock


def _outbox(runtime: Runtime, kind: str, to: str | None = None) -> list[OutboxMessage]:
    with runtime.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        if to:
            query = query.where(OutboxMessage.to_addr == to)
        return list(session.scalars(query))


def _state(runtime: Runtime) -> list[str]:
    with runtime.sessions() as session:
        return [r.state for r in session.scalars(select(Request).order_by(Request.id))]


def _feed(runtime: Runtime, raw: bytes) -> None:
    Pipeline(runtime).accept(raw, "file", "")


def _approval(runtime: Runtime) -> bytes:
    [row] = _outbox(runtime, "approval_request", APPROVER)
    return row.raw


def test_expired_token_changes_nothing(runtime: Runtime, clock: Clock):
    """An approval reply after the token's lifetime is refused and the request stays pending."""
    _feed(runtime, request_mail("anna@ghent.example", "JOIN circular", "Hello"))
    approval = _approval(runtime)
    clock.advance(days=runtime.settings.secretariat.token_days + 1)
    _feed(runtime, gmail_reply(approval, APPROVER, "APPROVE"))
    assert ["pending_approval"] == _state(runtime)
    [notice] = _outbox(runtime, "token_refused", APPROVER)
    assert b"expired" in notice.raw


def test_replies_to_one_sender_are_rate_limited(runtime: Runtime, clock: Clock):
    """A sender who writes many times in an hour gets at most the configured number of replies."""
    limit = runtime.settings.limits.replies_per_sender_per_hour
    for i in range(limit + 5):
        _feed(runtime, request_mail("anna@ghent.example", f"HELP {i}", "How does this work?"))
        clock.advance(seconds=1)
    assert limit == len(_outbox(runtime, "help", "anna@ghent.example"))
    clock.advance(hours=1)
    _feed(runtime, request_mail("anna@ghent.example", "HELP again", "How does this work?"))
    assert limit + 1 == len(_outbox(runtime, "help", "anna@ghent.example"))


def test_subdomain_of_a_registered_domain_is_the_same_organisation(runtime: Runtime):
    """Staff writing from procurement.malmo.example belong to the organisation of malmo.example."""
    _feed(runtime, request_mail("sara@procurement.malmo.example", "JOIN food", "Hello"))
    assert ["pending_approval"] == _state(runtime)
    [approval] = _outbox(runtime, "approval_request", APPROVER)
    message = message_from_bytes(approval.raw, _class=EmailMessage, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert "City of Malmo" in message.get_body(("plain",)).get_content()


def test_html_only_request_in_german_is_understood(runtime: Runtime):
    """An HTML-only request written in German finds its group and goes to approval."""
    body = (
        "Guten Tag,\n\nwir möchten der Gruppe Circular Public Procurement beitreten.\n\n"
        "Mit freundlichen Grüßen"
    )
    _feed(runtime, request_mail("anna@ghent.example", "Anfrage", body, html_only=True))
    assert ["pending_approval"] == _state(runtime)


def _authenticated(raw: bytes, header: str) -> bytes:
    return f"Authentication-Results: {header}\r\n".encode() + raw


def test_authenticated_approvals_need_our_servers_dmarc_pass(tmp_path, database_url, clock: Clock):
    """With authenticated approvals on, only our server's topmost result with DMARC pass counts."""
    from mailflow.app.registry import import_file  # noqa: PLC0415
    from mailflow.app.runtime import build_runtime  # noqa: PLC0415
    from mailflow.app.setup import initialise  # noqa: PLC0415
    from mailflow.config import load_settings  # noqa: PLC0415
    from mailflow.testing import DEMO_REGISTRY, write_config  # noqa: PLC0415

    config = write_config(
        tmp_path,
        database_url,
        secretariat='require_authenticated_approvals = true\nauthserv_id = "mx.network.example"',
    )
    runtime = build_runtime(load_settings(config))
    runtime.clock = clock
    try:
        initialise(runtime)
        (tmp_path / "r.csv").write_text(DEMO_REGISTRY, encoding="utf-8")
        import_file(runtime, tmp_path / "r.csv")
        _feed(runtime, request_mail("anna@ghent.example", "JOIN circular", "Hello"))
        approval = _approval(runtime)
        reply = gmail_reply(approval, APPROVER, "APPROVE")
        _feed(runtime, reply)
        # A result the sender wrote under another server's name does not count.
        _feed(
            runtime,
            _authenticated(reply.replace(b"Message-ID: <", b"Message-ID: <x"), "evil.example; dmarc=pass"),
        )
        assert ["pending_approval"] == _state(runtime)
        good = _authenticated(
            reply.replace(b"Message-ID: <", b"Message-ID: <y"),
            "mx.network.example; dkim=pass header.d=iclei.example; dmarc=pass header.from=iclei.example",
        )
        _feed(runtime, good)
        assert ["approved"] == _state(runtime)
    finally:
        runtime.engine.dispose()


def _reply_to_ours(runtime: Runtime, kind: str, text: str) -> bytes:
    [row] = _outbox(runtime, kind, "anna@ghent.example")
    from mailflow.testing import plain_reply  # noqa: PLC0415

    return plain_reply(row.raw, "anna@ghent.example", text)


def test_reply_to_our_mail_is_read_by_its_body(runtime: Runtime, clock: Clock):
    """A reply to our acknowledgement saying STATUS gets the status, not a second join request."""
    _feed(runtime, request_mail("anna@ghent.example", "JOIN circular", "Hello"))
    _feed(runtime, _reply_to_ours(runtime, "acknowledge", "STATUS"))
    assert 1 == len(_outbox(runtime, "status", "anna@ghent.example"))
    assert [] == _outbox(runtime, "refusal", "anna@ghent.example")
    assert ["pending_approval"] == _state(runtime)


def test_thanks_in_reply_to_a_welcome_is_not_a_join(runtime: Runtime, clock: Clock):
    """Thanking for the welcome mail does not read as a second request to join ("already a member")."""
    _feed(runtime, request_mail("anna@ghent.example", "JOIN circular", "Hello"))
    from mailflow.app.queries import decide  # noqa: PLC0415
    from mailflow.core.model import Verdict  # noqa: PLC0415

    with runtime.sessions() as session:
        request_id = session.scalars(select(Request.id)).one()
    decide(runtime, request_id, Verdict.APPROVE)
    _feed(runtime, _reply_to_ours(runtime, "welcome", "Thanks a lot!"))
    assert [] == _outbox(runtime, "refusal", "anna@ghent.example")
    assert 1 == len(_state(runtime))


def test_store_failure_while_processing_leaves_the_message_pending(runtime: Runtime, database_url: str):
    """When the database fails mid-processing, the message is not blamed: it stays pending for a retry."""
    import pytest  # noqa: PLC0415
    from sqlalchemy import text  # noqa: PLC0415

    from mailflow.app.process import process_one, store_raw  # noqa: PLC0415
    from mailflow.errors import StoreUnavailableError  # noqa: PLC0415
    from mailflow.store.schema import InboundMessage  # noqa: PLC0415

    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite reports a vanished table as OperationalError, as it does a failing disk")
    stored = store_raw(runtime, request_mail("anna@ghent.example", "HELP", ""), "file")
    with runtime.engine.begin() as connection:
        connection.execute(text("ALTER TABLE events RENAME TO events_away"))
    with pytest.raises(StoreUnavailableError):
        process_one(runtime, stored.inbound_id)
    with runtime.engine.begin() as connection:
        connection.execute(text("ALTER TABLE events_away RENAME TO events"))
    with runtime.sessions() as session:
        assert "pending" == session.get_one(InboundMessage, stored.inbound_id).status
    process_one(runtime, stored.inbound_id)
    assert 1 == len(_outbox(runtime, "help", "anna@ghent.example"))
