"""The cost model measured: FLOPs of each method in forward-pass equivalents (reference §5.3, §6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from candor.saliency import SaliencyConfig, SegmentationTarget, compute_saliency, cost_forward_equivalents


class _Flops(TorchDispatchMode):
    """Counts FLOPs of every aten op torch's flop counter knows (convolution and its backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


@pytest.fixture
def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1)
    )


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "smoothgrad_gradient", "guided_backprop"])
def test_measured_flops_match_the_cost_model(conv_net: nn.Module, method: str) -> None:
    x = torch.rand(1, 1, 16, 16)
    target = SegmentationTarget(1, region=torch.ones(16, 16, dtype=torch.bool))
    config = SaliencyConfig(ig_steps=4, smoothgrad_samples=3)
    with _Flops() as forward, torch.no_grad():
        conv_net(x)
    with _Flops() as counted:
        result = compute_saliency(conv_net, x, target, method, config)
    measured = counted.total / forward.total - result.preparation_forward_equivalents
    assert measured == pytest.approx(cost_forward_equivalents(method, config), rel=0.01)


def test_weight_gradients_would_cost_a_third_more(conv_net: nn.Module) -> None:
    """Control for the counter: `.backward()` with trainable weights is 3F, ours is 2F."""
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    with _Flops() as forward, torch.no_grad():
        conv_net(x)
    with _Flops() as counted:
        conv_net(x)[:, 1].sum().backward()
    assert counted.total / forward.total == pytest.approx(3.0, rel=0.01)
