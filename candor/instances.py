"""Nucleus instances from class probabilities, counts with an uncertainty, and per-nucleus confidence.

The nucleus network predicts three classes per pixel — background, nucleus *interior* and
nucleus *boundary* (:func:`encode_instances` is the training target). Touching nuclei are
split by a marker-controlled watershed (:func:`instances_from_probabilities`): markers
are the connected regions of confident interior, and they flood the foreground (everything
not confidently background) over the relief 1 − p(interior), so thin boundary bands
become the dividing lines.

Uncertainty follows MC dropout (Gal & Ghahramani, ICML 2016): each of the T stochastic
passes is post-processed on its own, giving T instance maps and T counts.

* :func:`count_statistics` — mean, sample standard deviation and a two-sided interval of
  the T counts. The interval is ``mean ± z·s·σ`` (z the normal quantile of the level, s a
  scale calibrated on held-out images, default 1), widened outward to integers. With T = 20
  an empirical 5th–95th percentile interval is set by the 2nd-lowest and 2nd-highest count
  and jumps with a single sample, and it cannot be rescaled when MC dropout is
  under-dispersed; the Gaussian form is smooth in T and takes a calibration factor.
* :func:`nucleus_confidence` — for each nucleus of the mean prediction, the fraction of the
  T sample instance maps holding a matching instance (IoU > 0.5) and the mean epistemic
  uncertainty (mutual information, nats) over its pixels.
* :func:`average_precision` — the Data Science Bowl 2018 per-image score at one IoU
  threshold, TP / (TP + FP + FN) with a match at IoU > t (Caicedo et al., Nat. Methods 2019),
  and :func:`dsb_score`, its mean over t = 0.5, 0.55, …, 0.95.

At IoU > 0.5 a matching is unique without any assignment step: two non-overlapping
instances cannot both cover more than half of a third one. All functions are pure NumPy /
scikit-image on one image; sizes are in pixels of the grid the probabilities are on (for
Candor: the network's working grid, see :func:`labels_to_source_grid`).

Use with a nucleus bundle (what ``training.nuclei.evaluate`` does)::

    post = bundle.metadata["postprocessing"]
    tensor, geometry = to_network_input(image, bundle.preprocessing)
    rows, cols = geometry.resized_shape
    probs = mc_sample(bundle.network, tensor, samples=20, seed=0)[..., :rows, :cols]
    result = analyse_instances(probs.numpy(), decompose(probs).epistemic, PostProcessing.from_metadata(post),
                               level=post["count_interval_level"], scale=post["count_interval_scale"])
    labels = labels_to_source_grid(result.labels, geometry.resized_shape, geometry.source_shape)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential, watershed

CLASS_BACKGROUND, CLASS_INTERIOR, CLASS_BOUNDARY = 0, 1, 2
#: DSB2018 IoU thresholds 0.5, 0.55, …, 0.95.
DSB_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
#: Keys of a bundle's ``postprocessing`` mapping that describe the model rather than the watershed.
BUNDLE_ONLY_KEYS = ("boundary_width", "count_interval_level", "count_interval_scale", "count_interval_calibrated",
                    "function", "units")


@dataclass(frozen=True)
class PostProcessing:
    """Parameters of :func:`instances_from_probabilities` (stored in the bundle's metadata)."""

    interior_threshold: float = 0.5
    """p(interior) above which a pixel can seed a marker."""
    foreground_threshold: float = 0.5
    """1 − p(background) above which a pixel belongs to some nucleus."""
    min_marker_area: int = 3
    """Markers smaller than this (pixels) are noise, not nuclei."""
    min_area: int = 12
    """Instances smaller than this (pixels) are dropped."""

    def __post_init__(self) -> None:
        for name in ("interior_threshold", "foreground_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)}")
        if self.min_marker_area < 1 or self.min_area < 1:
            raise ValueError(f"min_marker_area and min_area must be ≥ 1, got {self.min_marker_area}, {self.min_area}")

    @classmethod
    def from_metadata(cls, mapping: Mapping[str, Any]) -> PostProcessing:
        """Build from a bundle's ``postprocessing`` mapping; unknown keys are an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known - set(BUNDLE_ONLY_KEYS))
        if unknown:
            raise ValueError(f"unknown post-processing parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**{key: mapping[key] for key in known if key in mapping})

    def to_metadata(self) -> dict[str, Any]:
        return asdict(self)


def encode_instances(instances: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """Three-class target of an instance map: 0 background, 1 interior, 2 boundary (uint8).

    A nucleus pixel is *boundary* when another label (background or a different nucleus)
    lies within ``boundary_width`` pixels (chessboard distance), so every nucleus carries a
    band of that width along its outline and touching nuclei are separated by two bands.
    """
    if instances.ndim != 2:
        raise ValueError(f"expected an (H, W) instance map, got shape {instances.shape}")
    if boundary_width < 1:
        raise ValueError(f"boundary_width must be ≥ 1, got {boundary_width}")
    size = 2 * boundary_width + 1
    padded = np.pad(instances, boundary_width, mode="edge")
    low = ndimage.minimum_filter(padded, size=size)[boundary_width:-boundary_width, boundary_width:-boundary_width]
    high = ndimage.maximum_filter(padded, size=size)[boundary_width:-boundary_width, boundary_width:-boundary_width]
    classes = np.zeros(instances.shape, np.uint8)
    nucleus = instances > 0
    classes[nucleus] = CLASS_BOUNDARY
    classes[nucleus & (low == high)] = CLASS_INTERIOR
    return classes


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """``labels`` with every label of fewer than ``min_area`` pixels set to 0."""
    small = np.bincount(labels.ravel()) < min_area
    small[0] = False
    return np.where(small[labels], 0, labels)


def instances_from_probabilities(probabilities: np.ndarray, params: PostProcessing = PostProcessing()) -> np.ndarray:
    """Split the foreground of a (3, H, W) probability map into nucleus instances (int32, 0 = background).

    Markers: 4-connected regions of p(interior) > ``interior_threshold`` inside the
    foreground, at least ``min_marker_area`` pixels. The watershed floods the foreground
    (1 − p(background) > ``foreground_threshold``) from the markers over 1 − p(interior).
    A foreground region without any marker becomes one instance of its own (a nucleus the
    network saw only as boundary); instances below ``min_area`` pixels are dropped.
    """
    if probabilities.ndim != 3 or probabilities.shape[0] != 3:
        raise ValueError(f"expected (3, H, W) probabilities (background, interior, boundary), got {probabilities.shape}")
    prob = np.asarray(probabilities, np.float32)
    foreground = (1.0 - prob[CLASS_BACKGROUND]) > params.foreground_threshold
    seeds = (prob[CLASS_INTERIOR] > params.interior_threshold) & foreground
    markers = _drop_small(connected_components(seeds, connectivity=1), params.min_marker_area)
    labels = watershed(1.0 - prob[CLASS_INTERIOR], markers, mask=foreground, connectivity=1)
    orphans = connected_components(foreground & (labels == 0), connectivity=1)
    if orphans.max() > 0:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return relabel_sequential(_drop_small(labels, params.min_area))[0].astype(np.int32)


def count_instances(labels: np.ndarray) -> int:
    """Number of distinct non-zero labels."""
    values = np.unique(labels)
    return int(values.size - (1 if values.size and values[0] == 0 else 0))


@dataclass(frozen=True)
class CountEstimate:
    """Distribution of the nucleus count over T MC-dropout samples.

    ``mean`` and ``std`` (ddof = 1) are of the per-sample counts; [``low``, ``high``] is the
    integer interval at ``level`` (``mean ± z·scale·std`` widened outward); ``count_of_mean``
    is the count of the mean prediction's instances (what a viewer draws), when known.
    """

    mean: float
    std: float
    low: int
    high: int
    level: float
    scale: float
    per_sample: tuple[int, ...]
    count_of_mean: int | None = None

    def covers(self, count: int) -> bool:
        return self.low <= count <= self.high


def count_statistics(counts: Sequence[int], level: float = 0.9, scale: float = 1.0,
                     count_of_mean: int | None = None) -> CountEstimate:
    """Mean, standard deviation and ``level`` interval of per-sample counts (see the module notes).

    ``scale`` multiplies the spread (1 = raw MC-dropout spread; a value calibrated on
    held-out images is stored in the bundle's ``postprocessing.count_interval_scale``).
    """
    values = np.asarray(counts, np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"need at least 2 per-sample counts, got {values.size}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    mean, std = float(values.mean()), float(values.std(ddof=1))
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * scale * std
    # round() guards against 41.99999 → 41 from floating point before the outward rounding
    low = max(0, math.floor(round(mean - half, 9)))
    high = math.ceil(round(mean + half, 9))
    return CountEstimate(mean, std, low, high, level, scale, tuple(int(v) for v in counts), count_of_mean)


def sample_instances(sample_probabilities: np.ndarray, params: PostProcessing = PostProcessing()) -> list[np.ndarray]:
    """Instance maps of each of T sampled probability maps (T, 3, H, W)."""
    probs = np.asarray(sample_probabilities)
    if probs.ndim != 4:
        raise ValueError(f"expected (T, 3, H, W) sample probabilities, got shape {probs.shape}")
    return [instances_from_probabilities(sample, params) for sample in probs]


def count_distribution(sample_probabilities: np.ndarray, params: PostProcessing = PostProcessing(),
                       level: float = 0.9, scale: float = 1.0) -> CountEstimate:
    """Count the instances of every MC sample (T, 3, H, W) and summarise them (:func:`count_statistics`)."""
    probs = np.asarray(sample_probabilities, np.float32)
    counts = [count_instances(labels) for labels in sample_instances(probs, params)]
    mean_labels = instances_from_probabilities(probs.mean(axis=0), params)
    return count_statistics(counts, level, scale, count_instances(mean_labels))


def iou_table(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every overlapping (predicted, true) instance pair.

    Returns the predicted labels, the true labels and the IoUs of the pairs with a
    non-empty intersection (three 1-D arrays of one length).
    """
    if prediction.shape != truth.shape:
        raise ValueError(f"label maps differ in shape: {prediction.shape} vs {truth.shape}")
    pred, true = np.asarray(prediction, np.int64).ravel(), np.asarray(truth, np.int64).ravel()
    area_pred = np.bincount(pred)
    area_true = np.bincount(true)
    both = (pred > 0) & (true > 0)
    keys, intersection = np.unique(pred[both] * (int(true.max()) + 1) + true[both], return_counts=True)
    pred_ids, true_ids = keys // (int(true.max()) + 1), keys % (int(true.max()) + 1)
    union = area_pred[pred_ids] + area_true[true_ids] - intersection
    return pred_ids, true_ids, intersection / union


def match_instances(prediction: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one (predicted, true, IoU) matches with IoU > ``iou`` (``iou`` ≥ 0.5 keeps them unique)."""
    if iou < 0.5:
        raise ValueError(f"matching by threshold alone is one-to-one only for IoU ≥ 0.5, got {iou}")
    pred_ids, true_ids, ious = iou_table(prediction, truth)
    keep = ious > iou
    return [(int(p), int(t), float(v)) for p, t, v in zip(pred_ids[keep], true_ids[keep], ious[keep])]


@dataclass(frozen=True)
class DetectionCounts:
    """True positives, false positives and false negatives at one IoU threshold."""

    tp: int
    fp: int
    fn: int

    @property
    def average_precision(self) -> float:
        """TP / (TP + FP + FN), the DSB2018 per-threshold score; 1 when both maps are empty."""
        total = self.tp + self.fp + self.fn
        return 1.0 if total == 0 else self.tp / total

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); 1 when both maps are empty."""
        total = 2 * self.tp + self.fp + self.fn
        return 1.0 if total == 0 else 2 * self.tp / total


def detection_counts(prediction: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> DetectionCounts:
    """TP/FP/FN of predicted vs true instances, a match being IoU > ``iou``."""
    tp = len(match_instances(prediction, truth, iou))
    return DetectionCounts(tp, count_instances(prediction) - tp, count_instances(truth) - tp)


def average_precision(prediction: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> float:
    """DSB2018 per-image score at one threshold: TP / (TP + FP + FN), match at IoU > ``iou``.

    This is the Data Science Bowl's "average precision" (Caicedo et al., Nat. Methods 2019),
    not the area under a precision-recall curve; 1.0 when neither map holds an instance.
    """
    return detection_counts(prediction, truth, iou).average_precision


def dsb_score(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean of :func:`average_precision` over IoU thresholds 0.5, 0.55, …, 0.95 (the DSB2018 image score)."""
    _, _, ious = iou_table(prediction, truth)
    n_pred, n_true = count_instances(prediction), count_instances(truth)
    scores = []
    for threshold in DSB_THRESHOLDS:
        tp = int((ious > threshold).sum())
        total = n_pred + n_true - tp
        scores.append(1.0 if total == 0 else tp / total)
    return float(np.mean(scores))


@dataclass(frozen=True)
class NucleusStats:
    """One nucleus of the mean prediction and its uncertainty.

    ``centroid`` is (row, column); ``bbox`` is (row_start, col_start, row_stop, col_stop),
    stop exclusive; ``confidence`` the fraction of MC samples with a matching instance
    (IoU > 0.5); ``mean_epistemic`` the mean mutual information (nats) over its pixels.
    """

    label: int
    area: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    confidence: float
    mean_epistemic: float


def nucleus_confidence(mean_labels: np.ndarray, sample_labels: Sequence[np.ndarray],
                       epistemic: np.ndarray, iou: float = 0.5) -> list[NucleusStats]:
    """Detection confidence and mean epistemic uncertainty of every nucleus of ``mean_labels``.

    Detection confidence = (number of sample instance maps holding an instance with
    IoU > ``iou`` to the nucleus) / T: the MC-dropout frequency with which the network
    would draw this nucleus, at the same criterion as the AP metric.
    """
    if not sample_labels:
        raise ValueError("need at least one sample instance map")
    if epistemic.shape != mean_labels.shape:
        raise ValueError(f"epistemic map {epistemic.shape} differs from the label map {mean_labels.shape}")
    labels = np.asarray(mean_labels, np.int64)
    top = int(labels.max()) if labels.size else 0
    hits = np.zeros(top + 1, np.int64)
    for sample in sample_labels:
        for pred, _, _ in match_instances(labels, sample, iou):
            hits[pred] += 1
    flat = labels.ravel()
    area = np.bincount(flat, minlength=top + 1)
    rows, cols = np.indices(labels.shape)
    row_sum = np.bincount(flat, weights=rows.ravel(), minlength=top + 1)
    col_sum = np.bincount(flat, weights=cols.ravel(), minlength=top + 1)
    mi_sum = np.bincount(flat, weights=np.asarray(epistemic, np.float64).ravel(), minlength=top + 1)
    boxes = ndimage.find_objects(labels.astype(np.int32))
    stats = []
    for value in range(1, top + 1):
        if area[value] == 0 or boxes[value - 1] is None:
            continue
        box = boxes[value - 1]
        stats.append(NucleusStats(
            label=value,
            area=int(area[value]),
            centroid=(float(row_sum[value] / area[value]), float(col_sum[value] / area[value])),
            bbox=(box[0].start, box[1].start, box[0].stop, box[1].stop),
            confidence=float(hits[value] / len(sample_labels)),
            mean_epistemic=float(mi_sum[value] / area[value]),
        ))
    return stats


@dataclass(frozen=True)
class InstanceAnalysis:
    """Everything the app reports for one image: instances, count distribution, per-nucleus stats."""

    labels: np.ndarray
    count: CountEstimate
    nuclei: list[NucleusStats]


def analyse_instances(sample_probabilities: np.ndarray, epistemic: np.ndarray,
                      params: PostProcessing = PostProcessing(), level: float = 0.9,
                      scale: float = 1.0) -> InstanceAnalysis:
    """Post-process T MC samples (T, 3, H, W) once and derive instances, count and per-nucleus stats."""
    probs = np.asarray(sample_probabilities, np.float32)
    samples = sample_instances(probs, params)
    labels = instances_from_probabilities(probs.mean(axis=0), params)
    count = count_statistics([count_instances(s) for s in samples], level, scale, count_instances(labels))
    return InstanceAnalysis(labels, count, nucleus_confidence(labels, samples, epistemic))


def labels_to_source_grid(labels: np.ndarray, resized_shape: tuple[int, int],
                          source_shape: tuple[int, int]) -> np.ndarray:
    """Crop the padding off a working-grid label map and resize it to the source grid (nearest neighbour).

    ``resized_shape`` and ``source_shape`` come from :class:`candor.preprocess.Geometry`.
    Nearest-neighbour keeps labels intact; a nucleus a few pixels wide may vanish when
    the source is smaller than the working grid, so counts are taken on the working grid.
    """
    rows, cols = resized_shape
    cropped = np.asarray(labels)[:rows, :cols]
    row_index = np.minimum(((np.arange(source_shape[0]) + 0.5) * rows / source_shape[0]).astype(np.int64), rows - 1)
    col_index = np.minimum(((np.arange(source_shape[1]) + 0.5) * cols / source_shape[1]).astype(np.int64), cols - 1)
    return cropped[row_index[:, None], col_index[None, :]].astype(np.int32)
