"""Delivery: send each outbox job's results, retry with exponential backoff, dead-letter after N failures.

Runs in its own thread so a destination that is down never blocks the app workers
(the Informatics Gateway's export retry loop blocking its queue is the cautionary tale,
informatics-gateway#153). Jobs are tried in order of their next due time, each at most
once per pass, so one failing study does not starve the others. Delivered jobs move to
``done/`` and are deleted after the retention period.
"""

from __future__ import annotations

import logging
import threading
import time

from gateway.audit import AuditLog
from gateway.deadletter import dead_letter
from gateway.sender import OutputFile, Sender, SendError
from gateway.spool import DONE, OUT, OUTBOX, Spool, instance_uids

LOGGER = logging.getLogger(__name__)

LEDGER_MAX_AGE_S = 30 * 24 * 3600.0  # how long processed studies are remembered for duplicate detection
_CLEAN_INTERVAL_S = 10.0


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    """Delay before the next try after ``failures`` consecutive failures: base · 2^(failures−1), capped."""
    if failures < 1:
        return 0.0
    return float(min(max_s, base_s * (2 ** min(failures - 1, 30))))


class Delivery:
    """The outbox loop."""

    def __init__(self, spool: Spool, audit: AuditLog, sender: Sender, destination: str, send_attempts: int,
                 backoff_base: float, backoff_max: float, retention_s: float) -> None:
        self.spool = spool
        self.audit = audit
        self.sender = sender
        self.destination = destination
        self.send_attempts = send_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retention_s = retention_s
        self._wake = threading.Event()
        self._last_clean = 0.0
        self.in_flight: str | None = None

    def notify(self) -> None:
        """Wake the loop (a job reached the outbox)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Deliver due jobs until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.run_once()
                self.clean(force=False)
            except Exception:  # the loop must survive anything; the job-level errors are handled inside
                LOGGER.exception("delivery loop error")
            self._wake.wait(self._sleep_time())
            self._wake.clear()

    def _sleep_time(self) -> float:
        """Sleep until the earliest retry is due (at most 1 s, so stop and new jobs are noticed)."""
        now = time.time()
        due = []
        for job_id in self.spool.list_jobs(OUTBOX):
            try:
                due.append(self.spool.load(OUTBOX, job_id).next_send_at or now)
            except FileNotFoundError:
                continue
        return max(0.05, min([1.0, *(d - now for d in due)]))

    def run_once(self) -> int:
        """One pass over the outbox: try every due job once; return how many were delivered."""
        delivered = 0
        for job_id in self.spool.list_jobs(OUTBOX):
            record = self.spool.load(OUTBOX, job_id)
            if record.next_send_at is not None and record.next_send_at > time.time():
                continue
            self.in_flight = job_id
            try:
                delivered += self.deliver(job_id)
            finally:
                self.in_flight = None
        return delivered

    def deliver(self, job_id: str) -> int:
        """Send the missing outputs of one job; 1 if it is now delivered, else 0."""
        spool = self.spool
        record = spool.load(OUTBOX, job_id)
        folder = spool.job_dir(OUTBOX, job_id)
        done = spool.delivered(OUTBOX, job_id)
        pending = [OutputFile(folder / OUT / o["file"], o["sop_class_uid"], o["sop_instance_uid"],
                              o["transfer_syntax"]) for o in record.outputs if o["sop_instance_uid"] not in done]
        started = time.monotonic()
        try:
            warnings = self.sender.send(pending, lambda uids: spool.mark_delivered(OUTBOX, job_id, uids))
        except SendError as error:
            self._failed(job_id, str(error))
            return 0
        send_ms = int((time.monotonic() - started) * 1000)
        record.sent_at = time.time()
        record.next_send_at = None
        spool.save(OUTBOX, record)
        spool.move(job_id, OUTBOX, DONE)
        spool.add_to_ledger(record.study_uid, instance_uids(spool.job_dir(DONE, job_id)))
        self.audit.record("sent", job=job_id, study_uid=record.study_uid, destination=self.destination,
                          outputs=len(record.outputs), instances=len(pending), send_ms=send_ms,
                          attempt=record.send_attempts + 1, warnings=warnings or None,
                          total_ms=int((record.sent_at - record.created_at) * 1000))
        LOGGER.info("job %s: %d result(s) delivered to %s", job_id, len(pending), self.destination)
        if self.retention_s == 0:
            spool.delete(DONE, job_id)
        return 1

    def _failed(self, job_id: str, reason: str) -> None:
        record = self.spool.load(OUTBOX, job_id)
        record.send_attempts += 1
        record.add_error("send", reason)
        if record.send_attempts >= self.send_attempts:
            dead_letter(self.spool, self.audit, record, OUTBOX, "send",
                        f"{reason}; gave up after {record.send_attempts} attempt(s)")
            return
        delay = backoff_delay(record.send_attempts, self.backoff_base, self.backoff_max)
        record.next_send_at = time.time() + delay
        self.spool.save(OUTBOX, record)
        LOGGER.warning("job %s: delivery failed (%s); retry %d of %d in %.1f s", job_id, reason,
                       record.send_attempts + 1, self.send_attempts, delay)
        self.audit.record("failed", job=job_id, study_uid=record.study_uid, stage="send", reason=reason,
                          destination=self.destination, attempt=record.send_attempts,
                          max_attempts=self.send_attempts, retry_in_s=round(delay, 3))

    def clean(self, force: bool = True) -> int:
        """Delete delivered jobs older than the retention period and stale ledger entries."""
        now = time.time()
        if not force and now - self._last_clean < _CLEAN_INTERVAL_S:
            return 0
        self._last_clean = now
        removed = 0
        for job_id in self.spool.list_jobs(DONE):
            try:
                record = self.spool.load(DONE, job_id)
            except FileNotFoundError:
                continue
            finished = record.sent_at or record.processing_started_at or record.created_at
            if now - finished >= self.retention_s:
                self.spool.delete(DONE, job_id)
                removed += 1
        self.spool.prune_ledger(LEDGER_MAX_AGE_S)
        return removed
