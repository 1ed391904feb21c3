"""Bring a decoded image to the network's working resolution, and maps back to the source's.

Fundus photographs arrive at 1500–4000 px, but vessel calibre relative to the field of
view is what the network learnt (DRIVE-like, ~565 px across). Inference therefore runs
at a fixed working size (long side = ``working_size``, aspect kept, zero-padded to a
multiple of the U-Net's down-sampling factor), and every output map is resized back to
the source grid. :class:`Geometry` remembers what to undo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from candor.bundle import Preprocessing


@dataclass(frozen=True)
class Geometry:
    """The source size, the resized size, and the padded network input size."""

    source_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    padded_shape: tuple[int, int]


def working_shape(source_shape: tuple[int, int], working_size: int) -> tuple[int, int]:
    """(rows, columns) with the long side equal to ``working_size`` and the aspect ratio kept."""
    rows, cols = source_shape
    scale = working_size / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def to_grey(image: np.ndarray, method: str) -> np.ndarray:
    """An (H, W, 3) uint8 colour image as (H, W) uint8 grey, by ``luminance`` (BT.601) or channel ``max``."""
    if method == "max":
        return image.max(axis=2)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(image.astype(np.float32) @ weights + 0.5, 0, 255).astype(np.uint8)


def model_channels(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """The decoded image in the channels the model reads (a colour source for a grey model becomes grey)."""
    if prep.channels == "MONOCHROME" and image.ndim == 3 and image.shape[2] == 3:
        return to_grey(image, prep.colour_to_grey)
    return image


def to_network_input(image: np.ndarray, prep: Preprocessing) -> tuple[torch.Tensor, Geometry]:
    """Resize an 8-bit (H, W, 3) RGB or (H, W) grey image and scale it to [0, 1].

    Returns a (1, C, H', W') float32 tensor, zero-padded at the bottom/right, and the
    geometry needed to map outputs back. Resizing uses PIL's box/Lanczos filters on
    the uint8 data, so a 4000×4000 source never exists as float32.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit image, got {image.dtype}")
    image = model_channels(image, prep)
    if prep.channels == "RGB" and (image.ndim != 3 or image.shape[2] != 3):
        raise ValueError(f"the model expects RGB input, got an image of shape {image.shape}")
    if prep.channels == "MONOCHROME" and image.ndim != 2:
        raise ValueError(f"the model expects a greyscale input, got an image of shape {image.shape}")
    source_shape = (int(image.shape[0]), int(image.shape[1]))
    resized_shape = working_shape(source_shape, prep.working_size)
    if resized_shape != source_shape:
        resized = np.asarray(
            Image.fromarray(image).resize((resized_shape[1], resized_shape[0]), Image.Resampling.LANCZOS,
                                          reducing_gap=3.0)
        )
    else:
        resized = image
    padded_shape = (_round_up(resized_shape[0], prep.size_multiple), _round_up(resized_shape[1], prep.size_multiple))
    array = resized.astype(np.float32) / 255.0
    array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    tensor = torch.zeros((1, array.shape[0], *padded_shape), dtype=torch.float32)
    tensor[0, :, : resized_shape[0], : resized_shape[1]] = torch.from_numpy(np.ascontiguousarray(array))
    return tensor, Geometry(source_shape, resized_shape, padded_shape)


def to_source_grid(maps: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Crop the padding off (…, H', W') maps and resize them bilinearly to the source grid.

    Works map by map so that peak memory is one float32 source-sized map at a time
    plus the result.
    """
    rows, cols = geometry.resized_shape
    cropped = np.asarray(maps, dtype=np.float32)[..., :rows, :cols]
    lead = cropped.shape[:-2]
    flat = cropped.reshape(-1, rows, cols)
    out = np.empty((flat.shape[0], *geometry.source_shape), dtype=np.float32)
    for index, plane in enumerate(flat):
        if (rows, cols) == geometry.source_shape:
            out[index] = plane
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(plane))[None, None]
        out[index] = F.interpolate(tensor, size=geometry.source_shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    return out.reshape(*lead, *geometry.source_shape)
