"""Heat-map overlays of per-pixel maps (uncertainty, saliency) on the source photograph.

:func:`render_overlay` blends a matplotlib colour map of a float map over an
RGB image and burns in what a reader needs to interpret it without Candor: a
title, a colour-bar legend with the value range and units, and the banner
"RESEARCH USE ONLY — NOT FOR DIAGNOSIS". The result is what
:func:`candor.dicom.sc.build_overlay_sc` stores as a Secondary Capture.

Sizes scale with the image (the font is 3 % of the shorter side), so the text
stays legible from 512 px to 4000 px. Pixels are processed in bands of rows
with uint8/uint16/float32 arithmetic only, so a 4000×4000 map costs little
more than the output itself.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from candor.dicom.equipment import RESEARCH_BANNER

LOGGER = logging.getLogger(__name__)

#: Opacity of the colour at ``vmax`` when ``alpha`` is None (it falls linearly to 0 at ``vmin``).
MAX_RAMP_ALPHA = 0.85
_FONT_FRACTION = 0.03
_MIN_FONT_PX = 9
#: Shortest image side that leaves room for banner, title and legend.
MIN_SIDE_PX = 64
_BAND_ROWS = 256
_BANNER_COLOUR = (150, 0, 0)
_TEXT_COLOUR = (255, 255, 255)
_DARKEN = 0.3

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels, x1/y1 exclusive."""


@dataclass(frozen=True)
class OverlayLayout:
    """Where :func:`render_overlay` draws its annotations, and the texts it draws."""

    font_px: int
    banner_font_px: int
    title_font_px: int
    banner_box: Box
    title_box: Box
    legend_box: Box
    bar_box: Box
    banner_text: str
    title_text: str
    low_label: str
    high_label: str
    units_label: str


@functools.lru_cache(maxsize=32)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return ImageFont.truetype(str(path), size=size)


def _text_width(text: str, size: int, bold: bool = False) -> int:
    left, _, right, _ = _font(size, bold).getbbox(text)
    return int(right - left)


def _fitting_size(text: str, size: int, max_width: int, bold: bool = False) -> int:
    """Largest font size ≤ ``size`` (and ≥ the minimum) at which ``text`` fits ``max_width``."""
    width = _text_width(text, size, bold)
    if width <= max_width:
        return size
    return max(_MIN_FONT_PX, int(size * max_width / max(width, 1)))


