"""Pixel metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import calibration_bins, dice, error_detection_auroc, expected_calibration_error, roc_auc


def test_dice_by_hand_and_inside_mask():
    prediction = np.array([1, 1, 0, 0], bool)
    target = np.array([1, 0, 1, 0], bool)
    assert dice(prediction, target) == pytest.approx(0.5)  # 2·1 / (2 + 2)
    mask = np.array([1, 1, 0, 1], bool)  # drop the missed vessel pixel
    assert dice(prediction, target, mask) == pytest.approx(2 / 3)  # 2·1 / (2 + 1)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_roc_auc_by_hand():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.75)
    # ties count one half: pairs (0.5>0.2)=1, (0.5=0.5)=½, (0.9>0.2)=1, (0.9>0.5)=1 → 3.5 / 4
    assert roc_auc(np.array([0.2, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.875)
    assert roc_auc(np.full(4, 0.3), np.array([0, 1, 0, 1], bool)) == pytest.approx(0.5)


def test_roc_auc_matches_pairwise_definition_with_many_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 300).astype(float)
    labels = rng.random(300) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert roc_auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)


def test_roc_auc_respects_mask_and_rejects_one_class():
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    labels = np.array([0, 1, 1, 0], bool)
    # positives {0.1, 0.8}, negatives {0.9, 0.2}: only 0.8 > 0.2 of 4 pairs
    assert roc_auc(scores, labels) == pytest.approx(0.25)
    # masking out the 0.9 negative leaves 1 of 2 pairs ordered
    assert roc_auc(scores, labels, np.array([0, 1, 1, 1], bool)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="undefined"):
        roc_auc(scores, np.zeros(4, bool))


def test_ece_by_hand():
    probability = np.array([0.1, 0.1, 0.9, 0.9])
    target = np.array([0, 1, 1, 1], bool)
    # bin [0.1, 0.2): mean 0.1, frequency 0.5, weight ½; bin [0.9, 1.0]: mean 0.9, frequency 1, weight ½
    assert expected_calibration_error(probability, target, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([1, 0], bool)) == pytest.approx(0.0)
    counts, mean_prob, frequency = calibration_bins(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1], bool))
    assert counts.size == 15 and counts[0] == 1 and counts[-1] == 2  # p = 1 falls in the last bin
    assert np.isnan(mean_prob[1]) and frequency[-1] == 1.0
    mask = np.array([1, 0, 1, 1], bool)
    # kept: p 0.1 (no vessel) → |0.1 − 0| · ⅓; p 0.9 twice (vessels) → |0.9 − 1| · ⅔
    assert expected_calibration_error(probability, target, mask, bins=10) == pytest.approx(1 / 3 * 0.1 + 2 / 3 * 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1.5]), np.array([True]))


def test_error_detection_auroc():
    prediction = np.array([1, 0, 1, 0], bool)
    target = np.array([1, 1, 1, 0], bool)  # the only error is pixel 1
    assert error_detection_auroc(np.array([0.1, 0.9, 0.2, 0.3]), prediction, target) == pytest.approx(1.0)
    assert error_detection_auroc(np.array([0.5, 0.0, 0.2, 0.3]), prediction, target) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        error_detection_auroc(np.ones(4), target, target)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="mask"):
        dice(np.zeros(3, bool), np.zeros(3, bool), np.ones(2, bool))
