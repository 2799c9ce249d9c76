"""A helper process for a batch's pure work: reading the messages and rendering the mails it queues.

Processing a batch is two kinds of work. Deciding what each message means reads and writes the database, one
transaction at a time. Reading a message (MIME, quotes, HTML, classification: :mod:`mailflow.core.reading`)
and rendering the mails a decision queues (templates and MIME) need nothing but their inputs, and took about a
third of a request's time. With a second core, a helper process does that part while the main process goes on
deciding: ``mailflow ingest`` of many files starts one; everything else works in-process, as it does when
there is no helper.

The helper is a forked copy of the main process, started before any work (before ``ingest`` opens a database
connection) and asked for nothing but pure functions of what it is sent; it ends when the main process does,
killed or not. Its results are those the main process would have produced (a test compares them). When the
helper fails, the batch falls back to processing in-process, message by message, and the helper is not used
again.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import jinja2
from sqlalchemy.orm import Session

from mailflow.app.runtime import Runtime
from mailflow.core.compose import Identity, Rendered, render
from mailflow.core.plans import Mail
from mailflow.core.reading import Reading, View, understand
from mailflow.store.writes import Writes

_templates: jinja2.Environment | None = None  # the helper process's environment, set when it starts


@dataclass(frozen=True, slots=True)
class RenderJob:
    """Everything :func:`~mailflow.core.compose.render` takes but the templates."""

    mail: Mail
    identity: Identity
    message_id: str
    date: datetime
    token: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    extra: dict[str, Any]
    bodies: tuple[str, str, str] | None

    def render(self, templates: jinja2.Environment) -> Rendered:
        """Render the mail with ``templates``."""
        return render(
            templates,
            self.mail,
            identity=self.identity,
            message_id=self.message_id,
            date=self.date,
            token=self.token,
            in_reply_to=self.in_reply_to,
            references=self.references,
            extra=self.extra,
            bodies=self.bodies,
        )


_T = TypeVar("_T")
_ORPHAN_CHECK_SECONDS = 0.2
WAIT_SECONDS = 60.0
"""How long the main process waits for one piece of the helper's work (a batch takes under a second)."""


def _start(templates: jinja2.Environment, parent: int) -> None:
    global _templates  # noqa: PLW0603 - the one environment of the helper process, set once
    _templates = templates
    threading.Thread(target=_exit_with, args=(parent,), name="helper-orphan-check", daemon=True).start()


def _exit_with(parent: int) -> None:
    """End the helper as soon as the process that started it is gone (killed, say).

    A forked helper holds copies of its parent's open files, database connections among them: an orphan that
    lived on would keep a killed parent's PostgreSQL transaction, and its locks, open.
    """
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _ready() -> bool:
    return _templates is not None


def _read_all(raws: Sequence[bytes], view: View) -> list[Reading]:
    return [understand(raw, view) for raw in raws]


def _render_all(jobs: Sequence[RenderJob]) -> list[Rendered]:
    if _templates is None:  # pragma: no cover - the pool's initializer always ran first
        raise RuntimeError("the helper has no templates")
    return [job.render(_templates) for job in jobs]


_RENDERINGS = "mailflow.renderings"


def renderings(session: Session) -> Renderings | None:
    """The helper's renderings for ``session``'s transaction, when the helper renders its mails."""
    found: Renderings | None = session.info.get(_RENDERINGS)
    return found


class Renderings:
    """The mails one transaction has the helper render; their outbox rows are completed before the write.

    A mail's outbox row is kept (:mod:`mailflow.store.writes`) with everything but the rendered columns; the
    jobs go to the helper a message's worth at a time (:meth:`send`), and before the transaction writes its
    rows every result is waited for and filled in.
    """

    def __init__(self, helper: Helper, session: Session, writes: Writes) -> None:
        """Render ``session``'s mails with ``helper``; complete the rows before ``writes`` writes them."""
        session.info[_RENDERINGS] = self
        self._helper = helper
        self._waiting: list[tuple[RenderJob, dict[str, Any]]] = []
        self._sent: list[tuple[Future[list[Rendered]], list[dict[str, Any]]]] = []
        writes.before_flush(self._complete)

    def add(self, job: RenderJob, row: dict[str, Any]) -> None:
        """Have ``job`` rendered into ``row`` (its ``sender``, ``subject`` and ``raw``)."""
        self._waiting.append((job, row))

    def send(self) -> None:
        """Send the jobs added so far to the helper, as one piece of work."""
        if self._waiting:
            jobs, rows = zip(*self._waiting, strict=True)
            self._sent.append((self._helper.render(jobs), list(rows)))
            self._waiting = []

    def _complete(self) -> None:
        self.send()
        for future, rows in self._sent:
            done: list[Rendered] = self._helper.result(future)
            for row, rendered in zip(rows, done, strict=True):
                row.update(sender=rendered.sender, subject=rendered.subject, raw=rendered.raw)
        self._sent = []


class Helper:
    """One helper process and the work sent to it; :meth:`close` it when done."""

    def __init__(self, templates: jinja2.Environment) -> None:
        """Fork the helper (at the first work sent); it renders with this process's ``templates``."""
        # A forked process inherits ``templates`` as it is, not pickled: the same loader, overrides included.
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_start,
            initargs=(templates, os.getpid()),
        )
        self._abandoned = False
        # Fork now, while this process may still have no database connection for the helper to inherit.
        self._pool.submit(_ready).result(timeout=WAIT_SECONDS)

    def read(self, raws: Sequence[bytes], view: View) -> Future[list[Reading]]:
        """Read ``raws`` in the helper: one :func:`~mailflow.core.reading.understand` each, in order."""
        return self._pool.submit(_read_all, list(raws), view)

    def render(self, jobs: Sequence[RenderJob]) -> Future[list[Rendered]]:
        """Render ``jobs`` in the helper: one :class:`Rendered` each, in order."""
        return self._pool.submit(_render_all, list(jobs))

    def result(self, future: Future[_T]) -> _T:
        """The result of work sent to the helper; TimeoutError when it takes over ``WAIT_SECONDS``."""
        return future.result(timeout=WAIT_SECONDS)

    def abandon(self) -> None:
        """Stop sending work to a helper that failed or hangs; it ends with this process at the latest."""
        self._abandoned = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the helper process (work not collected is dropped)."""
        if not self._abandoned:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


@contextmanager
def start_helper(runtime: Runtime, *, wanted: bool = True) -> Iterator[Helper | None]:
    """Give ``runtime`` a helper for the block when ``wanted`` and the machine has a second core to run it.

    A one-core machine (or one without ``fork``) gets none: everything runs in-process, as before.
    """
    if not wanted or _cores() < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    helper = runtime.helper = Helper(runtime.templates)
    try:
        yield helper
    finally:
        runtime.helper = None
        helper.close()
