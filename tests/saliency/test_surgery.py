"""ReLU surgery for guided backprop: functional, in-place and leaky rectifiers (reference §5.7, §5.8)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, Saliency
from torch import nn

from candor.saliency import (
    ClassTarget,
    GuidedBackpropUnsupported,
    GuidedRectifier,
    SegmentationTarget,
    compute_saliency,
    is_prepared,
    prepare_for_guided_backprop,
)
from candor.saliency.surgery import PREPARED_ATTRIBUTE, rectifier_census
from candor.saliency.targets import ClassLogit, RegionLogitSum


def _captum_maps(model: nn.Module, scorer: nn.Module, x: torch.Tensor, arg: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Plain captum (no surgery): (guided backprop, gradient) attributions."""
    model.eval()
    gbp = GuidedBackprop(scorer).attribute(x.clone().requires_grad_(), additional_forward_args=(arg,))
    grad = Saliency(scorer).attribute(x.clone().requires_grad_(), additional_forward_args=(arg,), abs=False)
    return gbp.detach().numpy(), grad.detach().numpy()


def test_functional_relu_is_converted(functional_relu_net: nn.Module, images: torch.Tensor) -> None:
    index = torch.tensor([0, 1])
    raw_gbp, raw_grad = _captum_maps(functional_relu_net, ClassLogit(functional_relu_net), images, index)
    np.testing.assert_array_equal(raw_gbp, raw_grad)  # the failure the surgery exists for
    gbp = compute_saliency(functional_relu_net, images, ClassTarget([0, 1]), "guided_backprop")
    grad = compute_saliency(functional_relu_net, images, ClassTarget([0, 1]), "gradient")
    assert not np.allclose(gbp.attributions, grad.attributions, atol=1e-6)
    prepared = prepare_for_guided_backprop(functional_relu_net, images[:1])
    report = getattr(prepared, PREPARED_ATTRIBUTE)
    assert report.functional_converted == 1 and report.guided_calls == 1
    assert rectifier_census(prepared, images)[0] == 0
    assert rectifier_census(functional_relu_net, images)[0] == 1  # the original is untouched


def test_monai_basic_unet_leaky_relus_are_guided(basic_unet: nn.Module, unet_images: torch.Tensor) -> None:
    region = torch.ones(2, 32, 32)
    raw_gbp, raw_grad = _captum_maps(basic_unet, RegionLogitSum(basic_unet, 1), unet_images, region)
    np.testing.assert_array_equal(raw_gbp, raw_grad)  # BasicUNet has no nn.ReLU: captum guides nothing
    target = SegmentationTarget(1, region=region.bool())
    gbp = compute_saliency(basic_unet, unet_images, target, "guided_backprop")
    grad = compute_saliency(basic_unet, unet_images, target, "gradient")
    assert not np.allclose(gbp.attributions, grad.attributions, rtol=0.05)
    prepared = prepare_for_guided_backprop(basic_unet, unet_images[:1])
    report = getattr(prepared, PREPARED_ATTRIBUTE)
    leaky = sum(isinstance(m, nn.LeakyReLU) for m in basic_unet.modules())
    assert report.wrapped == {"LeakyReLU": leaky} and report.relu_modules == 0 and leaky > 0
    assert all(not m.activation.inplace for m in prepared.modules() if isinstance(m, GuidedRectifier))
    assert all(m.inplace for m in basic_unet.modules() if isinstance(m, nn.LeakyReLU))  # original unchanged


