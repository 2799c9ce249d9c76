"""``mailflow serve``: intake, processing, the outbox sender and the scheduler, until SIGTERM or SIGINT.

One thread processes stored messages, woken by the SMTP listener the moment a message is stored; another
drains the outbox, woken as soon as a message has been processed, so a reply leaves within milliseconds and
slow deliveries (fsync, a remote relay) never hold up processing. IMAP runs in a thread of its own.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from mailflow.app.outbox import Pacer, send_once
from mailflow.app.process import Cursors, Pipeline, process_pending
from mailflow.app.runtime import Runtime
from mailflow.app.schedule import tick
from mailflow.errors import MailflowError
from mailflow.intake.imap import ImapIntake
from mailflow.intake.smtp import make_listener
from mailflow.outbound.transport import Transport, make_transport
from mailflow.store import migrate

log = logging.getLogger("mailflow.serve")

IDLE_WAKE_SECONDS = 5.0
TICK_SECONDS = 60.0
"""How often serve runs the scheduled jobs (reminders, summaries); each mail is still sent only once."""


def _scheduler(runtime: Runtime, sent: threading.Event, stop: threading.Event) -> None:
    """Run the scheduled jobs every minute; wake the sender when they queued mail."""
    while not stop.is_set():
        try:
            if tick(runtime).total:
                sent.set()
        except Exception:
            log.exception("scheduled jobs failed; retrying in %s s", TICK_SECONDS)
        stop.wait(TICK_SECONDS)


def _processor(runtime: Runtime, wake: threading.Event, sent: threading.Event, stop: threading.Event) -> None:
    """Process stored messages as soon as the listener wakes us (or every few seconds)."""
    while not stop.is_set():
        wake.wait(IDLE_WAKE_SECONDS)
        wake.clear()
        try:
            while process_pending(runtime, limit=200, on_processed=sent.set):
                pass
        except Exception:
            log.exception("processing round failed; retrying in %s s", IDLE_WAKE_SECONDS)
            stop.wait(IDLE_WAKE_SECONDS)


def _sender(runtime: Runtime, transport: Transport, wake: threading.Event, stop: threading.Event) -> None:
    """Drain the outbox whenever processing queued mail, and every few seconds for retries that fall due."""
    pacer = Pacer(runtime.settings.smtp.rate_per_minute)
    while not stop.is_set():
        wake.wait(IDLE_WAKE_SECONDS)
        wake.clear()
        try:
            send_once(runtime, transport, should_stop=stop.is_set, pacer=pacer)
        except Exception:
            log.exception("sending round failed; retrying in %s s", IDLE_WAKE_SECONDS)
            stop.wait(IDLE_WAKE_SECONDS)


def _on_signals(stop: threading.Event, wake: threading.Event) -> None:
    """Make SIGTERM and SIGINT stop the service cleanly (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received signal %s: shutting down", signum)
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def serve(
    runtime: Runtime, stop: threading.Event | None = None, ready: Callable[[], None] | None = None
) -> None:
    """Run until ``stop`` is set (by SIGTERM/SIGINT when running in the main thread)."""
    settings = runtime.settings
    if not migrate.is_current(runtime.engine):
        raise MailflowError("the database schema is missing or old: run `mailflow init` first")
    stop = stop or threading.Event()
    wake = threading.Event()
    sent = threading.Event()
    _on_signals(stop, wake)
    transport = make_transport(settings.smtp, settings.maildir, settings.smtp.password())
    threads = [
        threading.Thread(target=_processor, args=(runtime, wake, sent, stop), name="processor", daemon=True),
        threading.Thread(target=_sender, args=(runtime, transport, sent, stop), name="sender", daemon=True),
        threading.Thread(target=_scheduler, args=(runtime, sent, stop), name="scheduler", daemon=True),
    ]
    listener = None
    if settings.smtp_intake.enabled:
        listener = make_listener(
            settings.smtp_intake,
            Pipeline(runtime, process_now=False),
            settings.network.address,
            wake.set,
        )
        try:
            listener.start()
        except (OSError, RuntimeError) as exc:
            where = f"{settings.smtp_intake.host}:{settings.smtp_intake.port}"
            raise MailflowError(f"[smtp_intake] cannot listen on {where}: {exc}") from None
        proto = "LMTP" if settings.smtp_intake.lmtp else "SMTP"
        log.info(
            "%s intake listening on %s:%s",
            proto,
            settings.smtp_intake.host,
            settings.smtp_intake.port,
        )
    if settings.imap is not None and settings.imap.enabled:
        pipeline = Pipeline(runtime, on_processed=sent.set)
        imap = ImapIntake(settings.imap, settings.imap.password(), pipeline, Cursors(runtime))
        threads.append(threading.Thread(target=imap.run, args=(stop,), name="imap", daemon=True))
    for thread in threads:
        thread.start()
    wake.set()
    if ready is not None:
        ready()
    log.info("mailflow is running; outbound mail goes to %s", _describe_transport(runtime))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        wake.set()
        sent.set()
        if listener is not None:
            listener.stop()
        for thread in threads:
            thread.join(timeout=30)
        transport.close()
        log.info("mailflow stopped")


def _describe_transport(runtime: Runtime) -> str:
    smtp = runtime.settings.smtp
    if smtp.transport == "maildir":
        return f"the Maildir {runtime.settings.maildir}"
    return f"SMTP {smtp.host}:{smtp.port}"
