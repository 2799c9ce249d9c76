"""``mailflow ingest FILE… | -``: raw RFC 5322 messages from files or standard input, for an MTA pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailflow.intake.base import Disposition, Sink


@dataclass
class IngestResult:
    """What an ingest run did, per outcome."""

    processed: int = 0
    quarantined: int = 0
    pending: int = 0
    unreadable: list[str] = field(default_factory=list)


def _sources(paths: list[str]) -> Iterator[tuple[str, bytes | None]]:
    for name in paths:
        if name == "-":
            yield "<stdin>", sys.stdin.buffer.read()
            continue
        try:
            yield name, Path(name).read_bytes()
        except OSError:
            yield name, None


def ingest(paths: list[str], sink: Sink) -> IngestResult:
    """Store and process each message; files that cannot be read are listed, not fatal.

    A message read from a file is identified by its bytes (the sink dedupes them), so piping the same file
    twice processes it once.
    """
    result = IngestResult()
    for name, raw in _sources(paths):
        if raw is None:
            result.unreadable.append(name)
            continue
        outcome = sink.accept(raw, "file", "")
        if outcome is Disposition.PROCESSED:
            result.processed += 1
        elif outcome is Disposition.QUARANTINED:
            result.quarantined += 1
        else:
            result.pending += 1
    return result
