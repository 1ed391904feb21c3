"""Eval mode during saliency, and every training flag and requires_grad restored afterwards."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from candor.saliency import ClassTarget, SaliencyConfig, SegmentationTarget, compute_saliency, saliency_mode
from candor.uncertainty import dropout_modules, mc_dropout_mode

IG = SaliencyConfig(ig_steps=8)


def _flags(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


def test_saliency_runs_in_eval_mode(classifier: nn.Module, images: torch.Tensor) -> None:
    """With dropout 0.5 left in training mode, repeated IG calls would differ (reference §5.4)."""
    classifier.train()
    first = compute_saliency(classifier, images, ClassTarget(1), "integrated_gradients", IG)
    second = compute_saliency(classifier, images, ClassTarget(1), "integrated_gradients", IG)
    reference = compute_saliency(copy.deepcopy(classifier).eval(), images, ClassTarget(1), "integrated_gradients", IG)
    np.testing.assert_array_equal(first.maps, second.maps)
    np.testing.assert_allclose(first.maps, reference.maps, rtol=1e-6)


@pytest.mark.parametrize("method", ["gradient", "guided_backprop", "integrated_gradients", "gradcam"])
def test_mc_dropout_state_survives_saliency(basic_unet: nn.Module, unet_images: torch.Tensor, method: str) -> None:
    """MC → saliency → MC: dropout must still be on (MONAI's saliency switches it off, §5.2)."""
    with mc_dropout_mode(basic_unet):
        before = _flags(basic_unet)
        compute_saliency(basic_unet, unet_images, SegmentationTarget(1), method, IG)
        assert _flags(basic_unet) == before
        assert all(module.training for module in dropout_modules(basic_unet))
        with torch.no_grad():
            assert not torch.equal(basic_unet(unet_images), basic_unet(unet_images))  # still stochastic
    assert basic_unet.training  # fresh MONAI modules start in training mode; restored by mc_dropout_mode


def test_requires_grad_is_restored(classifier: nn.Module, images: torch.Tensor) -> None:
    classifier.conv1.weight.requires_grad_(False)
    before = {name: p.requires_grad for name, p in classifier.named_parameters()}
    compute_saliency(classifier, images, ClassTarget(0), "gradient")
    assert {name: p.requires_grad for name, p in classifier.named_parameters()} == before
    assert before["conv2.weight"] and not before["conv1.weight"]


def test_state_is_restored_after_an_error(basic_unet: nn.Module, unet_images: torch.Tensor) -> None:
    wrong_size = torch.ones(2, 16, 16, dtype=torch.bool)  # the output is 32×32
    with mc_dropout_mode(basic_unet):
        flags = _flags(basic_unet)
        grads = [p.requires_grad for p in basic_unet.parameters()]
        with pytest.raises(ValueError, match="does not match"):
            compute_saliency(basic_unet, unet_images, SegmentationTarget(1, region=wrong_size), "gradient")
        assert _flags(basic_unet) == flags
        assert [p.requires_grad for p in basic_unet.parameters()] == grads


def test_saliency_mode_restores_on_exception(classifier: nn.Module) -> None:
    classifier.train()
    with pytest.raises(RuntimeError, match="boom"):
        with saliency_mode(classifier):
            assert not classifier.training and not classifier.drop.training
            assert not any(p.requires_grad for p in classifier.parameters())
            raise RuntimeError("boom")
    assert classifier.training and classifier.drop.training
    assert all(p.requires_grad for p in classifier.parameters())


def test_works_inside_no_grad_and_inference_mode(classifier: nn.Module, images: torch.Tensor) -> None:
    expected = compute_saliency(classifier, images, ClassTarget(0), "gradient").maps
    with torch.no_grad():
        np.testing.assert_array_equal(compute_saliency(classifier, images, ClassTarget(0), "gradient").maps, expected)
    with torch.inference_mode():
        frozen = images.clone()
        np.testing.assert_array_equal(compute_saliency(classifier, frozen, ClassTarget(0), "gradient").maps, expected)
