"""Targets: class logits and segmentation regions, resolved per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from candor.saliency import (
    ClassTarget,
    EmptyTargetRegion,
    SegmentationTarget,
    compute_saliency,
    predicted_region,
    resolve_target,
)


def test_predicted_region_is_the_eval_argmax(basic_unet: nn.Module, unet_images: torch.Tensor) -> None:
    basic_unet.train()
    region = predicted_region(basic_unet, unet_images, 1)
    basic_unet.eval()
    with torch.no_grad():
        expected = basic_unet(unet_images).argmax(dim=1) == 1
    assert torch.equal(region, expected)
    resolved = resolve_target(basic_unet, unet_images, SegmentationTarget(1))
    assert resolved.preparation_forward_passes == 1
    assert torch.equal(resolved.target.region, expected) and resolved.forward_arg.dtype == unet_images.dtype


def test_single_channel_output_uses_logit_above_zero() -> None:
    net = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(-0.5)  # logit > 0 ⇔ pixel > 0.5
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(predicted_region(net, x, 0), x[:, 0] > 0.5)
    with pytest.raises(ValueError, match="out of range"):
        predicted_region(net, x, 1)


def test_one_region_for_all_images_is_broadcast(linear_seg: nn.Module) -> None:
    x = torch.rand(2, 1, 8, 8)
    region = np.zeros((8, 8), dtype=np.uint8)
    region[2:5, 2:5] = 1
    resolved = resolve_target(linear_seg, x, SegmentationTarget(0, region=region))
    assert resolved.forward_arg.shape == (2, 8, 8) and resolved.preparation_forward_passes == 0
    assert float(resolved.forward_arg.sum()) == 18.0


def test_empty_region_is_refused(linear_seg: nn.Module) -> None:
    x = torch.rand(2, 1, 8, 8)
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[0, 1, 1] = True
    with pytest.raises(EmptyTargetRegion, match=r"images \[1\]"):
        compute_saliency(linear_seg, x, SegmentationTarget(0, region=region), "gradient")


def test_invalid_targets_are_refused(linear_seg: nn.Module, classifier: nn.Module) -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="0 and 1"):
        resolve_target(linear_seg, x, SegmentationTarget(0, region=torch.full((8, 8), 2.0)))
    with pytest.raises(ValueError, match="3 masks for a batch of 2"):
        resolve_target(linear_seg, x, SegmentationTarget(0, region=torch.ones(3, 8, 8)))
    with pytest.raises(ValueError, match="3 indices for a batch of 2"):
        resolve_target(classifier, x, ClassTarget([0, 1, 2]))
    assert resolve_target(classifier, x, ClassTarget(torch.tensor([2, 0]))).forward_arg.tolist() == [2, 0]
    with pytest.raises(ValueError, match="non-negative"):
        resolve_target(classifier, x, ClassTarget(-1))
    with pytest.raises(TypeError):
        resolve_target(classifier, x, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, classes\) logits"):
        compute_saliency(linear_seg, x, ClassTarget(0), "gradient")
