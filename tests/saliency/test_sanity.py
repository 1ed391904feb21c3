"""Model-parameter randomisation test (Adebayo et al. 2018) on a model with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from candor.saliency import ClassTarget, SaliencyConfig, randomisable_layers, randomisation_test, rank_correlation

CONFIG = SaliencyConfig(ig_steps=8, smoothgrad_samples=4, ig_relative_delta_warning=1.0)


@pytest.fixture
def looks_top_left(classifier: nn.Module) -> nn.Module:
    """The tiny classifier with a head that reads only the top-left 3×3 of each feature map."""
    with torch.no_grad():
        weights = classifier.head.weight.view(3, 4, 8, 8)
        weights.zero_()
        weights[:, :, :3, :3] = 1.0
    return classifier


def test_rank_correlation() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 6, 6))
    np.testing.assert_allclose(rank_correlation(a, a), [1.0, 1.0])
    np.testing.assert_allclose(rank_correlation(a, -a), [1.0, 1.0])  # on |maps|
    np.testing.assert_allclose(rank_correlation(a, 1.0 / a), [-1.0, -1.0])
    flat = rank_correlation(a, np.stack([a[0], np.zeros((6, 6))]))
    assert flat[0] == pytest.approx(1.0) and np.isnan(flat[1])
    with pytest.raises(ValueError):
        rank_correlation(a, a[:1])


def test_cascading_randomisation_passes_gradient_methods(looks_top_left: nn.Module, images: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in looks_top_left.state_dict().items()}
    results = randomisation_test(
        looks_top_left, images, ClassTarget(0), ["gradient", "integrated_gradients"], CONFIG
    )
    assert randomisable_layers(looks_top_left) == ["head", "conv2", "conv1"]
    for method, result in results.items():
        assert [step.layer for step in result.steps] == ["head", "conv2", "conv1"]
        assert result.verdict == "model-sensitive" and result.passed, method
        assert result.statistic == result.steps[-1].correlation < 0.5
        assert len(result.steps[-1].per_image) == 2
    after = looks_top_left.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the trained model is untouched


def test_independent_randomisation_shows_which_layer_matters(looks_top_left: nn.Module, images: torch.Tensor) -> None:
    result = randomisation_test(looks_top_left, images, ClassTarget(0), ["gradient"], CONFIG, mode="independent")[
        "gradient"
    ]
    by_layer = {step.layer: step.correlation for step in result.steps}
    assert by_layer["head"] < 0.5 < min(by_layer["conv1"], by_layer["conv2"])
    assert result.statistic == pytest.approx(np.mean(list(by_layer.values())))


class _WithUnusedHead(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.unused = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_randomising_what_the_output_ignores_fails_the_test(looks_top_left: nn.Module, images: torch.Tensor) -> None:
    """Negative control: the maps cannot change, so the method is labelled not model-sensitive."""
    model = _WithUnusedHead(looks_top_left)
    result = randomisation_test(model, images, ClassTarget(0), ["gradient"], CONFIG, layers=["unused"])["gradient"]
    assert result.statistic == pytest.approx(1.0)
    assert result.verdict == "not model-sensitive" and not result.passed


def test_invalid_arguments(looks_top_left: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="mode"):
        randomisation_test(looks_top_left, images, ClassTarget(0), ["gradient"], mode="random")
    with pytest.raises(ValueError, match="threshold"):
        randomisation_test(looks_top_left, images, ClassTarget(0), ["gradient"], threshold=2.0)
    with pytest.raises(ValueError, match="unknown saliency method"):
        randomisation_test(looks_top_left, images, ClassTarget(0), ["lime"])
    with pytest.raises(AttributeError):
        randomisation_test(looks_top_left, images, ClassTarget(0), ["gradient"], layers=["nope"])
    with pytest.raises(ValueError, match="no parameters"):
        randomisation_test(looks_top_left, images, ClassTarget(0), ["gradient"], layers=["act1"])
