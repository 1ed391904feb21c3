"""Synthetic chest radiographs: determinism, label/mask consistency and that findings show where their masks are."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from training.synth.chest import FINDINGS, ChestSample, generate_chest, synthetic_rng

SIZE = 128


def _only(name: str | None) -> dict[str, bool]:
    return {finding: finding == name for finding in FINDINGS}


def test_same_key_gives_identical_sample_and_other_keys_differ():
    a = generate_chest(SIZE, synthetic_rng(11, 0, 3))
    b = generate_chest(SIZE, synthetic_rng(11, 0, 3))
    c = generate_chest(SIZE, synthetic_rng(11, 0, 4))
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.labels == b.labels
    for name in FINDINGS:
        np.testing.assert_array_equal(a.masks[name], b.masks[name])
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 1.0


@pytest.mark.parametrize("index", range(6))
def test_labels_match_masks_and_masks_lie_inside_lungs_or_body(index):
    sample = generate_chest(SIZE, synthetic_rng(11, 7, index))
    assert set(sample.labels) == set(FINDINGS) == set(sample.masks)
    assert sample.lungs.any() and not (sample.lungs & ~sample.body).any()
    for name in FINDINGS:
        mask = sample.masks[name]
        assert mask.dtype == bool and mask.shape == sample.image.shape
        assert bool(mask.any()) == sample.labels[name], name
        container = sample.body if name == "cardiomegaly" else sample.lungs
        assert not (mask & ~container).any(), f"{name} mask leaves the {'body' if name == 'cardiomegaly' else 'lungs'}"
    assert sample.label_vector().tolist() == [float(sample.labels[n]) for n in FINDINGS]


@pytest.mark.parametrize("name", FINDINGS)
def test_each_finding_changes_the_image_where_its_mask_is(name):
    rng_key = (11, 1, 2)
    normal = generate_chest(SIZE, synthetic_rng(*rng_key), _only(None))
    ill = generate_chest(SIZE, synthetic_rng(*rng_key), _only(name))
    assert not any(normal.labels.values()) and ill.labels == _only(name)
    mask = ill.masks[name]
    assert mask.sum() >= 5
    diff = np.abs(ill.image.astype(float) - normal.image.astype(float))
    assert diff[mask].mean() > 6.0, f"{name} barely changes its own region"
    near = ndimage.binary_dilation(mask, iterations=3)
    assert diff[near].sum() / diff.sum() > 0.9, f"{name} changes the image away from its mask"


def test_cardiomegaly_widens_the_heart_beyond_half_the_thorax():
    sample = generate_chest(SIZE, synthetic_rng(11, 2, 0), {"cardiomegaly": True})
    heart_cols = np.nonzero(sample.masks["cardiomegaly"].any(axis=0))[0]
    lung_cols = np.nonzero(sample.lungs.any(axis=0))[0]
    ratio = (heart_cols.max() - heart_cols.min() + 1) / (lung_cols.max() - lung_cols.min() + 1)
    assert 0.5 < ratio < 0.75


def test_geometry_is_relative_to_the_image_side():
    small = generate_chest(96, synthetic_rng(11, 3, 1), {"pleural_effusion": True, "pneumothorax": True})
    large = generate_chest(192, synthetic_rng(11, 3, 1), {"pleural_effusion": True, "pneumothorax": True})
    for name in ("pleural_effusion", "pneumothorax"):
        assert small.masks[name].mean() == pytest.approx(large.masks[name].mean(), rel=0.25)
    assert small.lungs.mean() == pytest.approx(large.lungs.mean(), rel=0.05)


def test_unknown_finding_and_tiny_size_are_rejected():
    with pytest.raises(ValueError, match="unknown finding"):
        generate_chest(SIZE, 0, {"pneumonia": True})
    with pytest.raises(ValueError, match="at least 64"):
        generate_chest(32, 0)


def test_sample_is_a_chestsample_with_a_descriptive_name():
    sample = generate_chest(SIZE, 5, {"nodule": True, "pneumothorax": True})
    assert isinstance(sample, ChestSample)
    assert sample.name == "synthetic chest nodule,pneumothorax"
