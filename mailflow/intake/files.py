"""``mailflow ingest FILE… | -``: raw RFC 5322 messages from files or standard input, for an MTA pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailflow.intake.base import BatchSink, Disposition


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


_CHUNK = 100
"""Files read and handed to the sink at a time: enough to share each transaction, little memory held."""


def ingest(paths: list[str], sink: BatchSink) -> IngestResult:
    """Store and process each message; files that cannot be read are listed, not fatal.

    A message read from a file is identified by its bytes (the sink dedupes them), so piping the same file
    twice processes it once.
    """
    result = IngestResult()
    chunk: list[tuple[bytes, str, str]] = []
    for name, raw in _sources(paths):
        if raw is None:
            result.unreadable.append(name)
        else:
            chunk.append((raw, "file", ""))
        if len(chunk) == _CHUNK:
            _count(result, sink.accept_many(chunk))
            chunk = []
    if chunk:
        _count(result, sink.accept_many(chunk))
    return result


def _count(result: IngestResult, outcomes: list[Disposition]) -> None:
    for outcome in outcomes:
        if outcome is Disposition.PROCESSED:
            result.processed += 1
        elif outcome is Disposition.QUARANTINED:
            result.quarantined += 1
        else:
            result.pending += 1