def format_value(value: float) -> str:
    """Legend number: whole numbers in full (``1000``), others to three significant digits (``0.693``)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


def overlay_layout(height: int, width: int, *, title: str, vmin: float, vmax: float, units: str) -> OverlayLayout:
    """Compute the annotation boxes for an image of ``height`` × ``width`` pixels.

    Raises
    ------
    ValueError
        If a side is shorter than :data:`MIN_SIDE_PX`.
    """
    if min(height, width) < MIN_SIDE_PX:
        raise ValueError(f"image {width}×{height} is too small for a legible overlay (sides ≥ {MIN_SIDE_PX} px)")
    font_px = max(_MIN_FONT_PX, round(_FONT_FRACTION * min(height, width)))
    margin = max(2, font_px // 2)
    banner_size = _fitting_size(RESEARCH_BANNER, font_px, width - 2 * margin, bold=True)
    banner_h = min(height, round(banner_size * 1.7))
    title_size = _fitting_size(title, font_px, width - 2 * margin)
    title_h = round(title_size * 1.5)
    title_w = min(width, _text_width(title, title_size) + 2 * margin)
    title_box = (0, banner_h, title_w, min(height, banner_h + title_h))

    bar_w = max(8, min(width - 4 * margin, round(0.3 * width), round(0.5 * min(height, width))))
    bar_h = max(4, round(0.8 * font_px))
    legend_w = min(width, bar_w + 2 * margin)
    legend_h = min(height, round(font_px * 1.3) * 2 + bar_h + 2 * margin)
    x0, y0 = width - legend_w, height - legend_h
    legend_box = (x0, y0, width, height)
    bar_y0 = y0 + margin + round(font_px * 1.3)
    bar_box = (x0 + margin, bar_y0, x0 + margin + bar_w, bar_y0 + bar_h)
    return OverlayLayout(
        font_px=font_px,
        banner_font_px=banner_size,
        title_font_px=title_size,
        banner_box=(0, 0, width, banner_h),
        title_box=title_box,
        legend_box=legend_box,
        bar_box=bar_box,
        banner_text=RESEARCH_BANNER,
        title_text=title,
        low_label=format_value(vmin),
        high_label=format_value(vmax),
        units_label=units,
    )


def _check_inputs(base: np.ndarray, value: np.ndarray, vmin: float, vmax: float, alpha: float | None, mask: np.ndarray | None) -> None:
    if not isinstance(base, np.ndarray) or base.dtype != np.uint8 or base.ndim != 3 or base.shape[2] != 3:
        raise ValueError(f"base must be an (H, W, 3) uint8 array, got {getattr(base, 'dtype', None)} {getattr(base, 'shape', None)}")
    if not isinstance(value, np.ndarray) or value.shape != base.shape[:2]:
        raise ValueError(f"value must be an (H, W) array matching base {base.shape[:2]}, got {getattr(value, 'shape', None)}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise TypeError(f"value must hold real numbers, got {value.dtype}")
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"need finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] or be None, got {alpha}")
    if mask is not None and (not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != value.shape):
        raise ValueError("mask must be a boolean array of the value's shape")


def _colour_lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of matplotlib colour map ``cmap``."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown matplotlib colour map {cmap!r}") from None
    return colormap(np.linspace(0.0, 1.0, 256), bytes=True)[:, :3].copy()


def _blend(base: np.ndarray, value: np.ndarray, lut: np.ndarray, weights: np.ndarray, vmin: float, vmax: float, mask: np.ndarray | None) -> np.ndarray:
    """Blend colour ``lut[index]`` with weight ``weights[index]`` (0–255) over ``base``, band by band."""
    out = np.empty_like(base)
    scale = np.float32(255.0 / (vmax - vmin))
    for start in range(0, base.shape[0], _BAND_ROWS):
        rows = slice(start, start + _BAND_ROWS)
        band = np.subtract(value[rows], vmin, dtype=np.float32)
        if not np.all(np.isfinite(band) | (~mask[rows] if mask is not None else False)):
            raise ValueError(f"value has non-finite entries in rows {start}–{start + band.shape[0] - 1}")
        band *= scale
        np.clip(band, 0.0, 255.0, out=band)
        np.nan_to_num(band, copy=False)
        index = np.rint(band).astype(np.uint8)
        weight = weights[index].astype(np.uint16)
        if mask is not None:
            weight[~mask[rows]] = 0
        keep = 255 - weight
        for channel in range(3):
            mixed = base[rows, :, channel].astype(np.uint16) * keep
            mixed += lut[index, channel].astype(np.uint16) * weight
            mixed += 127
            mixed //= 255
            out[rows, :, channel] = mixed
    return out


def _darken(image: np.ndarray, box: Box) -> None:
    x0, y0, x1, y1 = box
    region = image[y0:y1, x0:x1]
    region[...] = (region.astype(np.float32) * _DARKEN).astype(np.uint8)


def _draw(image: np.ndarray, box: Box, paint: Callable[[ImageDraw.ImageDraw, int, int], None]) -> None:
    """Run ``paint(ImageDraw, x0, y0)`` on a PIL copy of ``box`` only and write it back."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    paint(ImageDraw.Draw(crop), x0, y0)
    image[y0:y1, x0:x1] = np.asarray(crop)


