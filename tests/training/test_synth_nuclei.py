"""The synthetic fluorescence-nucleus generator: determinism, exact counts, valid instances, touching nuclei."""

import numpy as np
import pytest
from scipy import ndimage

from training.synth.nuclei import MIN_VISIBLE_AREA, generate_nuclei, synthetic_rng


@pytest.fixture(scope="module")
def samples():
    return [generate_nuclei(128, synthetic_rng(11, 0, k)) for k in range(3)]


def test_same_seed_same_image_and_labels():
    a, b = generate_nuclei(96, 7), generate_nuclei(96, 7)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.instances, b.instances)
    assert a.count == b.count
    c = generate_nuclei(96, 8)
    assert not np.array_equal(a.image, c.image)


def test_types_and_shapes(samples):
    for sample in samples:
        assert sample.image.dtype == np.uint8 and sample.image.shape == (128, 128)
        assert sample.instances.dtype == np.int32 and sample.instances.shape == (128, 128)


def test_count_equals_number_of_labels_numbered_one_to_count(samples):
    for sample in samples:
        labels = np.unique(sample.instances)
        assert sample.count > 0
        assert labels.tolist() == list(range(sample.count + 1))


def test_every_instance_is_one_connected_region_of_minimum_size(samples):
    for sample in samples:
        for label in range(1, sample.count + 1):
            mask = sample.instances == label
            assert mask.sum() >= MIN_VISIBLE_AREA
            assert ndimage.label(mask)[1] == 1


def test_touching_nuclei_exist():
    sample = generate_nuclei(128, synthetic_rng(11, 0, 1), density=0.4)
    labels = sample.instances
    right = (labels[:, :-1] > 0) & (labels[:, 1:] > 0) & (labels[:, :-1] != labels[:, 1:])
    down = (labels[:-1] > 0) & (labels[1:] > 0) & (labels[:-1] != labels[1:])
    pairs = {tuple(sorted(p)) for p in zip(labels[:, :-1][right], labels[:, 1:][right])}
    pairs |= {tuple(sorted(p)) for p in zip(labels[:-1][down], labels[1:][down])}
    assert len(pairs) >= 3


def test_nuclei_are_brighter_than_background(samples):
    for sample in samples:
        inside = sample.image[sample.instances > 0].mean()
        outside = sample.image[sample.instances == 0].mean()
        assert inside > outside + 10


def test_density_controls_how_many_nuclei():
    sparse = generate_nuclei(128, 3, density=0.08)
    dense = generate_nuclei(128, 3, density=0.4)
    assert dense.count > 2 * sparse.count
    assert (dense.instances > 0).mean() > 0.3 > (sparse.instances > 0).mean()


@pytest.mark.parametrize("kwargs", [{"size": 16}, {"density": 0.0}, {"density": 0.9}])
def test_invalid_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        generate_nuclei(**{"size": 64, **kwargs})
