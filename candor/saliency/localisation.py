"""Does the saliency map point at the lesion? Two measures against a known lesion mask.

* Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation
  backprop", ECCV): a hit when the map's maximum lies inside the lesion,
  optionally dilated by a tolerance in pixels (Zhang et al. used 15 px).
* Mass inside: the fraction of the map's absolute mass that falls inside the
  lesion — "mass accuracy" (Arras et al. 2022, CLEVR-XAI), Quantus
  ``AttributionLocalisation``/``RelevanceMassAccuracy`` (reference §8).

Both use |map|, so signed integrated-gradients maps count negative evidence as
attention too. They are pure numpy functions over (B, H, W) arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def _as_batch(name: str, value: np.ndarray | torch.Tensor) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (B, H, W), got shape {array.shape}")
    return array


def _pairs(maps: np.ndarray | torch.Tensor, lesions: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    saliency = np.abs(_as_batch("maps", maps).astype(np.float64))
    lesion = _as_batch("lesions", lesions)
    if lesion.dtype != bool:
        if not np.isin(lesion, (0, 1)).all():
            raise ValueError("a lesion mask must be boolean or hold only 0 and 1")
        lesion = lesion.astype(bool)
    if lesion.shape[0] == 1 and saliency.shape[0] > 1:
        lesion = np.broadcast_to(lesion, saliency.shape)
    if lesion.shape != saliency.shape:
        raise ValueError(f"lesion masks {lesion.shape} do not match maps {saliency.shape}")
    if not np.isfinite(saliency).all():
        raise ValueError("maps contain NaN or infinite values")
    empty = [n for n in range(lesion.shape[0]) if not lesion[n].any()]
    if empty:
        raise ValueError(f"lesion masks of images {empty} are empty; localisation is undefined there")
    return saliency, lesion


def _disk(radius: int) -> np.ndarray:
    grid = np.arange(-radius, radius + 1)
    return (grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2


def pointing_game(
    maps: np.ndarray | torch.Tensor,
    lesions: np.ndarray | torch.Tensor,
    tolerance_px: int = 0,
) -> np.ndarray:
    """Per image, 1.0 if the maximum of |map| lies inside the lesion, else 0.0.

    The lesion is dilated by a disk of radius ``tolerance_px`` first. When
    several pixels share the maximum the score is the fraction of them inside
    the lesion; a constant map points nowhere and scores NaN.
    """
    if isinstance(tolerance_px, bool) or not isinstance(tolerance_px, int) or tolerance_px < 0:
        raise ValueError(f"tolerance_px must be a non-negative integer, got {tolerance_px!r}")
    saliency, lesion = _pairs(maps, lesions)
    scores = np.empty(saliency.shape[0], dtype=np.float64)
    for n in range(saliency.shape[0]):
        target = lesion[n]
        if tolerance_px:
            target = ndimage.binary_dilation(target, structure=_disk(tolerance_px))
        peak = saliency[n].max()
        if peak == saliency[n].min():
            scores[n] = np.nan
            continue
        at_peak = saliency[n] == peak
        scores[n] = float(target[at_peak].mean())
    return scores


def mass_inside(maps: np.ndarray | torch.Tensor, lesions: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per image, Σ|map| inside the lesion / Σ|map| (NaN for an all-zero map)."""
    saliency, lesion = _pairs(maps, lesions)
    total = saliency.reshape(saliency.shape[0], -1).sum(axis=1)
    inside = (saliency * lesion).reshape(saliency.shape[0], -1).sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def peak_region(saliency: np.ndarray, fraction: float = 0.5) -> tuple[int, int, int, int]:
    """Bounding box (row_start, col_start, row_stop, col_stop; stop exclusive) of the saliency peak.

    The region is the connected component of ``|saliency| ≥ fraction · max`` that holds the
    maximum — the "where the model looked" box a report draws for a classification
    (Grad-CAM papers localise the same way, Selvaraju et al. 2017 §4.1 threshold at 15 %
    of the max; a higher fraction gives a tighter box around the peak). A constant map has
    no peak: the whole image is returned.
    """
    magnitude = np.abs(np.asarray(saliency, np.float64))
    if magnitude.ndim != 2:
        raise ValueError(f"saliency must be (H, W), got shape {magnitude.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak <= 0.0 or not np.isfinite(peak) or float(magnitude.min()) == peak:
        return 0, 0, magnitude.shape[0], magnitude.shape[1]
    components, _ = ndimage.label(magnitude >= fraction * peak)
    row, col = np.unravel_index(int(np.argmax(magnitude)), magnitude.shape)
    rows, cols = np.nonzero(components == components[row, col])
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1
