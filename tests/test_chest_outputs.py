"""The classification report: per-finding figures and regions mapped to the source grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from candor.chest_outputs import finding_results, findings_report, to_source_box
from candor.bundle import load_bundle
from candor.dicom.synthetic_sources import build_source
from candor.inference import classification_samples
from candor.preprocess import Geometry
from candor.records import DecodedImage, ExplainedImage, InferredImage
from candor.tasks import CHEST_FINDINGS
from candor.uncertainty import decompose
from studies import tiny_chest_bundle


def test_a_working_grid_box_scales_to_source_pixel_edges():
    geometry = Geometry(source_shape=(400, 300), resized_shape=(64, 48), padded_shape=(64, 48))
    assert to_source_box((0, 0, 64, 48), geometry) == (0.0, 0.0, 300.0, 400.0)
    assert to_source_box((16, 12, 32, 24), geometry) == pytest.approx((75.0, 100.0, 150.0, 200.0))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(tiny_chest_bundle(tmp_path_factory.mktemp("models")))


def test_classification_samples_are_two_class_distributions_per_finding(bundle):
    image = torch.rand(1, 1, 64, 64)
    samples = classification_samples(bundle.network, image, samples=5, seed=3)
    assert samples.shape == (5, 2, 4)
    assert torch.allclose(samples.sum(dim=1), torch.ones(5, 4))
    maps = decompose(samples)
    assert maps.epistemic.shape == (4,) and (maps.epistemic >= 0).all()
    assert (maps.total <= np.log(2) + 1e-6).all()
    with torch.no_grad():
        bundle.network.eval()
        deterministic = torch.sigmoid(bundle.network(image))[0].numpy()
    assert np.abs(maps.mean_probability[1] - deterministic).max() < 0.2  # MC mean near the eval-mode output


def test_finding_results_follow_the_model_labels_and_report_every_finding(bundle):
    source = build_source("dx_mono2", shape=(128, 96))
    del source.PixelData
    decoded = DecodedImage(task=CHEST_FINDINGS, path=Path("dx.dcm"), source=source,
                           image=np.zeros((128, 96), np.uint8))
    foreground = torch.tensor([[[0.9, 0.2, 0.5, 0.1]], [[0.7, 0.4, 0.5, 0.1]]])  # (T=2, 1, F=4)
    maps = decompose(torch.cat([1 - foreground, foreground], dim=1))
    geometry = Geometry(source_shape=(128, 96), resized_shape=(64, 48), padded_shape=(64, 48))
    inferred = InferredImage(decoded=decoded, bundle=bundle, geometry=geometry, network_input=torch.zeros(1, 1, 64, 48),
                             maps=maps, seed=0)
    explained = ExplainedImage(inferred=inferred, maps=[], regions={"nodule": (0, 0, 32, 24)})
    results = {r.label: r for r in finding_results(explained)}
    assert list(results) == ["nodule", "pleural_effusion", "cardiomegaly", "pneumothorax"]
    assert results["nodule"].probability == pytest.approx(0.8)
    assert results["nodule"].std == pytest.approx(0.1)
    assert results["cardiomegaly"].std == pytest.approx(0.0, abs=1e-7)
    assert results["cardiomegaly"].aleatoric == pytest.approx(np.log(2), abs=1e-6)
    assert results["nodule"].box == pytest.approx((0.0, 0.0, 48.0, 64.0))
    assert results["pneumothorax"].box is None
    sr = findings_report(explained).dataset
    assert sr.SeriesNumber == 904 and sr.StudyInstanceUID == source.StudyInstanceUID
