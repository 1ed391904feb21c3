"""JSON-lines audit trail: one line per study and hop, with timings and UIDs, never patient data.

The audit is the operator's record of what happened to each study (received, complete,
processed, sent, failed, dead-lettered …). It is separate from the diagnostic log and
accepts only a fixed set of field names, so patient name, ID or birth date cannot be
added by accident: an unknown field is a programming error and raises.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)

HOPS = frozenset({
    "received",       # first instance of a job spooled
    "complete",       # quiet period elapsed; job queued for the app
    "processed",      # app finished successfully (or as a clean no-op)
    "sent",           # all results delivered
    "failed",         # one attempt of a hop failed (will be retried or dead-lettered)
    "dead-lettered",  # given up; files kept in dead-letter/ with the reason
    "rejected",       # an instance was not usable (unreadable, wrong study …)
    "refused",        # an association was refused (watermark, caller not allowed)
    "duplicate",      # a re-sent study whose instances were all processed before
    "recovered",      # a job found in an intermediate state at start-up
    "requeued",       # an operator moved a dead-lettered job back
})

#: The only field names an audit line may carry. UIDs identify objects, not people.
FIELDS = frozenset({
    "job", "study_uid", "sop_instance_uid", "calling_ae", "destination", "instances", "bytes",
    "outputs", "output_classes", "rejected", "skipped", "attempt", "max_attempts", "retry_in_s",
    "exit_code", "reason", "stage", "receive_ms", "quiet_ms", "queue_ms", "app_ms", "send_ms",
    "total_ms", "warnings", "state", "free_mb", "report",
})

_SCALARS = (str, int, float, bool, type(None))


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
        return
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
        return
    raise TypeError(f"audit field {key!r}: unsupported value type {type(value).__name__}")


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class AuditLog:
    """Append-only JSON-lines writer, safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, hop: str, **fields: Any) -> dict[str, Any]:
        """Append one line for ``hop`` with ``fields`` and return it.

        Raises
        ------
        ValueError
            If ``hop`` is unknown or a field name is not in :data:`FIELDS`.
        TypeError
            If a value is not a scalar, a list of scalars or a dict of numbers.
        """
        if hop not in HOPS:
            raise ValueError(f"unknown audit hop {hop!r}")
        unknown = set(fields) - FIELDS
        if unknown:
            raise ValueError(f"audit fields not allowed (possible PHI): {sorted(unknown)}")
        for key, value in fields.items():
            _check_value(key, value)
        line = {"ts": utc_now_iso(), "hop": hop, **{k: v for k, v in fields.items() if v is not None}}
        data = (json.dumps(line, sort_keys=False) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        LOGGER.debug("audit %s", line)
        return line


def read_audit(path: Path, hops: set[str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Return audit lines (optionally only ``hops``), the newest ``limit`` ones when given.

    A torn last line (the writer was killed mid-write) is skipped with a warning.
    """
    if not path.exists():
        return []
    lines: list[dict[str, Any]] = []
    with path.open("r", encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                LOGGER.warning("audit %s line %d is not JSON (torn write?); skipped", path, number)
                continue
            if hops is None or entry.get("hop") in hops:
                lines.append(entry)
    return lines[-limit:] if limit is not None else lines


def ms_since(start_monotonic: float) -> int:
    """Milliseconds elapsed since a ``time.monotonic()`` reading."""
    return int(round((time.monotonic() - start_monotonic) * 1000))
