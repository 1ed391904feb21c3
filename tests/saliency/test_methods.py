"""compute_saliency: shapes, batching, targets, completeness, noise scaling, Grad-CAM layers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from candor.saliency import (
    METHODS,
    ClassTarget,
    SaliencyConfig,
    SegmentationTarget,
    compute_saliency,
    find_gradcam_layer,
    noise_sigmas,
)
from candor.saliency.targets import RegionLogitSum

FAST = SaliencyConfig(ig_steps=8, smoothgrad_samples=3, smoothgrad_batch_size=2)


def _halves(size: int) -> torch.Tensor:
    """Image 0: top half; image 1: bottom half."""
    region = torch.zeros(2, size, size, dtype=torch.bool)
    region[0, : size // 2] = True
    region[1, size // 2 :] = True
    return region


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_finite_maps_for_a_batch(classifier: nn.Module, images: torch.Tensor, method: str) -> None:
    result = compute_saliency(classifier, images, ClassTarget([0, 2]), method, FAST)
    assert result.maps.shape == (2, 16, 16) and result.maps.dtype == np.float32
    assert np.isfinite(result.maps).all()
    assert (np.abs(result.maps).reshape(2, -1).sum(axis=1) > 0).all()
    assert result.method == method and result.signed == METHODS[method].signed
    if not result.signed:
        assert (result.maps >= 0).all()
    assert result.attributions.shape == ((2, 1, 16, 16))


@pytest.mark.parametrize("method", list(METHODS))
def test_segmentation_target_on_monai_basic_unet(basic_unet: nn.Module, unet_images: torch.Tensor, method: str) -> None:
    result = compute_saliency(basic_unet, unet_images, SegmentationTarget(1), method, FAST)
    assert result.maps.shape == (2, 32, 32)
    assert np.isfinite(result.maps).all()
    assert (np.abs(result.maps).reshape(2, -1).sum(axis=1) > 0).all()
    assert "predicted region" in result.target
    assert result.preparation_forward_equivalents >= 1.0


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "gradcam"])
def test_batch_equals_images_one_by_one(basic_unet: nn.Module, unet_images: torch.Tensor, method: str) -> None:
    """Each image's own region reaches captum's expanded step batches (reference §5.5)."""
    region = _halves(32)
    config = SaliencyConfig(ig_steps=6, ig_internal_batch_size=4)
    batched = compute_saliency(basic_unet, unet_images, SegmentationTarget(1, region=region), method, config)
    for n in range(2):
        single = compute_saliency(
            basic_unet, unet_images[n : n + 1], SegmentationTarget(1, region=region[n]), method, config
        )
        scale = float(np.abs(single.maps).max())
        np.testing.assert_allclose(batched.maps[n], single.maps[0], rtol=1e-3, atol=1e-4 * scale)


def test_per_image_class_indices(classifier: nn.Module, images: torch.Tensor) -> None:
    batched = compute_saliency(classifier, images, ClassTarget([0, 2]), "gradient")
    first = compute_saliency(classifier, images[:1], ClassTarget(0), "gradient")
    second = compute_saliency(classifier, images[1:], ClassTarget(2), "gradient")
    np.testing.assert_allclose(batched.maps, np.concatenate([first.maps, second.maps]), rtol=1e-5)
    assert not np.allclose(first.maps, compute_saliency(classifier, images[:1], ClassTarget(2), "gradient").maps)


def test_integrated_gradients_completeness_classifier(classifier: nn.Module, images: torch.Tensor) -> None:
    """Σ attributions ≈ f(x) − f(baseline) (Sundararajan et al. 2017, completeness axiom)."""
    classifier.eval()
    result = compute_saliency(classifier, images, ClassTarget(0), "integrated_gradients", SaliencyConfig(ig_steps=64))
    with torch.no_grad():
        change = (classifier(images)[:, 0] - classifier(torch.zeros_like(images))[:, 0]).numpy()
    total = result.attributions.reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(total, change, rtol=0.02)
    np.testing.assert_allclose(result.maps.reshape(2, -1).sum(axis=1), total, rtol=1e-4)  # sum over channels
    np.testing.assert_allclose(result.delta, total - change, atol=1e-3)
    assert (result.relative_delta < 0.02).all()


def test_integrated_gradients_completeness_segmentation_per_image() -> None:
    """Completeness per image with different regions: the masks were not mixed up across the batch."""
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4), norm="batch").eval()
    x = torch.rand(2, 1, 32, 32)
    region = _halves(32)
    config = SaliencyConfig(ig_steps=32, ig_internal_batch_size=8)
    result = compute_saliency(net, x, SegmentationTarget(1, region=region), "integrated_gradients", config)
    score = RegionLogitSum(net, 1)
    with torch.no_grad():
        change = (score(x, region.float()) - score(torch.zeros_like(x), region.float())).numpy()
        swapped = (score(x, region.flip(0).float()) - score(torch.zeros_like(x), region.flip(0).float())).numpy()
    total = result.attributions.reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(total, change, rtol=0.01)
    assert not np.allclose(total, swapped, rtol=0.05)


def test_non_convergence_is_logged(
    classifier: nn.Module, images: torch.Tensor, caplog: pytest.LogCaptureFixture
) -> None:
    config = SaliencyConfig(ig_steps=2, ig_method="riemann_left", ig_relative_delta_warning=1e-6)
    with caplog.at_level(logging.WARNING, logger="candor.saliency.methods"):
        compute_saliency(classifier, images, ClassTarget(0), "integrated_gradients", config)
    assert "did not converge" in caplog.text


class _Cube(nn.Module):
    """f(x) = Σ x³ / 3, so ∂f/∂x = x² and the SmoothGrad mean is x² + σ²."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x**3).flatten(1).sum(dim=1, keepdim=True) / 3