def _annotate(image: np.ndarray, layout: OverlayLayout, lut: np.ndarray) -> None:
    """Burn the banner, the title and the colour-bar legend of ``layout`` into ``image``."""
    margin = max(2, layout.font_px // 2)
    white = _TEXT_COLOUR

    bx0, by0, bx1, by1 = layout.banner_box
    image[by0:by1, bx0:bx1] = _BANNER_COLOUR

    def banner(draw: ImageDraw.ImageDraw, _x: int, _y: int) -> None:
        font = _font(layout.banner_font_px, True)
        draw.text(((bx1 - bx0) / 2, (by1 - by0) / 2), layout.banner_text, font=font, fill=white, anchor="mm")

    _draw(image, layout.banner_box, banner)

    _darken(image, layout.title_box)
    title_height = layout.title_box[3] - layout.title_box[1]

    def title(draw: ImageDraw.ImageDraw, _x: int, _y: int) -> None:
        draw.text((margin, title_height / 2), layout.title_text, font=_font(layout.title_font_px), fill=white, anchor="lm")

    _draw(image, layout.title_box, title)

    _darken(image, layout.legend_box)
    x0, y0, x1, y1 = layout.bar_box
    ramp = np.rint(np.linspace(0, 255, x1 - x0)).astype(np.uint8)
    image[y0:y1, x0:x1] = lut[ramp][None, :, :]

    def legend(draw: ImageDraw.ImageDraw, ox: int, oy: int) -> None:
        font = _font(layout.font_px)
        draw.rectangle((x0 - ox - 1, y0 - oy - 1, x1 - ox, y1 - oy), outline=white)
        draw.text(((x0 + x1) / 2 - ox, y0 - oy - margin / 2), layout.units_label, font=font, fill=white, anchor="md")
        draw.text((x0 - ox, y1 - oy + margin / 2), layout.low_label, font=font, fill=white, anchor="la")
        draw.text((x1 - ox, y1 - oy + margin / 2), layout.high_label, font=font, fill=white, anchor="ra")

    _draw(image, layout.legend_box, legend)


def render_overlay(
    base: np.ndarray,
    value: np.ndarray,
    *,
    title: str,
    vmin: float,
    vmax: float,
    units: str = "nats",
    cmap: str = "inferno",
    alpha: float | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Blend a colour map of ``value`` over ``base`` and burn in title, legend and research banner.

    Parameters
    ----------
    base
        (H, W, 3) uint8 RGB photograph, sides ≥ :data:`MIN_SIDE_PX` (greyscale
        sources: stack the channel; invert MONOCHROME1 first).
    value
        (H, W) real map, e.g. epistemic uncertainty in nats.
    title
        What the map shows, e.g. ``"Epistemic uncertainty (mutual information)"``.
    vmin, vmax
        Value range of the colour map and legend; values outside are clipped.
    units
        Units shown above the colour bar.
    cmap
        A matplotlib colour map name.
    alpha
        None: opacity rises linearly from 0 at ``vmin`` to
        :data:`MAX_RAMP_ALPHA` at ``vmax``, so where the map is low the
        photograph shows through. A number: that constant opacity everywhere.
    mask
        (H, W) bool; where False the photograph is left untouched (e.g.
        outside the fundus field of view). Non-finite values are allowed there.

    Returns
    -------
    numpy.ndarray
        New (H, W, 3) uint8 image.

    Raises
    ------
    TypeError, ValueError
        On mismatched shapes or dtypes, an image smaller than :data:`MIN_SIDE_PX`,
        an empty range, an unknown colour map or non-finite values where the map is drawn.
    """
    _check_inputs(base, value, vmin, vmax, alpha, mask)
    layout = overlay_layout(*base.shape[:2], title=title, vmin=float(vmin), vmax=float(vmax), units=units)
    lut = _colour_lut(cmap)
    if alpha is None:
        weights = np.rint(np.linspace(0.0, 255.0 * MAX_RAMP_ALPHA, 256)).astype(np.uint8)
    else:
        weights = np.full(256, round(255 * alpha), np.uint8)
    out = _blend(base, value, lut, weights, float(vmin), float(vmax), mask)
    _annotate(out, layout, lut)
    LOGGER.debug("rendered %r overlay %dx%d, range %s..%s %s", title, base.shape[1], base.shape[0], vmin, vmax, units)
    return out


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 image as PNG and return the path."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be an (H, W, 3) uint8 array")
    path = Path(path)
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(path, format="PNG")
    return path
