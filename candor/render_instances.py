"""Overlay of object instances (nuclei) coloured by a per-instance value, with their outlines.

:func:`render_instance_values` fills every instance of a label map with the colour of
its value (e.g. the MC-dropout detection confidence of a nucleus) and draws its outline,
on top of the source image, with the title, colour-bar legend and research banner of
:func:`candor.render.render_overlay`. A reader thus sees which nuclei the model would
draw in nearly every sample (one end of the colour map) and which only sometimes (the
other), and where a nucleus ends even when neighbours share a colour.

Outlines are the instance pixels within ``outline_px`` pixels of another label (the
inner border, so an outline never covers a neighbour), painted in one colour *before*
the fill is blended, so the legend stays on top.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from candor.render import render_overlay

LOGGER = logging.getLogger(__name__)

#: Colour of the instance outlines (white: visible on dark fluorescence and on pink H&E alike).
OUTLINE_COLOUR = (255, 255, 255)
#: Outline width as a fraction of the shorter image side (at least one pixel).
_OUTLINE_FRACTION = 1 / 400
#: Opacity of the fill; the stain under a nucleus stays visible.
FILL_ALPHA = 0.6


def outline_width(shape: tuple[int, int]) -> int:
    """Outline width in pixels for an image of ``shape``: 1 px up to 800 px, growing with the image."""
    return max(1, round(min(shape) * _OUTLINE_FRACTION))


def instance_outlines(labels: np.ndarray, width: int) -> np.ndarray:
    """Boolean map of the instance pixels within ``width`` pixels (chessboard) of another label."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2D, got shape {labels.shape}")
    if width < 1:
        raise ValueError(f"outline width must be ≥ 1, got {width}")
    size = 2 * width + 1
    low = ndimage.minimum_filter(labels, size=size, mode="nearest")
    high = ndimage.maximum_filter(labels, size=size, mode="nearest")
    return (labels > 0) & (low != high)


def per_pixel_values(labels: np.ndarray, values: Mapping[int, float]) -> np.ndarray:
    """float32 map holding ``values[label]`` on each instance pixel and 0 on the background.

    Raises
    ------
    ValueError
        If a label of the map has no value, or a value is not finite.
    """
    top = int(labels.max()) if labels.size else 0
    present = np.unique(labels)
    missing = sorted(int(v) for v in present if v > 0 and int(v) not in values)
    if missing:
        raise ValueError(f"no value for instance label(s) {missing[:10]}{' …' if len(missing) > 10 else ''}")
    lut = np.zeros(top + 1, np.float32)
    for label, value in values.items():
        if not np.isfinite(value):
            raise ValueError(f"value of instance {label} is not finite: {value}")
        if 0 < label <= top:
            lut[label] = value
    return lut[labels]


def render_instance_values(
    base: np.ndarray,
    labels: np.ndarray,
    values: Mapping[int, float],
    *,
    title: str,
    units: str,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "RdYlBu",
    outline_px: int | None = None,
) -> np.ndarray:
    """Fill each instance of ``labels`` with the colour of its value, outline it, and annotate.

    Parameters
    ----------
    base
        (H, W, 3) uint8 RGB source image (greyscale: stack the channel first).
    labels
        (H, W) integer instance map on the same grid, 0 = background.
    values
        Value of every label present in ``labels`` (others are ignored).
    title, units
        Title and legend units, e.g. ``"detection confidence"``.
    vmin, vmax
        Range of the colour map and legend.
    cmap
        matplotlib colour map; the default ``RdYlBu`` (a colour-blind-safe diverging map)
        shows low values red and high values blue.
    outline_px
        Outline width; default :func:`outline_width` of the image.

    Returns
    -------
    numpy.ndarray
        New (H, W, 3) uint8 image.

    Raises
    ------
    ValueError
        On mismatched shapes, a label without a value, or the errors of :func:`candor.render.render_overlay`.
    """
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer numpy array, got {getattr(labels, 'dtype', type(labels))}")
    if not isinstance(base, np.ndarray) or base.shape[:2] != labels.shape:
        raise ValueError(f"labels {labels.shape} do not match the base image {getattr(base, 'shape', None)}")
    width = outline_width(labels.shape) if outline_px is None else outline_px
    outline = instance_outlines(labels, width)
    outlined = base.copy()
    outlined[outline] = OUTLINE_COLOUR
    fill = (labels > 0) & ~outline
    out = render_overlay(outlined, per_pixel_values(labels, values), title=title, vmin=vmin, vmax=vmax, units=units,
                         cmap=cmap, alpha=FILL_ALPHA, mask=fill)
    LOGGER.debug("rendered %d instance value(s) as %s, outline %d px", len(values), units, width)
    return out