def test_smoothgrad_noise_is_a_fraction_of_each_images_range() -> None:
    torch.manual_seed(3)
    x = torch.rand(2, 1, 32, 32)
    x[1] = 4.0 * x[1] + 1.0  # a range four times wider
    config = SaliencyConfig(smoothgrad_samples=16, smoothgrad_batch_size=5, noise_fraction=0.2)
    result = compute_saliency(_Cube(), x, ClassTarget(0), "smoothgrad_gradient", config)
    estimated = np.sqrt((result.attributions - (x**2).numpy()).reshape(2, -1).mean(axis=1))
    expected = [0.2 * float(x[n].max() - x[n].min()) for n in range(2)]
    np.testing.assert_allclose(noise_sigmas(x, config), expected, rtol=1e-6)
    np.testing.assert_allclose(estimated, expected, rtol=0.1)


def test_noise_range_setting_gives_one_sigma_for_all_images() -> None:
    torch.manual_seed(3)
    x = torch.rand(2, 1, 32, 32)
    x[1] = 4.0 * x[1]
    config = SaliencyConfig(smoothgrad_samples=16, noise_fraction=0.1, noise_range=3.0)
    result = compute_saliency(_Cube(), x, ClassTarget(0), "smoothgrad_gradient", config)
    estimated = np.sqrt((result.attributions - (x**2).numpy()).reshape(2, -1).mean(axis=1))
    np.testing.assert_allclose(estimated, [0.3, 0.3], rtol=0.1)


def test_smoothgrad_is_seeded_and_leaves_the_global_rng_alone(classifier: nn.Module, images: torch.Tensor) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = compute_saliency(classifier, images, ClassTarget(1), "smoothgrad_gradient", FAST)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = compute_saliency(classifier, images, ClassTarget(1), "smoothgrad_gradient", FAST)
    c = compute_saliency(classifier, images, ClassTarget(1), "smoothgrad_gradient", SaliencyConfig(
        smoothgrad_samples=3, smoothgrad_batch_size=2, seed=7))
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.allclose(a.maps, c.maps)


@pytest.mark.parametrize(
    "method", ["smoothgrad_gradient", "smoothgrad_integrated_gradients", "smoothgrad_guided_backprop"]
)
def test_smoothgrad_regions_follow_their_images(linear_seg: nn.Module, method: str) -> None:
    """On a 3×3-conv segmenter, attribution can only sit within 1 px of each image's region."""
    with torch.no_grad():
        linear_seg.conv.weight.abs_()
        linear_seg.conv.bias.abs_()
    net = nn.Sequential(linear_seg, nn.ReLU())  # positive weights and inputs: the ReLU passes everything
    x = torch.rand(2, 1, 16, 16) + 0.5
    region = _halves(16)
    config = SaliencyConfig(ig_steps=4, smoothgrad_samples=5, smoothgrad_batch_size=2)
    result = compute_saliency(net, x, SegmentationTarget(1, region=region), method, config)
    magnitude = np.abs(result.maps)
    assert magnitude[0, 10:].max() == 0 and magnitude[0, :8].max() > 0
    assert magnitude[1, :6].max() == 0 and magnitude[1, 8:].max() > 0
    if method == "smoothgrad_integrated_gradients":
        assert result.delta.shape == (2, 5)


def test_parameters_receive_no_gradients(classifier: nn.Module, images: torch.Tensor) -> None:
    """Input gradients only (reference §5.3): weight .grad stays None."""
    for method in ("gradient", "integrated_gradients", "gradcam"):
        compute_saliency(classifier, images, ClassTarget(0), method, FAST)
    assert all(p.grad is None for p in classifier.parameters())


def test_gradcam_layer_choice(classifier: nn.Module, images: torch.Tensor, basic_unet: nn.Module) -> None:
    assert find_gradcam_layer(classifier, images[:1]) == "conv2"
    assert find_gradcam_layer(basic_unet, torch.rand(1, 1, 32, 32)) == "final_conv"
    auto = compute_saliency(classifier, images, ClassTarget(0), "gradcam")
    chosen = compute_saliency(classifier, images, ClassTarget(0), "gradcam", SaliencyConfig(gradcam_layer="conv1"))
    assert auto.layer == "conv2" and chosen.layer == "conv1"
    assert not np.allclose(auto.maps, chosen.maps)
    with pytest.raises(ValueError, match="not a module"):
        compute_saliency(classifier, images, ClassTarget(0), "gradcam", SaliencyConfig(gradcam_layer="nope"))


def test_invalid_calls_are_rejected(classifier: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown saliency method"):
        compute_saliency(classifier, images, ClassTarget(0), "lrp")
    with pytest.raises(ValueError, match="shape"):
        compute_saliency(classifier, images[0], ClassTarget(0), "gradient")
    with pytest.raises(ValueError, match="floating"):
        compute_saliency(classifier, (images * 10).long(), ClassTarget(0), "gradient")
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compute_saliency(classifier, bad, ClassTarget(0), "gradient")
    with pytest.raises(ValueError, match="out of range"):
        compute_saliency(classifier, images, ClassTarget(3), "gradient")
    with pytest.raises(ValueError, match="constant"):
        compute_saliency(classifier, torch.zeros(1, 1, 16, 16), ClassTarget(0), "smoothgrad_gradient", FAST)
