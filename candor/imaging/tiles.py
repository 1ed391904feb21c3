"""Tiled VL Whole Slide Microscopy images of moderate size: header checks and Total Pixel Matrix assembly.

A level of a whole slide image (VL Whole Slide Microscopy Image IOD, PS3.3 A.32.8;
module C.8.12.4) is one large 2D image, the Total Pixel Matrix (C.8.12.4.1), stored
as frames that are tiles of Rows × Columns. How the tiles are placed is given by the
Dimension Organization Type (C.7.6.17.3 of the Multi-frame Dimension module):

* ``TILED_FULL``: every tile is present, in row-major order (then focal planes, then
  optical paths); positions follow from the Total Pixel Matrix Origin Sequence and
  the tile size, and there are no per-frame functional groups;
* ``TILED_SPARSE``: each frame has a Plane Position (Slide) (C.8.12.6.1) with its
  Row/Column Position In Total Image Pixel Matrix; missing tiles are background.

Candor reads one such level as a single (rows, columns[, 3]) array, so it takes a
level only when it is of moderate size — at most :data:`MAX_TOTAL_PIXEL_MATRIX`
pixels each way — with one focal plane and one optical path. Tiles are assembled by
highdicom (``Image.get_total_pixel_matrix``), which decodes each frame (native or
compressed, YCbCr converted to RGB) and crops the padding of the edge tiles.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from candor.dicom.source import frame_count, has_total_pixel_matrix, image_shape, tiled_layout_problem
from candor.errors import InputRejected

LOGGER = logging.getLogger(__name__)

VL_WHOLE_SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"

#: Largest Total Pixel Matrix (rows and columns each) Candor decodes: 8192 × 8192 RGB is 192 MiB as uint8.
MAX_TOTAL_PIXEL_MATRIX = 8192

_ASSEMBLY_ERRORS = (ValueError, RuntimeError, NotImplementedError, EOFError, OSError, TypeError, IndexError,
                    AttributeError, KeyError)


def is_whole_slide(dataset: Dataset) -> bool:
    """Whether ``dataset`` is a VL Whole Slide Microscopy image (SOP Class 1.2.840.10008.5.1.4.1.1.77.1.6)."""
    return str(dataset.get("SOPClassUID", "")) == VL_WHOLE_SLIDE_MICROSCOPY


def check_whole_slide_header(dataset: Dataset, path: str | Path,
                             limit: int = MAX_TOTAL_PIXEL_MATRIX) -> tuple[int, int]:
    """Check a whole slide image's header; returns its Total Pixel Matrix (rows, columns).

    Header only (usable before the pixel data is read): the Total Pixel Matrix is
    present (C.8.12.4.1), positive and at most ``limit`` pixels each way; the frames
    are tiles of one focal plane and one optical path that can be placed on it
    (:func:`candor.dicom.source.tiled_layout_problem`).

    Raises
    ------
    InputRejected
        Naming ``path`` and the reason.
    """
    if not has_total_pixel_matrix(dataset):
        raise InputRejected(path, "VL Whole Slide Microscopy image without Total Pixel Matrix Rows/Columns "
                                  "(PS3.3 C.8.12.4.1)")
    try:
        rows, columns = image_shape(dataset)
        tile_rows, tile_columns, frames = int(dataset.Rows), int(dataset.Columns), frame_count(dataset)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputRejected(path, f"invalid tiled image attributes ({error})") from None
    if min(rows, columns, tile_rows, tile_columns, frames) <= 0:
        raise InputRejected(path, f"invalid tiled image size: Total Pixel Matrix {rows}×{columns}, tiles "
                                  f"{tile_rows}×{tile_columns}, {frames} frame(s)")
    if rows > limit or columns > limit:
        raise InputRejected(
            path,
            f"whole slide image too large: Total Pixel Matrix {rows}×{columns} (rows × columns) exceeds Candor's "
            f"limit of {limit}×{limit} for a slide image of moderate size; send a lower-resolution level",
        )
    try:
        problem = tiled_layout_problem(dataset)
    except (AttributeError, TypeError, ValueError, IndexError) as error:
        raise InputRejected(path, f"invalid tile layout attributes ({type(error).__name__}: {error})") from None
    if problem is not None:
        raise InputRejected(path, f"unsupported whole slide image: {problem}")
    return rows, columns


def assemble_total_pixel_matrix(dataset: Dataset, path: str | Path, *, colour: bool) -> np.ndarray:
    """The Total Pixel Matrix of ``dataset`` (with pixel data): (rows, columns, 3) colour or (rows, columns) grey.

    Colour: stored values (uint8 for 8-bit data), YCbCr converted to RGB, no ICC
    profile applied (as for single-frame images). Grey: float values after the
    Modality and VOI transformations and the Presentation LUT (MONOCHROME1 is
    inverted), when the header has them. Call :func:`check_whole_slide_header` first.

    Raises
    ------
    InputRejected
        If highdicom cannot index the frames as a Total Pixel Matrix or decode them.
    """
    view = Dataset()
    for element in dataset:  # a shallow copy: highdicom re-classes the dataset it is given
        view.add(element)
    view.file_meta = dataset.file_meta
    eight_bit = int(dataset.BitsAllocated) == 8
    try:
        image = hd.Image.from_dataset(view, copy=False)
        if colour:
            matrix = image.get_total_pixel_matrix(dtype=np.uint8 if eight_bit else np.float32,
                                                  apply_icc_profile=False, apply_voi_transform=False)
        else:
            matrix = image.get_total_pixel_matrix(dtype=np.float32, apply_voi_transform=None,
                                                  apply_presentation_lut=True, apply_icc_profile=False)
    except _ASSEMBLY_ERRORS as error:
        raise InputRejected(path, f"tiles cannot be assembled into the Total Pixel Matrix "
                                  f"({type(error).__name__}: {error})") from None
    LOGGER.debug("%s: %d frame(s) assembled into a %s Total Pixel Matrix", path, frame_count(dataset), matrix.shape)
    return matrix
