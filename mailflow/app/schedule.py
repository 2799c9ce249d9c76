"""``mailflow tick``: the scheduled mail that falls due at a given time, each sent exactly once.

A job reads what is due and returns one :class:`Due` per mail, keyed by job, subject, period and recipient.
Each mail is then queued in a transaction of its own together with its key in ``once_keys``, whose primary
key refuses a second copy: a tick run twice, a tick that crashed halfway and is run again, or two instances
ticking at once all send every mail exactly once. Jobs only read, so a job may be re-run at any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from mailflow.app import digests, lifecycle, meeting_jobs
from mailflow.app.jobs import Due, Job, Progress, TickResult, run_jobs
from mailflow.app.runtime import Runtime

__all__ = ["JOBS", "Due", "Job", "TickResult", "tick"]

JOBS: dict[str, Job] = {**meeting_jobs.JOBS, **lifecycle.JOBS, **digests.JOBS}
"""Every scheduled job, in the order a tick runs them."""


def tick(
    runtime: Runtime,
    now: datetime | None = None,
    jobs: Iterable[str] | Mapping[str, Job] | None = None,
    progress: Progress | None = None,
) -> TickResult:
    """Run the scheduled jobs at ``now`` (the clock's time when None); each due mail is queued once.

    ``jobs`` picks some of :data:`JOBS` by name, or gives jobs of its own (a mapping of name to job);
    ``progress`` is told how far each job's mails have got.
    """
    chosen = jobs if isinstance(jobs, Mapping) else {name: JOBS[name] for name in (jobs or JOBS)}
    return run_jobs(runtime, now or runtime.clock(), chosen, progress)
