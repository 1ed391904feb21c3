"""Tiny models shared by the saliency tests (CPU, milliseconds per call)."""

from __future__ import annotations

import warnings
from typing import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn


@pytest.fixture(autouse=True)
def _quiet_single_thread() -> Iterator[None]:
    """One thread (tiny models, shared CPU), restored for other test folders; captum's hook notice muted."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        yield
    torch.set_num_threads(threads)


class TinyClassifier(nn.Module):
    """Conv → ReLU(inplace) → strided conv → ReLU → dropout → linear; 3 classes on 1×16×16."""

    def __init__(self, dropout: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, stride=2)
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.act2(self.conv2(self.act1(self.conv1(x)))).flatten(1)))


class FunctionalReluNet(nn.Module):
    """A classifier whose only ReLU is functional (like torchxrayvision's DenseNet forward)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Linear(6 * 16 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(F.relu(self.conv1(x), inplace=True)).flatten(1))


class LinearSeg(nn.Module):
    """A linear 2-class 'segmenter' (one 3×3 conv): gradients do not depend on the input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture
def classifier() -> TinyClassifier:
    torch.manual_seed(0)
    return TinyClassifier()


@pytest.fixture
def functional_relu_net() -> FunctionalReluNet:
    torch.manual_seed(0)
    return FunctionalReluNet()


@pytest.fixture
def linear_seg() -> LinearSeg:
    torch.manual_seed(0)
    return LinearSeg()


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 1, 16, 16)


@pytest.fixture
def basic_unet() -> nn.Module:
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4), dropout=0.3)


@pytest.fixture
def unet_images() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.rand(2, 1, 32, 32)
