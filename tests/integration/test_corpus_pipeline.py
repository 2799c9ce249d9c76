"""Every sample of the corpus goes through the whole pipeline: a sensible outcome, never a crash or a loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from mailflow.app.helper import start_helper
from mailflow.app.process import Pipeline
from mailflow.app.runtime import Runtime, build_runtime
from mailflow.config import load_settings
from mailflow.intake.base import Disposition
from mailflow.store.schema import InboundMessage, OutboxMessage

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "eml").glob("*.eml"))
NEVER_ANSWERED = ("ooo_", "dsn_", "ndr_", "list_", "own_")


@pytest.mark.parametrize("sample", CORPUS, ids=[p.stem for p in CORPUS])
def test_sample_goes_through_the_pipeline(runtime: Runtime, sample: Path):
    """Automated mail is recorded and never answered; a person's mail is processed or quarantined."""
    outcome = Pipeline(runtime).accept(sample.read_bytes(), "file", "")
    assert outcome in {Disposition.PROCESSED, Disposition.QUARANTINED}
    with runtime.sessions() as session:
        [inbound] = session.scalars(select(InboundMessage)).all()
        replies = session.scalars(select(OutboxMessage)).all()
    if sample.stem.startswith("imip_"):
        # A calendar answer is read for its RSVP (here to a meeting this store does not know), never answered.
        assert ("processed", "calendar_reply", []) == (inbound.status, inbound.reason, list(replies))
    elif sample.stem.startswith(NEVER_ANSWERED):
        assert ("ignored", []) == (inbound.status, list(replies))
    elif inbound.status == "quarantined":
        assert inbound.reason
    else:
        assert "processed" == inbound.status
        assert replies, "a person's mail must get an answer"


def _outcomes(runtime: Runtime) -> list[tuple[str, str, str, list[str]]]:
    """Per stored message, in arrival order: status, reason, sender, and the kinds of mail queued to it."""
    with runtime.sessions() as session:
        inbound = session.execute(
            select(InboundMessage.status, InboundMessage.reason, InboundMessage.from_addr).order_by(
                InboundMessage.id
            )
        ).all()
        queued = session.execute(select(OutboxMessage.to_addr, OutboxMessage.kind).order_by(OutboxMessage.id))
        kinds: dict[str, list[str]] = {}
        for to, kind in queued:
            kinds.setdefault(to, []).append(kind)
    return [(status, reason, sender, kinds.get(sender.lower(), [])) for status, reason, sender in inbound]


@pytest.mark.parametrize("helped", [False, True], ids=["in-process", "helper"])
def test_the_whole_corpus_in_one_batch_ends_as_one_message_at_a_time(
    runtime: Runtime, config_path: Path, helped: bool
):
    """Every sample in one batch ends exactly as the samples fed one at a time.

    The batch reads its messages ahead (in the helper, or here), looks its senders up together and writes its
    rows at its end; none of that may change an outcome.
    """
    raws = [sample.read_bytes() for sample in CORPUS]
    with start_helper(runtime, wanted=helped):
        Pipeline(runtime).accept_many([(raw, "file", "") for raw in raws])
    together = _outcomes(runtime)

    alone = build_runtime(load_settings(config_path))
    alone.clock = runtime.clock
    try:
        with alone.engine.begin() as connection:  # the same store, emptied of what the batch did
            for table in ("events", "outbox", "reply_tokens", "requests", "inbound_messages"):
                connection.execute(text(f"DELETE FROM {table}"))
        for raw in raws:
            Pipeline(alone).accept(raw, "file", "")
        assert together == _outcomes(alone)
    finally:
        alone.engine.dispose()
