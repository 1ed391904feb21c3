"""Workers: take complete jobs from the queue, run the app on each, hand results to delivery.

``complete/<job>`` → ``processing/<job>`` (pre-flight, app run) → ``outbox/<job>``, or
back to ``complete/`` for another attempt, or ``dead-letter/``. A study that breaks
anything is dead-lettered with its reason; it never stops the worker.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable

from gateway.audit import AuditLog
from gateway.deadletter import dead_letter
from gateway.outputs import collect_outputs, read_report, report_rejections
from gateway.preflight import preflight
from gateway.runner import EXIT_OK, EXIT_USAGE, AppRunner, RunnerStoppingError, kill_orphan
from gateway.spool import (COMPLETE, DONE, INSTANCES, OUT, OUTBOX, PROCESSING, REJECTED, JobRecord, Spool,
                           instance_uids)

LOGGER = logging.getLogger(__name__)

_STOP = ""  # queue sentinel (never a valid job id)


class Processor:
    """Runs one job through pre-flight and the app. Thread-safe across distinct jobs."""

    def __init__(self, spool: Spool, runner: AppRunner, audit: AuditLog, app_attempts: int, dedupe: bool,
                 on_outbox: Callable[[str], None]) -> None:
        self.spool = spool
        self.runner = runner
        self.audit = audit
        self.app_attempts = app_attempts
        self.dedupe = dedupe
        self.on_outbox = on_outbox

    def recover(self) -> list[str]:
        """Resume after a crash: interrupted runs go back to ``complete/``; return the queue, oldest first."""
        for job_id in self.spool.list_jobs(PROCESSING):
            record = self.spool.load(PROCESSING, job_id)
            if record.app_pid is not None:
                kill_orphan(record.app_pid, record.app_pid_start)
            self.audit.record("recovered", job=job_id, study_uid=record.study_uid, state=PROCESSING,
                              attempt=record.app_attempts)
            reason = "app run interrupted (gateway stopped or killed)"
            if record.app_attempts >= self.app_attempts:
                dead_letter(self.spool, self.audit, record, PROCESSING, "app",
                            f"{reason}; {record.app_attempts} attempt(s) used")
                continue
            record.add_error("app", reason)
            record.app_pid = record.app_pid_start = None
            self.spool.save(PROCESSING, record)
            self.spool.move(job_id, PROCESSING, COMPLETE)
        return self.spool.list_jobs(COMPLETE)

    def process(self, job_id: str) -> str:
        """Process one complete job; return the state it ended in. Never raises for a bad study."""
        try:
            return self._process(job_id)
        except Exception as error:  # a gateway bug or spool I/O error on this job: park it, keep serving
            LOGGER.exception("job %s: unexpected error", job_id)
            state = self.spool.find(job_id)
            if state in (COMPLETE, PROCESSING):
                record = self.spool.load(state, job_id)
                dead_letter(self.spool, self.audit, record, state, "gateway", f"{type(error).__name__}: {error}")
                return "dead-letter"
            return state or "missing"

    def _process(self, job_id: str) -> str:
        spool = self.spool
        self.spool.move(job_id, COMPLETE, PROCESSING)
        folder = spool.job_dir(PROCESSING, job_id)
        record = spool.load(PROCESSING, job_id)
        record.processing_started_at = time.time()
        queue_ms = int((record.processing_started_at - (record.complete_at or record.created_at)) * 1000)
        sources = instance_uids(folder)

        if self.dedupe and spool.already_processed(record.study_uid, sources):
            spool.save(PROCESSING, record)
            spool.move(job_id, PROCESSING, DONE)
            LOGGER.info("job %s: all %d instance(s) of study %s were processed before; skipped", job_id,
                        len(sources), record.study_uid)
            self.audit.record("duplicate", job=job_id, study_uid=record.study_uid, instances=len(sources))
            return DONE

        rejections = preflight(folder / INSTANCES, folder / REJECTED, record.study_uid)
        if rejections:
            known = {r["sop_instance_uid"] for r in record.rejected}
            record.rejected += [{"sop_instance_uid": r.sop_instance_uid, "reason": r.reason, "by": "gateway"}
                                for r in rejections if r.sop_instance_uid not in known]
            self.audit.record("rejected", job=job_id, study_uid=record.study_uid, stage="preflight",
                              rejected=len(rejections), reason="; ".join(sorted({r.reason for r in rejections})))
        if not any((folder / INSTANCES).glob("*.dcm")):
            dead_letter(spool, self.audit, record, PROCESSING, "preflight", "no usable instance in the study")
            return "dead-letter"

        out_dir = folder / OUT
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        record.app_attempts += 1
        record.exit_code = None
        spool.save(PROCESSING, record)  # count the attempt before starting: a crash loop must end

        def remember_pid(pid: int, start_ticks: int | None) -> None:
            record.app_pid, record.app_pid_start = pid, start_ticks
            spool.save(PROCESSING, record)

        try:
            result = self.runner.run(folder / INSTANCES, out_dir, folder / "app.log", remember_pid)
        except RunnerStoppingError:
            record.app_attempts -= 1  # never started: not an attempt
            spool.save(PROCESSING, record)
            spool.move(job_id, PROCESSING, COMPLETE)
            return COMPLETE
        record.app_pid = record.app_pid_start = None
        record.exit_code = result.exit_code
        app_ms = int(result.duration_s * 1000)

        if result.exit_code is None and self.runner.stopping:
            # Graceful shutdown killed the run: not the study's fault, so the attempt is not
            # counted; the job stays in processing/ and recovery re-queues it at the next start.
            record.app_attempts -= 1
            spool.save(PROCESSING, record)
            LOGGER.warning("job %s: app run stopped by shutdown; resumes at next start", job_id)
            return PROCESSING
        if result.exit_code == EXIT_OK:
            return self._succeeded(record, queue_ms, app_ms)
        if result.exit_code == EXIT_USAGE:
            dead_letter(spool, self.audit, record, PROCESSING, "app",
                        "app exit 2: bad settings or model folder (see app.log); fix the node, then requeue")
            return "dead-letter"
        reason = ("app timed out" if result.timed_out else "app killed" if result.exit_code is None
                  else f"app exit {result.exit_code} (internal error, see app.log)")
        record.add_error("app", reason)
        self.audit.record("failed", job=job_id, study_uid=record.study_uid, stage="app", reason=reason,
                          exit_code=result.exit_code, attempt=record.app_attempts, max_attempts=self.app_attempts,
                          app_ms=app_ms)
        if record.app_attempts >= self.app_attempts:
            dead_letter(spool, self.audit, record, PROCESSING, "app", f"{reason}; {record.app_attempts} attempt(s)")
            return "dead-letter"
        spool.save(PROCESSING, record)
        spool.move(job_id, PROCESSING, COMPLETE)
        LOGGER.warning("job %s: %s; will retry (attempt %d of %d)", job_id, reason, record.app_attempts,
                       self.app_attempts)
        return COMPLETE

    def _succeeded(self, record: JobRecord, queue_ms: int, app_ms: int) -> str:
        spool = self.spool
        folder = spool.job_dir(PROCESSING, record.job_id)
        collected = collect_outputs(folder / OUT, record.study_uid)
        report = read_report(folder / OUT)
        app_rejections = report_rejections(report)
        record.outputs = collected.outputs
        record.skipped = len(app_rejections)
        known = {(r["sop_instance_uid"], r.get("by")) for r in record.rejected}
        record.rejected += [r for r in app_rejections if (r["sop_instance_uid"], "app") not in known]
        for problem in collected.problems:
            record.add_error("outputs", problem)
        record.processed_at = time.time()
        spool.save(PROCESSING, record)
        spool.move(record.job_id, PROCESSING, OUTBOX)
        classes: dict[str, int] = {}
        for output in collected.outputs:
            classes[output["sop_class_uid"]] = classes.get(output["sop_class_uid"], 0) + 1
        self.audit.record("processed", job=record.job_id, study_uid=record.study_uid, exit_code=EXIT_OK,
                          instances=record.instances, outputs=len(collected.outputs), output_classes=classes,
                          skipped=record.skipped, warnings=collected.problems or None, queue_ms=queue_ms,
                          app_ms=app_ms, attempt=record.app_attempts, report=report is not None)
        LOGGER.info("job %s: app done in %.1f s, %d output(s)", record.job_id, app_ms / 1000,
                    len(collected.outputs))
        self.on_outbox(record.job_id)
        return OUTBOX


class WorkerPool:
    """N threads draining a FIFO of complete job ids; a job is queued at most once at a time."""

    def __init__(self, processor: Processor, workers: int) -> None:
        self.processor = processor
        self.queue: queue.Queue[str] = queue.Queue()
        self._threads = [threading.Thread(target=self._loop, name=f"worker-{n}", daemon=True)
                         for n in range(workers)]
        self._pending: set[str] = set()  # queued or being processed
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, job_id: str) -> bool:
        """Queue ``job_id`` unless it is already queued or running; True if it was queued."""
        with self._lock:
            if job_id in self._pending:
                return False
            self._pending.add(job_id)
        self.queue.put(job_id)
        return True

    def rescan(self) -> int:
        """Queue every job in ``complete/`` not queued yet (e.g. one an operator requeued)."""
        return sum(self.submit(job_id) for job_id in self.processor.spool.list_jobs(COMPLETE))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        for _ in self._threads:
            self.queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout_s)

    def active(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    def _loop(self) -> None:
        while True:
            job_id = self.queue.get()
            if job_id == _STOP:
                return
            with self._lock:
                self._active.add(job_id)
            try:
                state = self.processor.process(job_id)
            except Exception:  # process() parks bad studies itself; this only keeps the thread alive
                LOGGER.exception("job %s left where it is after an unexpected error", job_id)
                state = "error"
            finally:
                with self._lock:
                    self._active.discard(job_id)
                    self._pending.discard(job_id)
            if state == COMPLETE and not self.processor.runner.stopping:
                self.submit(job_id)  # failed attempt with attempts left: back of the queue
