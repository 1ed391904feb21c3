"""Image-level figures of a segmentation: foreground fraction and mean uncertainties.

They are computed at the network's working resolution inside the field of view
(the illuminated disc of a fundus photograph), which is what a clinician compares
between eyes; per-pixel maps are written separately at the source resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from candor.records import InferredImage


@dataclass(frozen=True)
class SegmentationSummary:
    foreground_fraction: float
    mean_epistemic: float
    mean_aleatoric: float
    mean_total: float
    field_of_view_box: tuple[int, int, int, int]
    """(column_min, row_min, column_max, row_max) of the field of view, in source pixels."""
    samples: int
    seed: int


def estimate_field_of_view(image: np.ndarray, threshold: int = 20) -> np.ndarray:
    """The illuminated field of view of a photograph: the largest bright connected region, holes filled.

    Fundus cameras leave the surround black; the red channel (or the grey level)
    separates the disc from it robustly.
    """
    channel = image[..., 0] if image.ndim == 3 else image
    bright = ndimage.median_filter(channel, size=5) > threshold  # removes noise without moving the edge
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.ones(channel.shape, dtype=bool)
    sizes = ndimage.sum_labels(bright, labels, index=np.arange(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)


def summarise_segmentation(inferred: InferredImage, threshold: float, foreground_class: int = 1) -> SegmentationSummary:
    """Foreground fraction and mean epistemic/aleatoric/total uncertainty inside the field of view."""
    rows, cols = inferred.geometry.resized_shape
    small = np.asarray(Image.fromarray(inferred.decoded.image).resize((cols, rows), Image.Resampling.BILINEAR))
    fov = estimate_field_of_view(small)
    maps = inferred.maps
    mask = maps.mean_probability[foreground_class, :rows, :cols] >= threshold
    inside = fov if fov.any() else np.ones_like(fov)

    source_rows, source_cols = inferred.geometry.source_shape
    fov_rows = np.flatnonzero(inside.any(axis=1))
    fov_cols = np.flatnonzero(inside.any(axis=0))
    scale_r, scale_c = source_rows / rows, source_cols / cols
    box = (
        int(fov_cols[0] * scale_c),
        int(fov_rows[0] * scale_r),
        min(source_cols - 1, int((fov_cols[-1] + 1) * scale_c)),
        min(source_rows - 1, int((fov_rows[-1] + 1) * scale_r)),
    )
    return SegmentationSummary(
        foreground_fraction=float(mask[inside].mean()),
        mean_epistemic=float(maps.epistemic[:rows, :cols][inside].mean()),
        mean_aleatoric=float(maps.aleatoric[:rows, :cols][inside].mean()),
        mean_total=float(maps.total[:rows, :cols][inside].mean()),
        field_of_view_box=box,
        samples=maps.samples,
        seed=inferred.seed,
    )
