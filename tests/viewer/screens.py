"""Pixel evidence from OHIF viewport screenshots: where the image lies, what changed, what a box looks like.

Cornerstone shows a single image "fit to window": scaled by
``min(width / columns, height / rows)`` and centred in the canvas. The probe
screenshots exactly the canvas box, so image pixel (column, row) appears at
``origin + scale * (column, row)`` in the capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class Placement:
    """Where an image of ``rows`` × ``columns`` pixels is drawn in a capture."""

    x0: float
    y0: float
    scale: float
    rows: int
    columns: int

    def to_screen(self, column: float, row: float) -> tuple[float, float]:
        return self.x0 + self.scale * column, self.y0 + self.scale * row

    def rect(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in capture pixels, exclusive end."""
        x1, y1 = self.to_screen(self.columns, self.rows)
        return round(self.x0), round(self.y0), round(x1), round(y1)


def load_rgb(path: str | Path) -> np.ndarray:
    """A screenshot as (H, W, 3) uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def fit_placement(capture_shape: tuple[int, int], rows: int, columns: int) -> Placement:
    """Placement of a ``rows`` × ``columns`` image fitted and centred in a capture of ``capture_shape`` (H, W)."""
    height, width = capture_shape
    scale = min(width / columns, height / rows)
    return Placement((width - scale * columns) / 2, (height - scale * rows) / 2, scale, rows, columns)


def displayed_mask(mask: np.ndarray, placement: Placement, capture_shape: tuple[int, int]) -> np.ndarray:
    """``mask`` (rows, columns) resampled (nearest) onto the capture grid; False outside the image."""
    height, width = capture_shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5  # pixel centres
    columns = np.floor((xs - placement.x0) / placement.scale).astype(int)
    rows = np.floor((ys - placement.y0) / placement.scale).astype(int)
    inside = (columns >= 0) & (columns < mask.shape[1]) & (rows >= 0) & (rows < mask.shape[0])
    result = np.zeros((height, width), bool)
    result[inside] = mask[rows[inside], columns[inside]]
    return result


def changed_pixels(first: np.ndarray, second: np.ndarray, threshold: int = 24) -> np.ndarray:
    """Pixels whose largest channel difference exceeds ``threshold`` (screenshots of the same geometry)."""
    if first.shape != second.shape:
        raise ValueError(f"captures differ in size: {first.shape} vs {second.shape}")
    return np.abs(first.astype(np.int16) - second.astype(np.int16)).max(axis=2) > threshold


@dataclass(frozen=True)
class OverlayAgreement:
    """How well the changed pixels match the expected overlay area."""

    changed: int
    precision: float
    """Share of changed pixels that lie on the (slightly dilated) expected area."""
    recall: float
    """Share of the (slightly eroded) expected area that changed."""


def overlay_agreement(changed: np.ndarray, expected: np.ndarray, tolerance_px: int = 3) -> OverlayAgreement:
    """Compare the changed pixels with the expected displayed overlay, allowing ``tolerance_px`` at edges."""
    structure = np.ones((3, 3), bool)
    near = ndimage.binary_dilation(expected, structure, iterations=tolerance_px)
    core = ndimage.binary_erosion(expected, structure, iterations=tolerance_px)
    count = int(changed.sum())
    precision = float((changed & near).sum()) / count if count else 0.0
    recall = float((changed & core).sum()) / float(core.sum()) if core.any() else 0.0
    return OverlayAgreement(count, precision, recall)


def line_coverage(rgb: np.ndarray, start: tuple[float, float], end: tuple[float, float],
                  colour_test: np.ndarray | None = None, search_px: int = 3) -> float:
    """Share of sample points along a screen segment that have a matching pixel within ``search_px``.

    ``colour_test`` is a boolean (H, W) map of pixels of the expected colour
    (default: saturated green, the colour OHIF draws SR regions in).
    """
    if colour_test is None:
        colour_test = is_annotation_green(rgb)
    near = ndimage.binary_dilation(colour_test, np.ones((3, 3), bool), iterations=search_px)
    length = max(abs(end[0] - start[0]), abs(end[1] - start[1]))
    samples = max(int(length), 2)
    xs = np.linspace(start[0], end[0], samples).round().astype(int).clip(0, rgb.shape[1] - 1)
    ys = np.linspace(start[1], end[1], samples).round().astype(int).clip(0, rgb.shape[0] - 1)
    return float(near[ys, xs].mean())


def is_annotation_green(rgb: np.ndarray) -> np.ndarray:
    """Pixels of OHIF's annotation green (bright green, little red or blue)."""
    r, g, b = (rgb[..., channel].astype(np.int16) for channel in range(3))
    return (g > 150) & (r < 120) & (b < 120)


def is_annotation_colour(rgb: np.ndarray) -> np.ndarray:
    """Pixels of either colour OHIF draws SR regions in: green, or yellow for the highlighted group."""
    r, g, b = (rgb[..., channel].astype(np.int16) for channel in range(3))
    return is_annotation_green(rgb) | ((r > 170) & (g > 170) & (b < 90))


def is_banner_red(rgb: np.ndarray) -> np.ndarray:
    """Pixels of the research banner that Candor burns into every overlay (150, 0, 0), with some blur."""
    r, g, b = (rgb[..., channel].astype(np.int16) for channel in range(3))
    return (r > 110) & (r < 190) & (g < 40) & (b < 40)
