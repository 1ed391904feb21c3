"""Image-level figures inside the field of view."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom import Dataset

from candor.bundle import Preprocessing
from candor.preprocess import to_network_input
from candor.records import DecodedImage, InferredImage
from candor.summaries import estimate_field_of_view, summarise_segmentation
from candor.tasks import FUNDUS_VESSELS
from candor.uncertainty import decompose


def _disc(size: int, radius: float) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < radius**2


def test_field_of_view_is_the_bright_disc():
    image = np.zeros((64, 64, 3), np.uint8)
    disc = _disc(64, 25)
    image[disc] = (180, 80, 40)
    image[30:34, 30:34] = 0  # a dark vessel inside must not punch a hole
    fov = estimate_field_of_view(image)
    assert (fov ^ disc).sum() < 0.05 * disc.sum()
    assert fov[31, 31]


def test_summary_counts_foreground_inside_the_field_of_view_only():
    size = 64
    image = np.zeros((size, size, 3), np.uint8)
    disc = _disc(size, 25)
    image[disc] = (180, 80, 40)
    _, geometry = to_network_input(image, Preprocessing(working_size=size))
    foreground = np.zeros((size, size), np.float32)
    foreground[:, :32] = 1.0  # left half "vessel", also outside the disc
    samples = torch.from_numpy(np.stack([1 - foreground, foreground]))[None].repeat(3, 1, 1, 1)
    inferred = InferredImage(
        decoded=DecodedImage(task=FUNDUS_VESSELS, path=Path("x.dcm"), source=Dataset(), image=image),
        bundle=None, geometry=geometry, network_input=torch.zeros(1, 3, size, size), maps=decompose(samples), seed=0)
    summary = summarise_segmentation(inferred, threshold=0.5)
    fov = estimate_field_of_view(image)
    assert summary.foreground_fraction == pytest.approx(fov[:, :32].sum() / fov.sum(), abs=1e-6)
    assert summary.mean_epistemic == pytest.approx(0.0, abs=1e-6)
    x0, y0, x1, y1 = summary.field_of_view_box
    assert 4 <= x0 <= 9 and 4 <= y0 <= 9 and 55 <= x1 <= 60 and 55 <= y1 <= 60
