"""Pre-flight check of a complete job: set aside instances the app must not see.

Cheap structural checks only (the app owns clinical eligibility): the file parses as
DICOM, names its SOP class and instance, belongs to the job's study, and native
(uncompressed) pixel data is as long as its image header says. A refused instance moves
to ``rejected/`` and is listed in ``job.json``; the rest of the study goes ahead.
Reasons are fixed phrases, never values copied from the dataset (no patient data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """One instance refused by the pre-flight check."""

    sop_instance_uid: str
    reason: str


def _expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of native pixel data the image header implies, or ``None`` when not computable."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def check_instance(path: Path, study_uid: str) -> str | None:
    """Return a rejection reason for the file at ``path``, or ``None`` if it may go to the app."""
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        return "not a DICOM Part-10 file"
    except Exception as error:  # pydicom raises many types on malformed input; reason names the type only
        LOGGER.debug("unreadable %s: %s", path.name, error)
        return f"unreadable DICOM ({type(error).__name__})"
    try:
        if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
            return "missing SOPClassUID or SOPInstanceUID"
        if str(ds.get("StudyInstanceUID", "")) != study_uid:
            return "StudyInstanceUID differs from the job's study"
        if "PixelData" in ds:
            syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            if syntax is not None and not syntax.is_compressed:
                expected = _expected_pixel_bytes(ds)
                element = ds.get_item("PixelData")
                if isinstance(element, RawDataElement):
                    length = element.length
                else:
                    length = len(element.value or b"") if element is not None else 0
                if expected is None:
                    return "pixel data without a usable image header"
                if length < expected:
                    return "pixel data shorter than the image header requires"
    except Exception as error:  # malformed element values surface lazily; same policy as above
        LOGGER.debug("malformed %s: %s", path.name, error)
        return f"malformed DICOM ({type(error).__name__})"
    return None


def preflight(instances_dir: Path, rejected_dir: Path, study_uid: str) -> list[Rejection]:
    """Check every ``*.dcm`` in ``instances_dir``; move refused ones to ``rejected_dir``."""
    rejections = []
    for path in sorted(instances_dir.glob("*.dcm")):
        reason = check_instance(path, study_uid)
        if reason is None:
            continue
        rejected_dir.mkdir(exist_ok=True)
        path.rename(rejected_dir / path.name)
        rejections.append(Rejection(sop_instance_uid=path.stem, reason=reason))
        LOGGER.warning("instance %s rejected before the app: %s", path.stem, reason)
    return rejections
