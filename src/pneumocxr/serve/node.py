"""The running node: the Storage SCP, the worker (main thread) and the deliverer (a thread).

Start-up: open the journal; remove inbox files that were never journalled (the caller got no
success for them and will resend); load and warm the model; freeze the garbage collector's view of
the loaded objects (``gc.freeze``: later collections skip them); start listening. Queued instances of a previous
run (including a batch interrupted by a crash) are scored first, scored-but-undelivered results are
delivered. SIGTERM or SIGINT: stop accepting associations, finish the batch being scored and the
object being sent, leave everything else in the journal for the next start. Health figures
(``worklist.stats``) are logged every ``metrics_interval_seconds`` (when they changed) and at exit.
Library ``UserWarning``s and library loggers are silenced in the node (``quiet_library_logs``): they can
quote header values such as PatientName or a malformed UID.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path

from pneumocxr.serve.config import ServeConfig
from pneumocxr.serve.delivery import Deliverer
from pneumocxr.serve.journal import Journal
from pneumocxr.serve.scp import start_scp
from pneumocxr.serve.worker import Worker
from pneumocxr.serve.worklist import stats, stats_line
from pneumocxr.serve.worklist_http import start_worklist_http

log = logging.getLogger(__name__)
IDLE_SECONDS = 0.05
# Library loggers switched off in the node (level above CRITICAL). pydicom (``misc.warn_and_log``)
# and highdicom log header values ("Invalid value for VR UI: '999...'"); pynetdicom logs two ERROR lines
# per failed association, which the deliverer already reports with its own WARNING.
LIBRARY_LOGGERS = ("pydicom", "highdicom", "pynetdicom")


def quiet_library_logs() -> None:
    """Silence what libraries say in the node: their ``UserWarning``s and their loggers
    (``LIBRARY_LOGGERS``), so no header value reaches the log and delivery failures are reported
    once, by the node's own lines. The node's own logger (``pneumocxr``) is untouched."""
    warnings.simplefilter("ignore", UserWarning)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def recover_inbox(config: ServeConfig, journal: Journal) -> int:
    """Delete inbox files no journal row points at (never acknowledged); the number removed."""
    inbox = config.state_dir / "inbox"
    if not inbox.is_dir():
        return 0
    known = {r["inbox_path"] for r in journal.query("SELECT inbox_path FROM instances")}
    removed = 0
    for path in inbox.iterdir():
        if str(path) not in known:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d unacknowledged file(s) from the inbox", removed)
    return removed


def _deliver_loop(deliverer: Deliverer, stop: threading.Event) -> None:
    """Deliver until ``stop`` is set; a failure of one round never ends the loop."""
    while not stop.is_set():
        try:
            sent = deliverer.run_once(stop)
        except Exception:
            log.exception("delivery round failed")
            sent = 0
        if not sent:
            stop.wait(0.2)
    deliverer.journal.close()


def serve(
    config: ServeConfig,
    run_dir: str | os.PathLike,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> int:
    """Run the node until ``stop`` is set or SIGTERM/SIGINT arrives (signals only from the main thread)."""
    stop = stop or threading.Event()
    # Library warnings and logs may quote header values (highdicom's person-name check prints PatientName);
    # the node's log must carry no identity, so they are silenced here. Rejections are logged with reasons.
    quiet_library_logs()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    journal = Journal(config.journal_path)
    recover_inbox(config, journal)
    worker = Worker(config, Path(run_dir), journal)
    worker.warm_up()
    # The model's hundreds of thousands of long-lived objects leave the collector's generations: a full
    # collection (pynetdicom's server runs one every 60 polls, ~30 s) otherwise holds the GIL ~0.3 s of CPU.
    gc.freeze()
    server = start_scp(config, journal)
    http = start_worklist_http(config.http, journal) if config.http.enabled else None
    deliverer_thread = threading.Thread(
        target=_deliver_loop, args=(Deliverer(config, journal), stop), name="pneumocxr-deliver", daemon=True
    )
    deliverer_thread.start()
    if ready is not None:
        ready.set()
    next_metrics, last_line = time.monotonic() + config.node.metrics_interval_seconds, ""
    try:
        while not stop.is_set():
            if not worker.run_once():
                stop.wait(IDLE_SECONDS)
            if time.monotonic() >= next_metrics:
                line = stats_line(stats(journal))
                if line != last_line:
                    log.info("health: %s", line)
                last_line = line
                next_metrics, last_line = time.monotonic() + config.node.metrics_interval_seconds, ""
    finally:
        log.info("stopping: no new associations; finishing the current batch and delivery")
        server.shutdown()
        if http is not None:
            http.shutdown()
        stop.set()
        deliverer_thread.join(timeout=config.destination.timeout_seconds + 5)
        worker.close()
        log.info("stopped: %s", stats_line(stats(journal)))
        journal.close()
    return 0
