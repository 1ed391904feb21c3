"""Disk watermark: refuse new work before the spool's file system fills up.

A full disk mid-study would make the gateway acknowledge instances it cannot keep or
corrupt job files; refusing associations early lets the PACS keep the study and retry
later (its store job fails visibly instead of data silently vanishing).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

_MIB = 1024 * 1024


@dataclass(frozen=True)
class DiskState:
    """Free space of the spool's file system and whether it is above the watermark."""

    free_mb: int
    min_free_mb: int

    @property
    def ok(self) -> bool:
        return self.free_mb >= self.min_free_mb


class Watermark:
    """Checks free space in ``path``; ``CANDOR_GATEWAY_FAKE_FREE_MB`` overrides it for tests.

    The override exists so the refusal path can be tested without filling a disk; it is
    read on every check and logged by the gateway at start-up when set.
    """

    OVERRIDE_ENV = "CANDOR_GATEWAY_FAKE_FREE_MB"

    def __init__(self, path: Path, min_free_mb: int) -> None:
        self.path = path
        self.min_free_mb = min_free_mb

    def check(self) -> DiskState:
        """Return the current :class:`DiskState` (one ``statvfs`` call)."""
        override = os.environ.get(self.OVERRIDE_ENV, "").strip()
        if override:
            free_mb = int(override)
        else:
            free_mb = shutil.disk_usage(self.path).free // _MIB
        return DiskState(free_mb=free_mb, min_free_mb=self.min_free_mb)
