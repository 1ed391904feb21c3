"""Intake: puts acknowledged instances into ``incoming/<job>/`` and promotes quiet jobs to ``complete/``.

The SCP thread calls :meth:`Intake.store` once the instance bytes are fsynced in
``tmp/``; the rename into the job folder happens under the spool's incoming lock, so a
promotion (rename of the whole job folder) never races with a file landing in it.
Instances that arrive after their study was promoted start a new job of the same study.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

from gateway.audit import AuditLog
from gateway.fsutil import commit, dir_size, safe_uid, write_bytes_durable
from gateway.quiet import QuietTimer
from gateway.spool import COMPLETE, INCOMING, INSTANCES, Spool

LOGGER = logging.getLogger(__name__)


class Intake:
    """Owns ``incoming/``: which job collects each study, and when it is complete."""

    def __init__(self, spool: Spool, timer: QuietTimer, audit: AuditLog,
                 on_complete: Callable[[str], object]) -> None:
        self.spool = spool
        self.timer = timer
        self.audit = audit
        self.on_complete = on_complete
        self._active: dict[str, str] = {}  # study UID -> incoming job id
        self._callers: dict[str, set[str]] = {}  # job id -> calling AE titles seen

    def recover(self) -> list[str]:
        """Adopt jobs left in ``incoming/``: their quiet period restarts now.

        Restarting (rather than using file times) gives a sender whose association was cut
        by the crash a full quiet period to resend into the same job.
        """
        adopted = []
        with self.spool.incoming_lock:
            for job_id in self.spool.list_jobs(INCOMING):
                record = self.spool.load(INCOMING, job_id)
                if record.study_uid in self._active:
                    LOGGER.warning("study has two incoming jobs (%s, %s); both proceed",
                                   self._active[record.study_uid], job_id)
                self._active[record.study_uid] = job_id
                self._callers[job_id] = set(record.calling_aes)
                self.timer.touch(job_id)
                adopted.append(job_id)
                count, _ = dir_size(self.spool.job_dir(INCOMING, job_id) / INSTANCES)
                self.audit.record("recovered", job=job_id, study_uid=record.study_uid, state=INCOMING,
                                  instances=count)
        return adopted

    def store(self, study_uid: str, sop_instance_uid: str, data: bytes, calling_ae: str,
              association: Hashable | None) -> str:
        """Durably store one instance and return its job id; raises ``OSError`` if it cannot.

        Only when this returns may the SCP acknowledge the C-STORE.
        """
        tmp = write_bytes_durable(data, self.spool.tmp)
        try:
            with self.spool.incoming_lock:
                job_id = self._active.get(study_uid)
                if job_id is None:
                    record = self.spool.create_job(study_uid, calling_ae)
                    job_id = record.job_id
                    self._active[study_uid] = job_id
                    self._callers[job_id] = {calling_ae}
                    self.audit.record("received", job=job_id, study_uid=study_uid, calling_ae=calling_ae)
                target = self.spool.job_dir(INCOMING, job_id) / INSTANCES / f"{safe_uid(sop_instance_uid)}.dcm"
                commit(tmp, target)
                self.timer.touch(job_id, association)
                if calling_ae not in self._callers.setdefault(job_id, set()):
                    self._note_caller(job_id, calling_ae)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return job_id

    def _note_caller(self, job_id: str, calling_ae: str) -> None:
        """Record an additional calling AE of a job (rare: a study sent by two peers)."""
        record = self.spool.load(INCOMING, job_id)
        if calling_ae not in record.calling_aes:
            record.calling_aes.append(calling_ae)
            self.spool.save(INCOMING, record)
        self._callers[job_id].add(calling_ae)

    def association_closed(self, association: Hashable) -> None:
        self.timer.association_closed(association)

    def promote_due(self) -> list[str]:
        """Move every job whose quiet period elapsed to ``complete/`` and hand it to ``on_complete``."""
        promoted = []
        for job_id in self.timer.due():
            try:
                with self.spool.incoming_lock:
                    record = self.spool.load(INCOMING, job_id)
                    folder = self.spool.job_dir(INCOMING, job_id)
                    record.instances, record.bytes = dir_size(folder / INSTANCES)
                    record.complete_at = time.time()
                    self.spool.save(INCOMING, record)
                    self.spool.move(job_id, INCOMING, COMPLETE)
                    last = self.timer.last_arrival(job_id)
                    self.timer.forget(job_id)
                    self._callers.pop(job_id, None)
                    if self._active.get(record.study_uid) == job_id:
                        del self._active[record.study_uid]
            except OSError as error:
                LOGGER.error("job %s: cannot promote to complete (%s); will retry", job_id, error)
                self.audit.record("failed", job=job_id, stage="complete", reason=f"spool error: {error}")
                continue
            quiet_s = time.monotonic() - last if last is not None else 0.0
            receive_s = max(0.0, record.complete_at - quiet_s - record.created_at)
            self.audit.record("complete", job=job_id, study_uid=record.study_uid, instances=record.instances,
                              bytes=record.bytes, receive_ms=int(receive_s * 1000), quiet_ms=int(quiet_s * 1000))
            LOGGER.info("study %s complete: %d instance(s), job %s", record.study_uid, record.instances, job_id)
            promoted.append(job_id)
            self.on_complete(job_id)
        return promoted

    def run(self, stop: threading.Event) -> None:
        """Poll the quiet timer until ``stop`` is set (runs in its own thread)."""
        interval = min(0.2, self.timer.quiet_seconds / 4)
        while not stop.wait(interval):
            try:
                self.promote_due()
            except Exception:  # keep the intake alive; the error is logged with its traceback
                LOGGER.exception("quiet-timer loop error")
