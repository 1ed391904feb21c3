"""Read what the app wrote: the result instances to send and its ``candor-report.json``."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

LOGGER = logging.getLogger(__name__)

REPORT_NAME = "candor-report.json"
_HEADER_TAGS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID"]


@dataclass
class CollectedOutputs:
    """Result files that may be sent, and problems found while reading them."""

    outputs: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def collect_outputs(out_dir: Path, study_uid: str) -> CollectedOutputs:
    """List the DICOM files in ``out_dir`` (recursively) that belong to ``study_uid``.

    A result outside the source study is not sent: the contract is that results land in
    the study they were computed from, and sending it elsewhere would misfile it.
    """
    found = CollectedOutputs()
    seen: set[str] = set()
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        if path.name == REPORT_NAME:
            continue
        rel = str(path.relative_to(out_dir))
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            syntax = str(ds.file_meta.TransferSyntaxUID)
        except (InvalidDicomError, AttributeError):
            found.problems.append(f"{rel}: not a DICOM Part-10 file, not sent")
            continue
        sop_class, sop_uid = str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", ""))
        if not sop_class or not sop_uid:
            found.problems.append(f"{rel}: no SOPClassUID/SOPInstanceUID, not sent")
            continue
        if str(ds.get("StudyInstanceUID", "")) != study_uid:
            found.problems.append(f"{rel}: not in the source study, not sent")
            continue
        if sop_uid in seen:
            found.problems.append(f"{rel}: duplicate SOPInstanceUID, sent once")
            continue
        seen.add(sop_uid)
        found.outputs.append({"file": rel, "sop_class_uid": sop_class, "sop_instance_uid": sop_uid,
                              "transfer_syntax": syntax})
    for problem in found.problems:
        LOGGER.warning("output %s", problem)
    return found


def read_report(out_dir: Path) -> dict[str, Any] | None:
    """The app's run report, or ``None`` if it wrote none; a malformed report is logged and ignored."""
    path = out_dir / REPORT_NAME
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        LOGGER.warning("app report %s unreadable: %s", path, error)
        return None
    return report if isinstance(report, dict) else None


def report_rejections(report: dict[str, Any] | None) -> list[dict[str, str]]:
    """Files the app skipped, as ``{"sop_instance_uid", "reason", "by": "app"}`` (file stem as UID)."""
    if not report:
        return []
    entries = report.get("rejected", [])
    rejections = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            rejections.append({"sop_instance_uid": Path(str(entry.get("path", "?"))).stem,
                               "reason": str(entry.get("reason", "unspecified"))[:200], "by": "app"})
    return rejections
