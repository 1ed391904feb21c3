"""Decode one DICOM image into an 8-bit array, or say exactly why it cannot be.

Colour images (RGB, or YCbCr from JPEG/JPEG 2000 compression) become (H, W, 3) RGB;
greyscale images get the Modality LUT (PS3.3 C.11.1), the VOI LUT or window
(C.11.2) and MONOCHROME1 inversion (C.7.6.3.1.2), so that higher values are brighter.
Images are single-frame, except VL Whole Slide Microscopy levels (PS3.3 A.32.8), whose
tiles are assembled into their Total Pixel Matrix (C.8.12.4.1) when it is of moderate
size (:mod:`candor.imaging.tiles`). Every failure raises :class:`InputRejected` naming
the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from candor.errors import InputRejected
from candor.imaging.tiles import assemble_total_pixel_matrix, check_whole_slide_header, is_whole_slide

_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}
_GREY = {"MONOCHROME1", "MONOCHROME2"}
_DECODE_ERRORS = (ValueError, RuntimeError, NotImplementedError, EOFError, OSError, struct.error, TypeError,
                  IndexError, AttributeError, KeyError)


def read_image_dataset(path: str | Path) -> Dataset:
    """Read ``path`` with its pixel data; damaged files raise :class:`InputRejected`."""
    try:
        return dcmread(path)
    except _DECODE_ERRORS as error:
        raise InputRejected(path, f"unreadable DICOM ({type(error).__name__}: {error})") from None


def check_pixel_data(dataset: Dataset, path: str | Path, *, tiled: bool = False) -> None:
    """Check the image attributes against the pixel data before decoding (PS3.3 C.7.6.3).

    For native (uncompressed) transfer syntaxes the pixel data must hold at least
    Rows × Columns × SamplesPerPixel × NumberOfFrames × BitsAllocated / 8 bytes.
    Several frames are accepted only with ``tiled`` (the tiles of a whole slide
    image, checked by :func:`candor.imaging.tiles.check_whole_slide_header`).
    """
    if "PixelData" not in dataset:
        raise InputRejected(path, "no pixel data (7FE0,0010): missing, or the file is truncated")
    try:
        rows, cols = int(dataset.Rows), int(dataset.Columns)
        samples = int(dataset.get("SamplesPerPixel", 1))
        bits = int(dataset.BitsAllocated)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as error:
        raise InputRejected(path, f"invalid image attributes ({error})") from None
    if rows <= 0 or cols <= 0:
        raise InputRejected(path, f"invalid image size Rows={rows} Columns={cols}")
    if frames < 1 or (frames != 1 and not tiled):
        raise InputRejected(path, f"multi-frame image ({frames} frames); Candor reads single-frame images")
    transfer_syntax = UID(dataset.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    if not transfer_syntax.is_compressed:
        expected = rows * cols * samples * frames * ((bits + 7) // 8 if bits != 1 else 1)
        if bits == 1:
            expected = (rows * cols * samples * frames + 7) // 8
        actual = len(dataset.PixelData)
        if actual < expected:
            raise InputRejected(
                path,
                f"inconsistent image: Rows {rows} × Columns {cols} × SamplesPerPixel {samples} × "
                f"{frames} frame(s) × {bits} bits needs {expected} bytes of pixel data, the file holds {actual}",
            )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.clip((array - low) * (255.0 / (high - low)) + 0.5, 0, 255).astype(np.uint8)


def decode_colour(dataset: Dataset, path: str | Path) -> np.ndarray:
    """Decode a colour image to (H, W, 3) uint8 RGB (pydicom 3 converts YCbCr to RGB)."""
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in _COLOUR or int(dataset.get("SamplesPerPixel", 1)) != 3:
        raise InputRejected(path, f"expected a 3-sample colour image, got {photometric or '<missing>'} with "
                                  f"{dataset.get('SamplesPerPixel', '?')} sample(s) per pixel")
    check_pixel_data(dataset, path)
    try:
        array = dataset.pixel_array
    except _DECODE_ERRORS as error:
        raise InputRejected(path, f"pixel data cannot be decoded ({type(error).__name__}: {error})") from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputRejected(path, f"decoded pixel array has unexpected shape {array.shape}")
    return _to_uint8(array)


def decode_grey(dataset: Dataset, path: str | Path) -> np.ndarray:
    """Decode a greyscale image to (H, W) uint8 with Modality LUT, VOI LUT/window and MONOCHROME1 inversion."""
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in _GREY:
        raise InputRejected(path, f"expected MONOCHROME1 or MONOCHROME2, got {photometric or '<missing>'}")
    check_pixel_data(dataset, path)
    try:
        array = dataset.pixel_array
        values = apply_modality_lut(array, dataset)
        if "VOILUTSequence" in dataset and np.issubdtype(values.dtype, np.floating):
            # a VOI LUT is indexed by integer values (C.11.2.1.1): an integral rescale output is integer data
            rounded = np.rint(values)
            if np.array_equal(rounded, values):
                values = rounded.astype(np.int64)
        if "VOILUTSequence" in dataset or "WindowCenter" in dataset:
            values = apply_voi_lut(values, dataset, prefer_lut=True)
    except _DECODE_ERRORS as error:
        raise InputRejected(path, f"pixel data cannot be decoded ({type(error).__name__}: {error})") from None
    if values.ndim != 2:
        raise InputRejected(path, f"decoded pixel array has unexpected shape {values.shape}")
    image = _to_uint8(np.asarray(values))
    if photometric == "MONOCHROME1":
        image = 255 - image
    return image


def decode_whole_slide(dataset: Dataset, path: str | Path) -> np.ndarray:
    """Decode a VL Whole Slide Microscopy level to its Total Pixel Matrix, (H, W, 3) RGB or (H, W) uint8.

    The header is checked first (size limit, one focal plane and optical path, tile
    layout: :func:`candor.imaging.tiles.check_whole_slide_header`), then the pixel
    data length, then highdicom assembles the tiles. Colour is converted as in
    :func:`decode_colour`; grey values as in :func:`decode_grey` (scaled to 8 bits,
    higher is brighter).
    """
    rows, columns = check_whole_slide_header(dataset, path)
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    colour = photometric in _COLOUR
    if colour and int(dataset.get("SamplesPerPixel", 1)) != 3:
        raise InputRejected(path, f"expected a 3-sample colour image, got {photometric} with "
                                  f"{dataset.get('SamplesPerPixel', '?')} sample(s) per pixel")
    if not colour and photometric not in _GREY:
        raise InputRejected(path, f"unsupported photometric interpretation {photometric or '<missing>'}")
    check_pixel_data(dataset, path, tiled=True)
    matrix = assemble_total_pixel_matrix(dataset, path, colour=colour)
    expected = (rows, columns, 3) if colour else (rows, columns)
    if matrix.shape != expected:
        raise InputRejected(path, f"assembled Total Pixel Matrix has shape {matrix.shape}, expected {expected}")
    return _to_uint8(matrix)


def decode_image(path: str | Path) -> tuple[Dataset, np.ndarray]:
    """Read and decode the image at ``path``; returns the dataset without its pixel data, and the array.

    The pixel data element is dropped from the returned dataset: writers need the
    header only, and a 4000×4000 RGB source would otherwise be held twice.
    """
    dataset = read_image_dataset(path)
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if is_whole_slide(dataset):
        image = decode_whole_slide(dataset, path)
    elif photometric in _COLOUR:
        image = decode_colour(dataset, path)
    elif photometric in _GREY:
        image = decode_grey(dataset, path)
    else:
        raise InputRejected(path, f"unsupported photometric interpretation {photometric or '<missing>'}")
    del dataset.PixelData
    return dataset, image
