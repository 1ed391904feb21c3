"""Synthetic source images of every kind Candor's writers must handle, for conformance tests and demos.

:mod:`candor.dicom.synthetic` builds the Ophthalmic Photography and DX images;
this module adds the other source kinds the writers must support and the
compressed variants, each a small instance that dciodvfy accepts (single-frame, except the tiled SM):

==================  ==================================================================  ===================
Kind                IOD (PS3.3)                                                         Transfer syntax
==================  ==================================================================  ===================
op_rgb              Ophthalmic Photography 8 Bit (A.39.1), RGB                           Explicit VR LE
op_jpeg_baseline    Ophthalmic Photography 8 Bit, YBR_FULL_422                           JPEG Baseline (lossy)
cr_mono1            Computed Radiography (A.2), 16-bit MONOCHROME1                       Explicit VR LE
cr_mono1_rle        Computed Radiography, MONOCHROME1                                    RLE Lossless
dx_mono2            Digital X-Ray For Presentation (A.26.1), MONOCHROME2                 Explicit VR LE
dx_mono2_j2k        Digital X-Ray For Presentation, MONOCHROME2                          JPEG 2000 Lossless
vl_microscopic      VL Microscopic Image (A.32.2), RGB, with a Specimen module           Explicit VR LE
sm                  VL Whole Slide Microscopy (A.32.8), one tile, RGB, FoR               Explicit VR LE
sm_tiled            VL Whole Slide Microscopy, TILED_FULL 2 × 3 tiles of 128 px, RGB     Explicit VR LE
==================  ==================================================================  ===================

``sm_tiled`` is built by :func:`build_source` but is not in :data:`SOURCE_KINDS`
(the kinds ``tests/test_conformance.py`` iterates): its readback gate compares
outputs with the source's Rows × Columns, which for a tiled image is one tile,
not the Total Pixel Matrix the outputs cover. :data:`TILED_SOURCE_KINDS` lists it.

Each kind gets its own patient and study (:func:`identity_for`), so a test can
check a source and its derived objects together with dcentvfy. Every UID is
derived from the kind (:func:`candor.dicom.uids.derived_uid`): the same call
builds the same instance.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import FileDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from candor.dicom.synthetic import StudyIdentity, build_dx_image, build_op_image, synthetic_fundus
from candor.dicom.synthetic_parts import (  # noqa: F401  (re-exported: the public names of the source kinds)
    CR_SOP_CLASS_UID,
    DEFAULT_SHAPE,
    VL_MICROSCOPIC_SOP_CLASS_UID,
    VL_WHOLE_SLIDE_SOP_CLASS_UID,
    _part10,
    _pixels,
    _specimen,
    identity_for,
    synthetic_cells,
    synthetic_radiograph,
)
from candor.dicom.synthetic_slides import (  # noqa: F401
    TILE_SIZE,
    TILED_SHAPE,
    build_sm_image,
    build_tiled_sm_image,
    tile_total_pixel_matrix,
)
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

# -- CR, VL microscopic, SM ---------------------------------------------------------------------------------
def build_cr_image(pixels: np.ndarray, *, identity: StudyIdentity, kind: str = "cr_mono1",
                   pixel_spacing: tuple[float, float] = (0.2, 0.2)) -> FileDataset:
    """Computed Radiography Image (A.2), MONOCHROME1 (0 is white), 12 bits stored in 16, with Pixel Spacing."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise TypeError("pixels must be a (rows, columns) uint16 array")
    ds = _part10(CR_SOP_CLASS_UID, kind, identity, modality="CR", series_description="Chest PA (synthetic CR)")
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"  # CR Series (C.8.1.1)
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    _pixels(ds, 4095 - pixels, "MONOCHROME1", bits_stored=12)  # MONOCHROME1: attenuation shown white
    ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    return ds


