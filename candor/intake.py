"""Read a study folder's DICOM headers and sort every file into series or a rejection.

The SDK's ``DICOMDataLoaderOperator`` reads every file with its pixel data, aborts on a
truncated file and logs parse errors without the file name. Candor's intake reads
headers only (pixels are decoded later, per eligible image), gives each unreadable,
empty or non-image file one log line naming the file and the reason, and builds the
SDK's ``DICOMStudy``/``DICOMSeries`` objects so that the SDK's series selector can route
what remains.

Multi-frame images are not judged here (decoding rejects those it cannot read), except
VL Whole Slide Microscopy levels (PS3.3 A.32.8): a tiled level is accepted when its
header shows a Total Pixel Matrix of moderate size, one focal plane and one optical
path (:func:`candor.imaging.tiles.check_whole_slide_header`), so an oversized level
is rejected before its pixel data is ever read.
"""

from __future__ import annotations

import logging
import contextlib
import struct
from typing import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from monai.deploy.core.domain import DICOMSeries, DICOMStudy
from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from candor.errors import InputRejected
from candor.imaging.tiles import check_whole_slide_header, is_whole_slide
from candor.tasks import supported_modalities, task_for_modality

logger = logging.getLogger(__name__)

_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Errors pydicom raises on damaged files (short reads, bad lengths, undecodable values).
_READ_ERRORS = (InvalidDicomError, EOFError, OSError, ValueError, struct.error, KeyError, TypeError, IndexError,
                OverflowError, UnicodeDecodeError, NotImplementedError)


@dataclass
class Intake:
    """The outcome of scanning one input folder."""

    studies: list[DICOMStudy] = field(default_factory=list)
    rejected: list[InputRejected] = field(default_factory=list)
    files_seen: int = 0

    def eligible_instances(self) -> int:
        return sum(len(series.get_sop_instances()) for study in self.studies for series in study.get_all_series())


@contextlib.contextmanager
def _lenient_value_reading() -> Iterator[None]:
    """Read odd values without pydicom's per-value warnings: a damaged header is reported once, by file."""
    previous = pydicom_config.settings.reading_validation_mode
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    try:
        yield
    finally:
        pydicom_config.settings.reading_validation_mode = previous


def _read_header(path: Path) -> Dataset:
    """Read ``path``'s header (no pixel data) or raise :class:`InputRejected` saying why."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InputRejected(path, f"cannot be read: {error.strerror}") from None
    if size == 0:
        raise InputRejected(path, "empty file (0 bytes)")
    try:
        dataset = dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise InputRejected(path, "not a DICOM Part-10 file (no DICM preamble)") from None
    except _READ_ERRORS as error:
        raise InputRejected(path, f"unreadable DICOM ({type(error).__name__}: {error})") from None
    missing = [keyword for keyword in _REQUIRED if not dataset.get(keyword)]
    if missing:
        raise InputRejected(path, f"missing required attribute(s) {', '.join(missing)} (truncated or incomplete header?)")
    return dataset


def _triage(path: Path, dataset: Dataset) -> None:
    """Raise :class:`InputRejected` when no task can take this instance."""
    modality = str(dataset.get("Modality", "") or "")
    if "Rows" not in dataset or "Columns" not in dataset:
        raise InputRejected(path, f"not an image object (SOP class {dataset.SOPClassUID}, modality {modality or '?'})")
    task = task_for_modality(modality)
    if task is None:
        raise InputRejected(
            path, f"unsupported modality {modality or '<missing>'} (Candor reads {', '.join(supported_modalities())})"
        )
    reason = task.rejects(str(dataset.SOPClassUID), str(dataset.get("PhotometricInterpretation", "")))
    if reason:
        raise InputRejected(path, reason)
    if is_whole_slide(dataset):
        check_whole_slide_header(dataset, path)


def _new_series(dataset: Dataset) -> DICOMSeries:
    series = DICOMSeries(str(dataset.SeriesInstanceUID))
    for keyword in ("Modality", "SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined",
                    "SeriesNumber", "Laterality"):
        if keyword in dataset and dataset.get(keyword) is not None:
            setattr(series, keyword, dataset.get(keyword))
    return series


def _new_study(dataset: Dataset) -> DICOMStudy:
    study = DICOMStudy(str(dataset.StudyInstanceUID))
    for keyword in ("StudyID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber"):
        if dataset.get(keyword) is not None:
            setattr(study, keyword, dataset.get(keyword))
    return study


def scan_folder(folder: str | Path) -> Intake:
    """Scan ``folder`` recursively; every file ends up in a series or in ``rejected``.

    Rejections are logged at WARNING level, one line each, naming the file.
    """
    root = Path(folder)
    intake = Intake()
    studies: dict[str, DICOMStudy] = {}
    series_by_uid: dict[str, DICOMSeries] = {}
    seen_sops: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.upper() == "DICOMDIR" or path.name.startswith("."):
            continue
        intake.files_seen += 1
        try:
            with _lenient_value_reading():
                dataset = _read_header(path)
                _triage(path, dataset)
            if str(dataset.SOPInstanceUID) in seen_sops:
                raise InputRejected(path, f"duplicate SOP instance {dataset.SOPInstanceUID}; the first copy is used")
        except InputRejected as rejection:
            logger.warning("rejected %s: %s", rejection.path, rejection.reason)
            intake.rejected.append(rejection)
            continue
        seen_sops.add(str(dataset.SOPInstanceUID))
        study_uid = str(dataset.StudyInstanceUID)
        if study_uid not in studies:
            studies[study_uid] = _new_study(dataset)
        series_uid = str(dataset.SeriesInstanceUID)
        if series_uid not in series_by_uid:
            series_by_uid[series_uid] = _new_series(dataset)
            studies[study_uid].add_series(series_by_uid[series_uid])
        series_by_uid[series_uid].add_sop_instance(dataset)
    intake.studies = list(studies.values())
    logger.info(
        "intake of %s: %d file(s), %d eligible instance(s) in %d series, %d rejected",
        root, intake.files_seen, intake.eligible_instances(), len(series_by_uid), len(intake.rejected),
    )
    return intake
