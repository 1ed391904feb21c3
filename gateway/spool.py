"""The spool: a folder state machine that holds every job durably.

Layout under the spool root (each job is one folder, moved between states by an atomic
rename, with a small ``job.json`` rewritten atomically)::

    tmp/                       instances being written (temp + fsync, then renamed)
    incoming/<job>/            instances of a study still arriving (quiet timer running)
    complete/<job>/            quiet period over, waiting for a worker (the queue)
    processing/<job>/          the app runs on it (out/ holds its outputs)
    outbox/<job>/              app done; results waiting for delivery (delivered.json)
    done/<job>/                delivered; deleted after the retention period
    dead-letter/<job>/         given up; job.json says why. Kept until an operator acts
    quarantine/                instances that could not be decoded at all
    ledger/<study>.json        source instances already processed (duplicate detection)

A job folder holds ``job.json``, ``instances/`` (the received Part-10 files),
``rejected/`` (instances the pre-flight check refused), ``out/`` and ``app.log``.
Because every transition is one rename, ``kill -9`` leaves each job in exactly one
state, which :meth:`Spool.recover` resumes at start-up.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.fsutil import fsync_dir, move_dir, read_json, safe_uid, write_json_atomic

LOGGER = logging.getLogger(__name__)

INCOMING, COMPLETE, PROCESSING, OUTBOX, DONE, DEAD_LETTER = (
    "incoming", "complete", "processing", "outbox", "done", "dead-letter")
STATES = (INCOMING, COMPLETE, PROCESSING, OUTBOX, DONE, DEAD_LETTER)
JOB_FILE = "job.json"
DELIVERED_FILE = "delivered.json"
INSTANCES, REJECTED, OUT = "instances", "rejected", "out"
_MAX_ERRORS = 20


class SpoolLockedError(RuntimeError):
    """Another gateway process already serves this spool."""


@dataclass
class JobRecord:
    """What ``job.json`` holds. Times are wall-clock epoch seconds; no patient data."""

    job_id: str
    study_uid: str
    created_at: float
    calling_aes: list[str] = field(default_factory=list)
    instances: int = 0
    bytes: int = 0
    complete_at: float | None = None
    processing_started_at: float | None = None
    processed_at: float | None = None
    sent_at: float | None = None
    app_attempts: int = 0
    app_pid: int | None = None
    app_pid_start: int | None = None
    exit_code: int | None = None
    send_attempts: int = 0
    next_send_at: float | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)
    outputs: list[dict[str, str]] = field(default_factory=list)
    skipped: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_reason: str | None = None
    dead_letter_stage: str | None = None

    def add_error(self, stage: str, reason: str) -> None:
        """Remember a failure (bounded list, newest last)."""
        self.errors.append({"ts": time.time(), "stage": stage, "reason": reason})
        del self.errors[:-_MAX_ERRORS]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Spool:
    """Paths and atomic state transitions of the spool folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.quarantine = root / "quarantine"
        self.ledger = root / "ledger"
        #: Serialises changes to ``incoming/`` (SCP threads vs. the quiet timer).
        self.incoming_lock = threading.Lock()
        self._lock_fd: int | None = None

    # -- set-up ---------------------------------------------------------------------------
    def create(self) -> None:
        """Create the folder layout (idempotent)."""
        for path in [self.tmp, self.quarantine, self.ledger, *(self.root / s for s in STATES)]:
            path.mkdir(parents=True, exist_ok=True)

    def acquire(self) -> None:
        """Take the spool's exclusive lock; the kernel drops it when the process dies (even kill -9)."""
        self.create()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(fd)
            raise SpoolLockedError(f"another gateway is using spool {self.root}") from error
        self._lock_fd = fd

    def release(self) -> None:
        """Release the lock taken by :meth:`acquire`."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def clear_tmp(self) -> int:
        """Delete half-written instances left by a crash (they were never acknowledged)."""
        removed = 0
        for entry in self.tmp.iterdir():
            entry.unlink()
            removed += 1
        return removed

    # -- jobs -----------------------------------------------------------------------------
    def job_dir(self, state: str, job_id: str) -> Path:
        return self.root / state / job_id

    @staticmethod
    def new_job_id(study_uid: str) -> str:
        """A unique, sortable folder name: the sanitised study UID and a nanosecond stamp."""
        return f"{safe_uid(study_uid)}_{time.time_ns():x}"

    def create_job(self, study_uid: str, calling_ae: str) -> JobRecord:
        """Create ``incoming/<job>/`` with its ``job.json`` and ``instances/``."""
        record = JobRecord(job_id=self.new_job_id(study_uid), study_uid=study_uid, created_at=time.time(),
                           calling_aes=[calling_ae])
        path = self.job_dir(INCOMING, record.job_id)
        (path / INSTANCES).mkdir(parents=True)
        self.save(INCOMING, record)
        fsync_dir(path.parent)
        return record

    def list_jobs(self, state: str) -> list[str]:
        """Job ids in ``state``, oldest first (ids embed their creation stamp)."""
        folder = self.root / state
        if not folder.is_dir():
            return []
        ids = [p.name for p in folder.iterdir() if p.is_dir()]
        return sorted(ids, key=lambda job_id: (job_id.rsplit("_", 1)[-1].rjust(20, "0"), job_id))

    def load(self, state: str, job_id: str) -> JobRecord:
        return JobRecord.from_dict(read_json(self.job_dir(state, job_id) / JOB_FILE))

    def save(self, state: str, record: JobRecord) -> None:
        write_json_atomic(self.job_dir(state, record.job_id) / JOB_FILE, asdict(record))

    def move(self, job_id: str, src: str, dst: str) -> Path:
        """Move a job between states (one atomic rename) and return its new folder."""
        target = self.job_dir(dst, job_id)
        move_dir(self.job_dir(src, job_id), target)
        LOGGER.debug("job %s: %s -> %s", job_id, src, dst)
        return target

    def find(self, job_id: str) -> str | None:
        """Return the state a job is in, or ``None``."""
        for state in STATES:
            if self.job_dir(state, job_id).is_dir():
                return state
        return None

    def delete(self, state: str, job_id: str) -> None:
        shutil.rmtree(self.job_dir(state, job_id))

    # -- delivery bookkeeping ---------------------------------------------------------------
    def delivered(self, state: str, job_id: str) -> dict[str, float]:
        """SOP Instance UIDs of outputs already acknowledged by the destination."""
        path = self.job_dir(state, job_id) / DELIVERED_FILE
        return dict(read_json(path)) if path.exists() else {}

    def mark_delivered(self, state: str, job_id: str, sop_instance_uids: list[str]) -> None:
        """Record acknowledged outputs so a resend after a crash sends only what is missing."""
        done = self.delivered(state, job_id)
        now = time.time()
        done.update({uid: now for uid in sop_instance_uids})
        write_json_atomic(self.job_dir(state, job_id) / DELIVERED_FILE, done)

    # -- duplicate detection ----------------------------------------------------------------
    def _ledger_path(self, study_uid: str) -> Path:
        return self.ledger / f"{safe_uid(study_uid)}.json"

    def already_processed(self, study_uid: str, sop_instance_uids: set[str]) -> bool:
        """True when every one of ``sop_instance_uids`` was processed in an earlier job of the study."""
        path = self._ledger_path(study_uid)
        if not sop_instance_uids or not path.exists():
            return False
        return sop_instance_uids <= set(read_json(path)["instances"])

    def add_to_ledger(self, study_uid: str, sop_instance_uids: set[str]) -> None:
        """Remember processed source instances of a study."""
        path = self._ledger_path(study_uid)
        known = set(read_json(path)["instances"]) if path.exists() else set()
        write_json_atomic(path, {"study_uid": study_uid, "instances": sorted(known | sop_instance_uids),
                                 "updated_at": time.time()})

    def prune_ledger(self, max_age_s: float) -> int:
        """Delete ledger entries not updated for ``max_age_s`` seconds."""
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.ledger.glob("*.json"):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        return removed


def instance_uids(job_path: Path) -> set[str]:
    """SOP Instance UIDs of a job's received instances (from the file names)."""
    folder = job_path / INSTANCES
    return {p.stem for p in folder.glob("*.dcm")} if folder.is_dir() else set()


def newest_mtime(job_path: Path) -> float:
    """Modification time of the newest instance of a job (its creation time if none)."""
    folder = job_path / INSTANCES
    stamps = [p.stat().st_mtime for p in folder.glob("*.dcm")] if folder.is_dir() else []
    return max(stamps, default=(job_path / JOB_FILE).stat().st_mtime)
