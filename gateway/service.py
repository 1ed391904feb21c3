"""The gateway process: wires spool, SCP, quiet timer, workers, delivery and status together.

Start-up order matters for crash recovery: take the spool lock, drop half-written temp
files, resume interrupted jobs (``processing/`` back to the queue, ``incoming/`` timers
restarted, ``outbox/`` retried by the delivery loop), and only then open the DICOM port.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from gateway import __version__
from gateway.audit import AuditLog
from gateway.delivery import Delivery
from gateway.fsutil import write_json_atomic
from gateway.intake import Intake
from gateway.quiet import QuietTimer
from gateway.runner import AppRunner
from gateway.scp import StoreSCP
from gateway.sender import Sender, make_sender
from gateway.settings import GatewaySettings
from gateway.spool import Spool
from gateway.status import HEARTBEAT_FILE, StatusServer, snapshot
from gateway.watermark import Watermark
from gateway.worker import Processor, WorkerPool

LOGGER = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 2.0


class Gateway:
    """One gateway instance serving one spool."""

    def __init__(self, settings: GatewaySettings, sender: Sender | None = None,
                 watermark: Watermark | None = None) -> None:
        self.settings = settings
        self.spool = Spool(settings.spool)
        self.audit = AuditLog(settings.audit_path)
        self.watermark = watermark or Watermark(settings.spool, settings.min_free_mb)
        self.timer = QuietTimer(settings.quiet_seconds)
        self.runner = AppRunner(settings.app_command, settings.models, settings.app_timeout, settings.app_cwd)
        self.delivery = Delivery(self.spool, self.audit,
                                 sender or make_sender(settings.destination, settings.ae_title,
                                                       settings.network_timeout),
                                 settings.destination.describe(), settings.send_attempts, settings.backoff_base,
                                 settings.backoff_max, settings.retention)
        self.processor = Processor(self.spool, self.runner, self.audit, settings.app_attempts, settings.dedupe,
                                   on_outbox=lambda job_id: self.delivery.notify())
        self.pool = WorkerPool(self.processor, settings.workers)
        self.intake = Intake(self.spool, self.timer, self.audit, on_complete=self.pool.submit)
        self._accepting = False
        self.scp = StoreSCP(settings, self.spool, self.intake, self.watermark, self.audit,
                            accepting=lambda: self._accepting)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_server: StatusServer | None = None
        self.started_at = time.time()

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Recover the spool, start the loops, then open the DICOM port."""
        self.spool.acquire()
        if os.environ.get(Watermark.OVERRIDE_ENV):
            LOGGER.warning("%s is set: free disk space is faked (test setting)", Watermark.OVERRIDE_ENV)
        dropped = self.spool.clear_tmp()
        if dropped:
            LOGGER.warning("dropped %d unacknowledged partial instance(s) from tmp/", dropped)
        for job_id in self.processor.recover():
            self.pool.submit(job_id)
        self.intake.recover()
        self.pool.start()
        for name, target in (("quiet-timer", self.intake.run), ("delivery", self.delivery.run),
                             ("housekeeping", self._housekeeping_loop)):
            thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._write_heartbeat()
        self._accepting = True
        self.scp.start()
        if self.settings.status_port is not None:
            self._status_server = StatusServer(self.settings.status_port, self.status)
            self._status_server.start()
            LOGGER.info("status on http://127.0.0.1:%d/status", self._status_server.port)
        LOGGER.info("gateway %s ready: %s -> %s, spool %s", __version__, self.settings.ae_title,
                    self.settings.destination.describe(), self.spool.root)

    def stop(self) -> None:
        """Stop accepting, kill running apps (their jobs resume at next start), stop the loops."""
        LOGGER.info("gateway stopping")
        self._accepting = False
        self.scp.stop()
        self.runner.stop()
        self.pool.stop()
        self._stop.set()
        self.delivery.notify()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._status_server is not None:
            self._status_server.stop()
        heartbeat = self.spool.root / HEARTBEAT_FILE
        heartbeat.unlink(missing_ok=True)
        self.spool.release()
        LOGGER.info("gateway stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop_requested = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            LOGGER.info("signal %d received", signum)
            stop_requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        try:
            while not stop_requested.wait(1.0):
                pass
        finally:
            self.stop()

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Live snapshot: the spool view plus what the threads are doing right now."""
        snap = snapshot(self.spool, self.settings.audit_path)
        snap["workers_busy"] = self.pool.active()
        snap["delivering"] = self.delivery.in_flight
        snap["disk_free_mb"] = self.watermark.check().free_mb
        return snap

    def _write_heartbeat(self) -> None:
        s = self.settings
        write_json_atomic(self.spool.root / HEARTBEAT_FILE, {
            "pid": os.getpid(), "version": __version__, "started_at": self.started_at,
            "heartbeat_at": time.time(), "ae_title": s.ae_title, "bind": s.bind, "port": s.port,
            "destination": s.destination.describe(), "workers": s.workers, "quiet_seconds": s.quiet_seconds,
            "status_port": s.status_port, "workers_busy": self.pool.active(),
            "delivering": self.delivery.in_flight})

    def _housekeeping_loop(self, stop: threading.Event) -> None:
        """Heartbeat for ``status``, and pick up jobs an operator requeued into ``complete/``."""
        while not stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                self._write_heartbeat()
                if self._accepting and self.pool.rescan():
                    LOGGER.info("picked up requeued job(s) from complete/")
            except OSError as error:
                LOGGER.error("housekeeping: %s", error)