def test_monai_densenet121_inplace_relus(images: torch.Tensor) -> None:
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    net = DenseNet121(
        spatial_dims=2, in_channels=1, out_channels=3, init_features=8, growth_rate=4, block_config=(2, 2)
    )
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    prepared = prepare_for_guided_backprop(net, images[:1])
    report = getattr(prepared, PREPARED_ATTRIBUTE)
    assert report.relu_modules == len(relus) == report.inplace_disabled == report.guided_calls
    assert report.functional_converted == 0 and report.wrapped == {}
    assert not any(m.inplace for m in prepared.modules() if isinstance(m, nn.ReLU))
    assert all(m.inplace for m in relus)
    gbp = compute_saliency(prepared, images, ClassTarget(2), "guided_backprop")
    grad = compute_saliency(net, images, ClassTarget(2), "gradient")
    assert not np.allclose(gbp.attributions, grad.attributions, rtol=0.05)
    assert gbp.preparation_forward_equivalents == 0.0  # already prepared: no second copy


def test_monai_unet_prelu_is_wrapped_and_output_kept() -> None:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2), dropout=0.2)
    x = torch.rand(1, 1, 16, 16)
    prepared = prepare_for_guided_backprop(net, x)
    assert getattr(prepared, PREPARED_ATTRIBUTE).wrapped == {"PReLU": 4}
    net.eval()
    prepared.eval()
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), net(x))
    assert is_prepared(prepared) and not is_prepared(net)


def test_model_without_rectifiers_is_refused(linear_seg: nn.Module) -> None:
    with pytest.raises(GuidedBackpropUnsupported, match="no ReLU"):
        prepare_for_guided_backprop(linear_seg, torch.rand(1, 1, 8, 8))


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.mean() > -1e9:  # data-dependent control flow: torch.fx cannot trace it
            y = torch.relu(y)
        return y.flatten(1).sum(dim=1, keepdim=True)


def test_untraceable_functional_relu_is_refused() -> None:
    with pytest.raises(GuidedBackpropUnsupported, match="cannot be traced"):
        prepare_for_guided_backprop(_Untraceable(), torch.rand(1, 1, 8, 8))


class _WithGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gelu(self.relu(self.conv(x))).flatten(1).sum(dim=1, keepdim=True)


def test_unguided_activations_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="candor.saliency.surgery"):
        prepared = prepare_for_guided_backprop(_WithGelu(), torch.rand(1, 1, 8, 8))
    assert getattr(prepared, PREPARED_ATTRIBUTE).unguided == {"GELU": 1}
    assert "GELU" in caplog.text


def test_guided_rectifier_rule_on_leaky_relu() -> None:
    """Guided rule on top of the true derivative: slope·g below zero, g above, negative signals dropped."""
    def x() -> torch.Tensor:  # a fresh leaf per call: captum leaves its tensor hooks on a ReLU's input
        return torch.tensor([[-2.0, -1.0, 1.0, 2.0]], requires_grad=True)

    weights = torch.tensor([[1.0, -1.0, 1.0, -1.0]])  # the incoming gradient g
    attribution = GuidedBackprop(_Weighted(GuidedRectifier(nn.LeakyReLU(0.1)), weights)).attribute(x())
    torch.testing.assert_close(attribution, torch.tensor([[0.1, 0.0, 1.0, 0.0]]))
    plain = GuidedBackprop(_Weighted(nn.LeakyReLU(0.1), weights)).attribute(x())
    torch.testing.assert_close(plain, torch.tensor([[0.1, -0.1, 1.0, -1.0]]))  # unguided without the wrapper


class _Weighted(nn.Module):
    def __init__(self, inner: nn.Module, weights: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.inner(x) * self.weights).sum(dim=1)


def test_inplace_functional_relu_changing_semantics_is_caught() -> None:
    """An in-place relu whose side effect matters cannot be converted silently."""

    class _SideEffect(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            F.relu(y, inplace=True)  # result unused: only the in-place side effect matters
            return y.flatten(1).sum(dim=1, keepdim=True)

    net = _SideEffect()
    with torch.no_grad():
        net.conv.weight.fill_(1.0)
        net.conv.bias.fill_(-0.5)
    with pytest.raises(GuidedBackpropUnsupported, match="different output"):
        prepare_for_guided_backprop(net, torch.rand(1, 1, 8, 8))