def build_vl_microscopic_image(rgb: np.ndarray, *, identity: StudyIdentity,
                               kind: str = "vl_microscopic") -> FileDataset:
    """VL Microscopic Image (A.32.2): an RGB photomicrograph of a specimen, no Frame of Reference."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError("rgb must be a (rows, columns, 3) uint8 array")
    ds = _part10(VL_MICROSCOPIC_SOP_CLASS_UID, kind, identity, modality="GM",
                 series_description="Photomicrograph (synthetic)")
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    ds.AcquisitionContextSequence = []
    _pixels(ds, rgb, "RGB")
    _specimen(ds, kind)
    return ds


# -- compression -----------------------------------------------------------------------------------------
def jpeg_baseline(ds: FileDataset, *, quality: int = 90) -> FileDataset:
    """Re-encode an 8-bit RGB instance as JPEG Baseline (YBR_FULL_422, lossy) with Pillow; returns ``ds``."""
    if ds.PhotometricInterpretation != "RGB" or int(ds.BitsAllocated) != 8:
        raise ValueError("JPEG Baseline re-encoding needs an 8-bit RGB source")
    rgb = ds.pixel_array
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=quality, subsampling=1)  # 1 = 4:2:2
    encoded = buffer.getvalue()
    ds.PixelData = encapsulate([encoded])
    ds["PixelData"].VR = "OB"
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = round(rgb.nbytes / len(encoded), 2)
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    return ds


def lossless(ds: FileDataset, transfer_syntax: str) -> FileDataset:
    """Compress ``ds`` in place with RLE Lossless (pydicom) or JPEG 2000 Lossless (pylibjpeg-openjpeg)."""
    if transfer_syntax not in (RLELossless, JPEG2000Lossless):
        raise ValueError(f"unsupported lossless transfer syntax {transfer_syntax}")
    ds.compress(transfer_syntax, encoding_plugin="pylibjpeg" if transfer_syntax == JPEG2000Lossless else "",
                generate_instance_uid=False)  # keep the UID derived from the kind: the same call, the same instance
    return ds


# -- registry -----------------------------------------------------------------------------------------------
def _op(identity: StudyIdentity, shape: tuple[int, int]) -> FileDataset:
    study = identity.resolved_study_uid()
    return build_op_image(synthetic_fundus(*shape), identity=identity, pixel_spacing=(0.01, 0.01),
                          series_instance_uid=derived_uid(study, "op", "series"),
                          sop_instance_uid=derived_uid(study, "op", "instance"))


def _dx(identity: StudyIdentity, shape: tuple[int, int]) -> FileDataset:
    study = identity.resolved_study_uid()
    return build_dx_image(synthetic_radiograph(*shape, maximum=65535), identity=identity,
                          photometric_interpretation="MONOCHROME2",
                          series_instance_uid=derived_uid(study, "dx", "series"),
                          sop_instance_uid=derived_uid(study, "dx", "instance"))


_BUILDERS: dict[str, Callable[[StudyIdentity, tuple[int, int]], FileDataset]] = {
    "op_rgb": _op,
    "op_jpeg_baseline": lambda i, s: jpeg_baseline(_op(i, s)),
    "cr_mono1": lambda i, s: build_cr_image(synthetic_radiograph(*s), identity=i),
    "cr_mono1_rle": lambda i, s: lossless(build_cr_image(synthetic_radiograph(*s), identity=i), RLELossless),
    "dx_mono2": _dx,
    "dx_mono2_j2k": lambda i, s: lossless(_dx(i, s), JPEG2000Lossless),
    "vl_microscopic": lambda i, s: build_vl_microscopic_image(synthetic_cells(*s), identity=i),
    "sm": lambda i, s: build_sm_image(synthetic_cells(*s), identity=i),
    "sm_tiled": lambda i, s: build_tiled_sm_image(synthetic_cells(*s, count=30), identity=i),
}

#: Source kinds whose Total Pixel Matrix spans several frames (tiles), see the module docstring.
TILED_SOURCE_KINDS: tuple[str, ...] = ("sm_tiled",)

#: Every single-frame source kind, in a stable order (what the conformance test iterates).
SOURCE_KINDS: tuple[str, ...] = tuple(kind for kind in _BUILDERS if kind not in TILED_SOURCE_KINDS)

#: Size (rows, columns) of a kind's image when the caller gives none: :data:`DEFAULT_SHAPE`, except the
#: tiled SM, whose Total Pixel Matrix is :data:`TILED_SHAPE`.
_DEFAULT_SHAPES: dict[str, tuple[int, int]] = {"sm_tiled": TILED_SHAPE}


def build_source(kind: str, *, identity: StudyIdentity | None = None,
                 shape: tuple[int, int] | None = None) -> FileDataset:
    """Build the synthetic source instance of ``kind`` (see the module table).

    ``shape`` is the image size (rows, columns), for a tiled kind the Total Pixel
    Matrix; default :data:`DEFAULT_SHAPE` (:data:`TILED_SHAPE` for ``sm_tiled``).

    Raises
    ------
    KeyError
        If ``kind`` is not one of :data:`SOURCE_KINDS` or :data:`TILED_SOURCE_KINDS`.
    """
    if kind not in _BUILDERS:
        raise KeyError(f"unknown source kind {kind!r}; known: {', '.join(_BUILDERS)}")
    dataset = _BUILDERS[kind](identity or identity_for(kind), shape or _DEFAULT_SHAPES.get(kind, DEFAULT_SHAPE))
    LOGGER.debug("built synthetic %s source %s", kind, dataset.SOPInstanceUID)
    return dataset


def write_source(kind: str, folder: str | Path, **kwargs: object) -> Path:
    """Build the source of ``kind`` and save it as ``<folder>/<kind>.dcm``; returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.dcm"
    build_source(kind, **kwargs).save_as(path, enforce_file_format=True)  # type: ignore[arg-type]
    return path

