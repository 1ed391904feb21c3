"""Synthetic fundus generator: determinism, format, anatomy, vessel statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import skeletonize

from training.synth.fundus import EVAL_STREAM, TRAIN_STREAM, FundusSample, generate_fundus, synthetic_rng


@pytest.fixture(scope="module")
def right_eye() -> FundusSample:
    return generate_fundus(512, 3, "R")


@pytest.fixture(scope="module")
def left_eye() -> FundusSample:
    return generate_fundus(384, np.random.default_rng(4), "L")


def test_same_seed_same_image_other_seed_other_image():
    first, again, other = generate_fundus(64, 7), generate_fundus(64, 7), generate_fundus(64, 8)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.vessels, again.vessels)
    assert not np.array_equal(first.image, other.image)


def test_shapes_and_dtypes(right_eye: FundusSample):
    assert right_eye.image.shape == (512, 512, 3) and right_eye.image.dtype == np.uint8
    assert right_eye.vessels.shape == right_eye.fov.shape == (512, 512)
    assert right_eye.vessels.dtype == bool and right_eye.fov.dtype == bool


def test_fov_is_a_centred_disc_with_black_surround(right_eye: FundusSample):
    radius = right_eye.fov_radius
    assert 0.44 * 512 < radius < 0.48 * 512
    assert right_eye.fov.sum() == pytest.approx(np.pi * radius**2, rel=0.01)
    rows, cols = np.nonzero(right_eye.fov)
    assert rows.mean() == pytest.approx(256, abs=8) and cols.mean() == pytest.approx(256, abs=8)
    outside = ndimage.binary_dilation(right_eye.fov, iterations=2) == 0
    assert right_eye.image[outside].max() <= 3
    assert right_eye.image[right_eye.fov].mean() > 40


def test_vessels_only_inside_fov_with_drive_like_fraction(right_eye: FundusSample, left_eye: FundusSample):
    for sample in (right_eye, left_eye):
        assert not (sample.vessels & ~sample.fov).any()
        assert 0.08 <= sample.vessels[sample.fov].mean() <= 0.18  # DRIVE manual: ~0.12 of FOV pixels


def test_reddish_fundus_and_vessels_darker_than_background(right_eye: FundusSample):
    inside = right_eye.image[right_eye.fov & ~right_eye.vessels].astype(float).mean(axis=0)
    assert inside[0] > inside[1] > inside[2]  # red > green > blue
    vessel_green = right_eye.image[right_eye.vessels, 1].astype(float).mean()
    assert vessel_green < 0.85 * inside[1]


def _luminance(sample: FundusSample, centre: tuple[float, float], radius: int = 4) -> float:
    row, col = int(round(centre[0])), int(round(centre[1]))
    patch = sample.image[row - radius:row + radius + 1, col - radius:col + radius + 1].astype(float)
    return float(patch.mean())


@pytest.mark.parametrize("fixture, disc_right", [("right_eye", True), ("left_eye", False)])
def test_disc_is_bright_and_nasal_fovea_dark_and_temporal(fixture: str, disc_right: bool, request):
    sample = request.getfixturevalue(fixture)
    assert (sample.disc_center[1] > sample.fovea_center[1]) == disc_right
    distance = np.hypot(sample.disc_center[0] - sample.fovea_center[0], sample.disc_center[1] - sample.fovea_center[1])
    assert 0.5 < distance / sample.fov_radius < 0.8  # ~2.5 disc diameters
    assert _luminance(sample, sample.disc_center) > 1.3 * _luminance(sample, sample.fovea_center)


def test_vessels_taper_away_from_the_disc(right_eye: FundusSample):
    width = 2 * ndimage.distance_transform_edt(right_eye.vessels)
    rows, cols = np.nonzero(skeletonize(right_eye.vessels))
    distance = np.hypot(rows - right_eye.disc_center[0], cols - right_eye.disc_center[1]) / right_eye.fov_radius
    near = width[rows, cols][(distance > 0.15) & (distance < 0.35)]
    far = width[rows, cols][distance > 0.7]
    assert near.size > 100 and far.size > 100
    assert near.mean() > 1.15 * far.mean()
    assert np.percentile(near, 90) > np.percentile(far, 90)
    assert width.max() >= 5  # main vessels ≈ 0.03 R ≈ 7 px at 512 px


def test_training_and_evaluation_streams_differ():
    train = synthetic_rng(TRAIN_STREAM, 0, 0).integers(1 << 62, size=4)
    held_out = synthetic_rng(EVAL_STREAM, 0, 0).integers(1 << 62, size=4)
    assert not np.array_equal(train, held_out)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="laterality"):
        generate_fundus(128, 0, "X")
    with pytest.raises(ValueError, match="size"):
        generate_fundus(16, 0)
