"""Instances by watershed, count statistics, per-nucleus detection confidence and DSB-style AP."""

import math

import numpy as np
import pytest

from candor.instances import (
    CLASS_BOUNDARY,
    CLASS_INTERIOR,
    PostProcessing,
    analyse_instances,
    average_precision,
    count_distribution,
    count_instances,
    count_statistics,
    detection_counts,
    dsb_score,
    encode_instances,
    instances_from_probabilities,
    iou_table,
    labels_to_source_grid,
    nucleus_confidence,
)


def _discs(shape: tuple[int, int], centres: list[tuple[int, int]], radius: float) -> np.ndarray:
    """Instance map of discs; a later disc takes the pixels it shares with an earlier one."""
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for index, (r, c) in enumerate(centres, start=1):
        labels[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = index
    return labels


def _probabilities(labels: np.ndarray, confident: float = 0.9) -> np.ndarray:
    """(3, H, W) probabilities that favour the classes of ``encode_instances(labels)``."""
    classes = encode_instances(labels)
    rest = (1.0 - confident) / 2
    probs = np.full((3, *labels.shape), rest, np.float32)
    for k in range(3):
        probs[k][classes == k] = confident
    return probs


def test_encoding_separates_touching_nuclei_by_boundary_bands():
    labels = np.zeros((6, 8), np.int32)
    labels[1:5, 1:4] = 1
    labels[1:5, 4:7] = 2
    classes = encode_instances(labels)
    assert classes[2, 3] == CLASS_BOUNDARY and classes[2, 4] == CLASS_BOUNDARY  # the shared edge
    assert classes[2, 2] == CLASS_INTERIOR and classes[2, 5] == CLASS_INTERIOR
    assert (classes[labels == 0] == 0).all()


def test_watershed_splits_two_touching_discs():
    truth = _discs((40, 60), [(20, 20), (20, 37)], 9.0)  # centres 17 px apart: the discs share an edge
    assert count_instances(truth) == 2 and ((truth[:, :-1] == 1) & (truth[:, 1:] == 2)).any()
    merged_foreground = truth > 0
    labels = instances_from_probabilities(_probabilities(truth), PostProcessing(min_area=5))
    assert count_instances(labels) == 2
    assert (labels > 0).sum() == merged_foreground.sum()
    assert average_precision(labels, truth) == 1.0


def test_foreground_without_marker_is_kept_and_small_instances_dropped():
    probs = np.zeros((3, 20, 20), np.float32)
    probs[0] = 1.0
    probs[:, 2:8, 2:8] = np.array([0.1, 0.1, 0.8])[:, None, None]  # boundary only: no marker
    probs[:, 15:17, 15:17] = np.array([0.0, 1.0, 0.0])[:, None, None]  # 4 px: below min_area
    labels = instances_from_probabilities(probs, PostProcessing(min_marker_area=1, min_area=10))
    assert count_instances(labels) == 1
    assert (labels[2:8, 2:8] == 1).all() and labels[15, 15] == 0


def test_count_statistics_on_hand_made_counts():
    estimate = count_statistics([10, 12, 11, 13], level=0.9)
    assert estimate.mean == pytest.approx(11.5)
    assert estimate.std == pytest.approx(math.sqrt(5 / 3))
    half = 1.6448536 * math.sqrt(5 / 3)  # 2.1236
    assert (estimate.low, estimate.high) == (math.floor(11.5 - half), math.ceil(11.5 + half)) == (9, 14)
    wider = count_statistics([10, 12, 11, 13], level=0.9, scale=2.0)
    assert (wider.low, wider.high) == (7, 16)
    assert estimate.covers(9) and not estimate.covers(15)


def test_count_statistics_of_agreeing_samples_is_a_point():
    estimate = count_statistics([7, 7, 7], level=0.9, scale=5.0)
    assert (estimate.mean, estimate.std, estimate.low, estimate.high) == (7.0, 0.0, 7, 7)


@pytest.mark.parametrize("counts, level, scale", [([3], 0.9, 1.0), ([1, 2], 1.0, 1.0), ([1, 2], 0.9, 0.0)])
def test_count_statistics_rejects_bad_arguments(counts, level, scale):
    with pytest.raises(ValueError):
        count_statistics(counts, level, scale)


def test_count_distribution_counts_each_sample():
    centres = [(10, 10), (10, 30), (30, 10), (30, 30)]
    stack = np.stack([_probabilities(_discs((40, 40), centres[:n], 5.0)) for n in (2, 3, 3, 4)])
    estimate = count_distribution(stack, PostProcessing(min_area=5))
    assert estimate.per_sample == (2, 3, 3, 4)
    assert estimate.mean == pytest.approx(3.0)
    assert estimate.std == pytest.approx(math.sqrt(2 / 3))
    assert estimate.count_of_mean is not None and 2 <= estimate.count_of_mean <= 4


def test_detection_confidence_three_of_four_samples():
    both = _discs((30, 50), [(15, 12), (15, 36)], 6.0)
    only_first = np.where(both == 1, 1, 0).astype(np.int32)
    shifted = _discs((30, 50), [(15, 12), (15, 41)], 6.0)  # second disc moved 5 px: IoU < 0.5
    samples = [both, both, both, only_first]
    epistemic = np.where(both == 2, 0.3, 0.1).astype(np.float32)
    stats = nucleus_confidence(both, samples, epistemic)
    assert [s.label for s in stats] == [1, 2]
    assert stats[0].confidence == 1.0 and stats[1].confidence == 0.75
    assert stats[0].mean_epistemic == pytest.approx(0.1) and stats[1].mean_epistemic == pytest.approx(0.3)
    assert stats[1].centroid == pytest.approx((15.0, 36.0))
    assert stats[1].area == int((both == 2).sum())
    r0, c0, r1, c1 = stats[1].bbox
    assert (r0, c0, r1, c1) == (9, 30, 22, 43)
    assert nucleus_confidence(both, [both, shifted], epistemic)[1].confidence == 0.5


def test_analyse_instances_puts_it_together():
    truth = _discs((40, 60), [(20, 20), (20, 40)], 8.0)
    stack = np.stack([_probabilities(truth)] * 3)
    analysis = analyse_instances(stack, np.zeros((40, 60), np.float32), PostProcessing(min_area=5))
    assert analysis.count.per_sample == (2, 2, 2) and analysis.count.count_of_mean == 2
    assert [n.confidence for n in analysis.nuclei] == [1.0, 1.0]


def test_iou_table_on_hand_made_labels():
    truth = np.zeros((4, 8), np.int32)
    truth[:, 0:4] = 1  # 16 px
    prediction = np.zeros((4, 8), np.int32)
    prediction[:, 1:5] = 3  # 16 px, 12 shared with truth 1
    pred_ids, true_ids, ious = iou_table(prediction, truth)
    assert pred_ids.tolist() == [3] and true_ids.tolist() == [1]
    assert ious[0] == pytest.approx(12 / 20)


def test_average_precision_dsb_definition():
    truth = np.zeros((20, 40), np.int32)
    truth[2:8, 2:8], truth[2:8, 12:18], truth[12:18, 2:8] = 1, 2, 3
    prediction = np.zeros_like(truth)
    prediction[2:8, 2:8] = 5  # exact match
    prediction[2:8, 12:17] = 6  # IoU 30/36 = 0.83: match
    prediction[12:18, 5:11] = 7  # IoU 18/54 = 0.33 with truth 3: no match → FP, truth 3 FN
    prediction[14:18, 30:36] = 8  # nothing there: FP
    counts = detection_counts(prediction, truth, 0.5)
    assert (counts.tp, counts.fp, counts.fn) == (2, 2, 1)
    assert average_precision(prediction, truth, 0.5) == pytest.approx(2 / 5)
    assert counts.f1 == pytest.approx(4 / 7)
    # at IoU > 0.85 only the exact match survives: 1 / (1 + 3 + 2)
    assert average_precision(prediction, truth, 0.85) == pytest.approx(1 / 6)
    assert dsb_score(truth, truth) == 1.0
    empty = np.zeros_like(truth)
    assert average_precision(empty, empty) == 1.0 and average_precision(empty, truth) == 0.0


def test_postprocessing_from_metadata_rejects_unknown_keys():
    params = PostProcessing.from_metadata({"interior_threshold": 0.6, "min_area": 20, "count_interval_scale": 2.0})
    assert params.interior_threshold == 0.6 and params.min_area == 20
    with pytest.raises(ValueError, match="interior_treshold"):
        PostProcessing.from_metadata({"interior_treshold": 0.6})
    with pytest.raises(ValueError):
        PostProcessing(interior_threshold=1.5)


def test_labels_to_source_grid_crops_padding_and_scales():
    labels = np.zeros((16, 16), np.int32)
    labels[0:4, 0:6] = 1
    labels[10:12, :] = 9  # padding rows below the resized image
    source = labels_to_source_grid(labels, resized_shape=(8, 12), source_shape=(16, 24))
    assert source.shape == (16, 24)
    assert set(np.unique(source)) == {0, 1}
    assert (source[0:8, 0:12] == 1).all() and source[8:, :].max() == 0
