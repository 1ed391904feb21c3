"""Checks and light copies of the source image that derived objects reference.

Builders hand highdicom a shallow copy of the source without its Pixel Data
(PS3.3 C.7.6.3): the derived objects only reference the source, and a deep copy
of a 4000×4000 RGB photograph would cost 48 MB for nothing.

A source is either a single-frame image or a *tiled* image: a VL Whole Slide
Microscopy level (PS3.3 A.32.8) whose frames are tiles of one Total Pixel Matrix
(C.8.12.4.1), one focal plane and one optical path. Derived objects cover the
whole image, whose size is :func:`image_shape` — Total Pixel Matrix Rows ×
Columns for a tiled image, Rows × Columns otherwise.
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


def has_total_pixel_matrix(source: Dataset) -> bool:
    """Whether ``source`` describes a Total Pixel Matrix (C.8.12.4.1): Total Pixel Matrix Rows and Columns."""
    return "TotalPixelMatrixRows" in source and "TotalPixelMatrixColumns" in source


def image_shape(source: Dataset) -> tuple[int, int]:
    """(rows, columns) of the whole image: the Total Pixel Matrix of a tiled image, else Rows × Columns.

    Masks, maps and regions of derived objects are sized and bounded by this
    shape. For a one-tile slide both are equal.
    """
    if has_total_pixel_matrix(source):
        return int(source.TotalPixelMatrixRows), int(source.TotalPixelMatrixColumns)
    return int(source.Rows), int(source.Columns)


def is_multi_tile(source: Dataset) -> bool:
    """Whether the Total Pixel Matrix of ``source`` spans more than one frame (derived objects must be tiled)."""
    return has_total_pixel_matrix(source) and image_shape(source) != (int(source.Rows), int(source.Columns))


def tiled_layout_problem(source: Dataset) -> str | None:
    """Why Candor cannot read ``source`` as one 2D Total Pixel Matrix, or None (header only).

    Checks, for an image with a Total Pixel Matrix (C.8.12.4.1):

    * one focal plane (Total Pixel Matrix Focal Planes, and distinct Z offsets of the
      per-frame Plane Position (Slide), C.8.12.6.1) and one optical path (Number of
      Optical Paths, the Optical Path Sequence, C.8.12.5, and the per-frame Optical
      Path Identification, C.8.12.6.2);
    * that every frame has a place: with Dimension Organization Type ``TILED_FULL``
      (C.7.6.17.3) the frames are all tiles in row-major order, so Number of Frames
      must be ⌈TPM rows / Rows⌉ × ⌈TPM columns / Columns⌉; otherwise (``TILED_SPARSE``
      or absent) each frame needs its own Plane Position (Slide).
    """
    if not has_total_pixel_matrix(source):
        return "no Total Pixel Matrix Rows/Columns (PS3.3 C.8.12.4.1)"
    focal_planes = int(source.get("TotalPixelMatrixFocalPlanes", 1) or 1)
    if focal_planes != 1:
        return f"{focal_planes} focal planes (Total Pixel Matrix Focal Planes); Candor reads one focal plane"
    paths = max(int(source.get("NumberOfOpticalPaths", 1) or 1), len(source.get("OpticalPathSequence", [])))
    if paths != 1:
        return f"{paths} optical paths; Candor reads one optical path"
    frames = frame_count(source)
    rows, columns = image_shape(source)
    tile_rows, tile_columns = int(source.Rows), int(source.Columns)
    organisation = str(source.get("DimensionOrganizationType", "") or "")
    if organisation == "TILED_FULL":
        expected = -(-rows // tile_rows) * -(-columns // tile_columns)
        if frames != expected:
            return (f"TILED_FULL image with {frames} frames: a {rows}×{columns} Total Pixel Matrix in "
                    f"{tile_rows}×{tile_columns} tiles has {expected}")
        return None
    per_frame = source.get("PerFrameFunctionalGroupsSequence", [])
    positions = [item.PlanePositionSlideSequence[0] for item in per_frame if item.get("PlanePositionSlideSequence")]
    if len(per_frame) != frames or len(positions) != frames:
        return (f"{organisation or 'no'} Dimension Organization Type and {len(positions)} of {frames} frames with a "
                "Plane Position (Slide): the tiles cannot be placed on the Total Pixel Matrix")
    depths = {float(p.ZOffsetInSlideCoordinateSystem) for p in positions if "ZOffsetInSlideCoordinateSystem" in p}
    if len(depths) > 1:
        return (f"frames at {len(depths)} focal depths (Z Offset in Slide Coordinate System); "
                "Candor reads one focal plane")
    identifiers = {str(item.OpticalPathIdentificationSequence[0].OpticalPathIdentifier)
                   for item in per_frame if item.get("OpticalPathIdentificationSequence")}
    if len(identifiers) > 1:
        return f"frames of {len(identifiers)} optical paths; Candor reads one optical path"
    return None


def require_referenceable_image(source: Dataset) -> None:
    """Raise unless ``source`` is a single-frame image, or a tiled image of one focal plane and optical path.

    Raises
    ------
    TypeError
        If ``source`` is not a pydicom Dataset.
    ValueError
        If it has no image geometry, or several frames that are not the tiles of
        one Total Pixel Matrix (:func:`tiled_layout_problem`).
    """
    if not isinstance(source, Dataset):
        raise TypeError(f"source must be a pydicom Dataset, got {type(source).__name__}")
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Rows", "Columns"):
        if keyword not in source:
            raise ValueError(f"source image lacks {keyword}; it cannot be referenced by a derived object")
    if not has_total_pixel_matrix(source):
        if frame_count(source) != 1:
            raise ValueError(f"source image has {frame_count(source)} frames; only single-frame sources and tiled "
                             "images with a Total Pixel Matrix are supported")
        return
    problem = tiled_layout_problem(source)
    if problem is not None:
        raise ValueError(f"tiled source image {source.SOPInstanceUID} ({frame_count(source)} frames): {problem}")


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
