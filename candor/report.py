"""The run report: what was read, rejected and written, saved as ``candor-report.json``.

Routers and the gateway read it to learn what happened to each file without parsing
logs. It carries UIDs and file names, never patient names or IDs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from candor import __version__
from candor.errors import InputRejected

REPORT_NAME = "candor-report.json"


@dataclass
class OutputRecord:
    kind: str
    path: str
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    source_sop_instance_uid: str


@dataclass
class RunReport:
    """Collects events from every operator of one run (thread-safe)."""

    settings: dict[str, Any] = field(default_factory=dict)
    files_seen: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    processed: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[OutputRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reject(self, rejection: InputRejected) -> None:
        with self._lock:
            self.rejected.append({"path": rejection.path, "reason": rejection.reason})

    def add_processed(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.processed.append(entry)

    def add_output(self, record: OutputRecord) -> None:
        with self._lock:
            self.outputs.append(record)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "candor_version": __version__,
                "settings": self.settings,
                "files_seen": self.files_seen,
                "rejected": list(self.rejected),
                "processed": list(self.processed),
                "outputs": [asdict(record) for record in self.outputs],
            }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path
