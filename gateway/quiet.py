"""Per-study quiet timer: a study is complete once no instance arrived for ``quiet_seconds``.

DICOM has no "end of study" message, so every router guesses completeness from silence
(mercure, the Informatics Gateway and dicom-ai-router all do). Two refinements here:
every instance resets the timer of its study, and a study is never declared complete
while an association that delivered instances of it is still open (a large instance can
take longer than the quiet period to transfer). A dead association is dropped by the
network timeout, which then lets the timer fire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Entry:
    last_arrival: float
    open_associations: set[Hashable] = field(default_factory=set)


class QuietTimer:
    """Thread-safe bookkeeping of last arrival per job; pure logic, the caller polls :meth:`due`."""

    def __init__(self, quiet_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if quiet_seconds <= 0:
            raise ValueError(f"quiet_seconds must be > 0, got {quiet_seconds}")
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def touch(self, job_id: str, association: Hashable | None = None) -> None:
        """An instance of ``job_id`` arrived (over ``association``): restart its quiet period."""
        with self._lock:
            entry = self._entries.setdefault(job_id, _Entry(self._clock()))
            entry.last_arrival = self._clock()
            if association is not None:
                entry.open_associations.add(association)

    def association_closed(self, association: Hashable) -> None:
        """An association ended (released, aborted or dropped); it no longer holds its jobs open."""
        with self._lock:
            for entry in self._entries.values():
                entry.open_associations.discard(association)

    def due(self) -> list[str]:
        """Jobs whose quiet period has elapsed and that no open association still feeds."""
        now = self._clock()
        with self._lock:
            return [job_id for job_id, entry in self._entries.items()
                    if not entry.open_associations and now - entry.last_arrival >= self.quiet_seconds]

    def forget(self, job_id: str) -> None:
        """Stop tracking ``job_id`` (it was promoted)."""
        with self._lock:
            self._entries.pop(job_id, None)

    def last_arrival(self, job_id: str) -> float | None:
        with self._lock:
            entry = self._entries.get(job_id)
            return entry.last_arrival if entry else None

    def tracked(self) -> list[str]:
        with self._lock:
            return list(self._entries)
