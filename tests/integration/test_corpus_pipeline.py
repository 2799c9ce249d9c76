"""Every sample of the corpus goes through the whole pipeline: a sensible outcome, never a crash or a loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mailflow.app.process import Pipeline
from mailflow.app.runtime import Runtime
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
