"""Pixel metrics for binary segmentation and its uncertainty, restricted to a mask.

All functions are pure NumPy and take arrays of one shape plus an optional boolean
``mask`` (for fundus images: the field of view, as in the DRIVE protocol — pixels
outside the FOV are trivially background and would inflate every figure).

* :func:`dice` — 2|P ∩ T| / (|P| + |T|) (= F1 of the vessel class).
* :func:`roc_auc` — area under the ROC curve from ranks (Mann–Whitney U), ties averaged.
* :func:`expected_calibration_error` — ECE of the foreground probability with 15
  equal-width bins by default (torch-uncertainty's default; MONAI's
  ``CalibrationErrorMetric`` uses 20).
* :func:`error_detection_auroc` — how well an uncertainty map ranks wrongly classified
  pixels above correct ones (AUROC; 0.5 = no better than chance).
"""

from __future__ import annotations

import numpy as np


def _select(mask: np.ndarray | None, *arrays: np.ndarray) -> list[np.ndarray]:
    """Flatten ``arrays`` (all of one shape) to the pixels where ``mask`` is True."""
    shape = np.shape(arrays[0])
    for array in arrays[1:]:
        if np.shape(array) != shape:
            raise ValueError(f"arrays must have one shape, got {shape} and {np.shape(array)}")
    if mask is None:
        return [np.asarray(a).ravel() for a in arrays]
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} differs from data shape {shape}")
    if mask.dtype != bool:
        raise ValueError(f"mask must be boolean, got {mask.dtype}")
    return [np.asarray(a)[mask] for a in arrays]


def dice(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Dice coefficient of two boolean maps inside ``mask``; 1.0 when both are empty."""
    pred, true = _select(mask, np.asarray(prediction, bool), np.asarray(target, bool))
    denominator = int(pred.sum()) + int(true.sum())
    if denominator == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, true).sum()) / denominator


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return (first + (counts + 1) / 2.0)[inverse.ravel()]


def roc_auc(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` inside ``mask``.

    Equals P(score of a random positive > score of a random negative) + ½ P(tie): the
    Mann–Whitney U statistic divided by n_pos · n_neg, from average ranks. Raises
    ``ValueError`` when the selected pixels contain only one class (the AUC is undefined).
    """
    values, positive = _select(mask, np.asarray(scores, np.float64), np.asarray(labels, bool))
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC is undefined with {n_pos} positive and {n_neg} negative pixels")
    if np.isnan(values).any():
        raise ValueError("ROC AUC: scores contain NaN")
    ranks = _average_ranks(values)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def calibration_bins(
    probability: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability table of the foreground probability over ``bins`` equal-width bins of [0, 1].

    Bin k holds p in [k/bins, (k+1)/bins), the last bin also p = 1. Returns per bin the
    pixel count, the mean predicted probability and the observed foreground frequency
    (NaN for empty bins).
    """
    if bins < 1:
        raise ValueError(f"bins must be ≥ 1, got {bins}")
    prob, true = _select(mask, np.asarray(probability, np.float64), np.asarray(target, bool))
    if prob.size and (prob.min() < 0 or prob.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1], got [{prob.min()}, {prob.max()}]")
    index = np.minimum((prob * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(index, weights=prob, minlength=bins) / counts
        frequency = np.bincount(index, weights=true.astype(np.float64), minlength=bins) / counts
    return counts, mean_prob, frequency


def expected_calibration_error(
    probability: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, bins: int = 15
) -> float:
    """Pixel ECE = Σ_k (n_k / N) · |mean p_k − frequency_k| over equal-width bins (default 15).

    Uses the foreground (vessel) probability against the binary target, as a reliability
    diagram of the vessel class does (Guo et al., ICML 2017, define ECE on the top-label
    confidence; for two classes both views are reported in the literature — this is the
    class-wise one that MONAI's ``CalibrationErrorMetric`` computes per class).
    """
    counts, mean_prob, frequency = calibration_bins(probability, target, mask, bins)
    total = counts.sum()
    if total == 0:
        raise ValueError("ECE is undefined on an empty selection of pixels")
    filled = counts > 0
    return float(np.sum(counts[filled] / total * np.abs(mean_prob[filled] - frequency[filled])))


def error_detection_auroc(
    uncertainty: np.ndarray, prediction: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """AUROC of ``uncertainty`` as a detector of misclassified pixels (prediction ≠ target).

    Raises ``ValueError`` when the selection holds no error or no correct pixel.
    """
    errors = np.asarray(prediction, bool) != np.asarray(target, bool)
    return roc_auc(uncertainty, errors, mask)
