"""Dead-letter: park a job the gateway gave up on, with its reason, and let an operator requeue it.

A dead-lettered job keeps all its files (instances, outputs, app.log) and a
``dead_letter_reason`` in ``job.json``; nothing deletes it automatically. Requeueing
sends it back to where it failed: ``outbox/`` when it has outputs to deliver, otherwise
``complete/`` to run the app again.
"""

from __future__ import annotations

import logging
import shutil

from gateway.audit import AuditLog
from gateway.spool import COMPLETE, DEAD_LETTER, OUT, OUTBOX, JobRecord, Spool

LOGGER = logging.getLogger(__name__)


def dead_letter(spool: Spool, audit: AuditLog, record: JobRecord, state: str, stage: str, reason: str) -> None:
    """Move the job in ``state`` to ``dead-letter/`` with ``reason`` and audit it."""
    record.dead_letter_reason = reason
    record.dead_letter_stage = stage
    record.add_error(stage, reason)
    spool.save(state, record)
    spool.move(record.job_id, state, DEAD_LETTER)
    LOGGER.error("job %s (study %s) dead-lettered at %s: %s", record.job_id, record.study_uid, stage, reason)
    audit.record("dead-lettered", job=record.job_id, study_uid=record.study_uid, stage=stage, reason=reason,
                 attempt=record.send_attempts if stage == "send" else record.app_attempts)


def requeue(spool: Spool, audit: AuditLog, job_id: str) -> str:
    """Move a dead-lettered job back for another try; returns the state it went to.

    Raises
    ------
    KeyError
        If ``job_id`` is not in ``dead-letter/``.
    """
    if not spool.job_dir(DEAD_LETTER, job_id).is_dir():
        raise KeyError(f"no dead-lettered job {job_id!r}")
    record = spool.load(DEAD_LETTER, job_id)
    target = OUTBOX if record.dead_letter_stage == "send" and record.outputs else COMPLETE
    if target == COMPLETE:
        shutil.rmtree(spool.job_dir(DEAD_LETTER, job_id) / OUT, ignore_errors=True)
        record.app_attempts = 0
        record.outputs = []
    record.send_attempts = 0
    record.next_send_at = None
    record.dead_letter_reason = None
    record.dead_letter_stage = None
    spool.save(DEAD_LETTER, record)
    spool.move(job_id, DEAD_LETTER, target)
    audit.record("requeued", job=job_id, study_uid=record.study_uid, state=target)
    return target
