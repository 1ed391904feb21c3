"""Checks and light copies of the source image that derived objects reference.

Builders hand highdicom a shallow copy of the source without its Pixel Data
(PS3.3 C.7.6.3): the derived objects only reference the source, and a deep copy
of a 4000×4000 RGB photograph would cost 48 MB for nothing.
"""

from __future__ import annotations

import logging
from typing import Iterable

from pydicom import Dataset

LOGGER = logging.getLogger(__name__)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Type 2 attributes of the Patient (C.7.1.1) and General Study (C.7.2.1) modules.
TYPE2_PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def frame_count(source: Dataset) -> int:
    """Number of Frames (0028,0008) of ``source``; 1 when absent or empty."""
    value = source.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1


def require_single_frame(source: Dataset) -> None:
    """Raise unless ``source`` is a single-frame image with Rows and Columns.

    Raises
    ------
    TypeError
        If ``source`` is not a pydicom Dataset.
    ValueError
        If it has no image geometry or more than one frame.
    """
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Rows", "Columns"):
        if keyword not in source:
            raise ValueError(f"source image lacks {keyword}; it cannot be referenced by a derived object")
    if frame_count(source) != 1:
        raise ValueError(f"source image has {frame_count(source)} frames; only single-frame sources are supported")


def source_laterality(source: Dataset) -> str | None:
    """Laterality (R/L) of the imaged body part: series Laterality, else Image Laterality.

    ``B`` (both) and ``U`` (unpaired) have no General Series (C.7.3.1)
    equivalent and give None.
    """
    for keyword in ("Laterality", "ImageLaterality"):
        value = source.get(keyword)
        if value in ("R", "L"):
            return str(value)
    return None


def stripped_source(source: Dataset, *, drop: Iterable[str] = ()) -> Dataset:
    """A shallow copy of ``source`` without pixel data and without the keywords in ``drop``.

    Data elements are shared with ``source``, not copied; the copy must be
    treated as read-only. ``file_meta`` is carried over when present. Type 2
    Patient/Study attributes (:data:`TYPE2_PATIENT_STUDY_KEYWORDS`) missing
    from a non-conformant source are added empty, which is what Type 2 allows
    for an unknown value and what highdicom's builders need to copy them.
    """
    excluded = set(_PIXEL_KEYWORDS) | set(drop)
    copy = Dataset()
    for element in source:
        if element.keyword not in excluded:
            copy.add(element)
    for keyword in TYPE2_PATIENT_STUDY_KEYWORDS:
        if keyword not in copy:
            LOGGER.debug("source %s lacks Type 2 %s; referenced as empty", source.get("SOPInstanceUID"), keyword)
            setattr(copy, keyword, None)
    if hasattr(source, "file_meta"):
        copy.file_meta = source.file_meta
    return copy


#: Patient (C.7.1.1), Patient Study (C.7.2.2) and General Study (C.7.2.1) attributes that
#: describe the same real-world entities in the source and in every derived object.
PATIENT_STUDY_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDsSequence",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyDescription",
    "ProcedureCodeSequence",
)


def copy_patient_study(source: Dataset, target: Dataset) -> None:
    """Copy the Patient and Study attributes of ``source`` that ``target`` lacks.

    Keeps ``dcentvfy`` (which compares the entity attributes of all instances
    of a study) quiet about attributes present in one instance only.
    """
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in source and keyword not in target:
            target[keyword] = source[keyword]
