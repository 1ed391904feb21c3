"""What a saliency map explains: one scalar per image.

Gradient methods explain a scalar. For a classifier that is one class logit
(Simonyan et al. 2013). For a segmentation network Candor uses the chosen
class's logits summed over a region — by default the region the model itself
predicts for that class — which is the "wrap the model to return a scalar"
answer to captum #119/#343/#962 and pytorch-grad-cam #177 (reference §9.1).

Captum evaluates the model on internally expanded batches (integrated-gradients
steps, SmoothGrad noise copies, internal batching). The per-image class index or
region is therefore passed as an *additional forward argument*, which captum
expands in the same order as the inputs, so every expanded row meets its own
image's region (reference §5.5: the captum tutorial's wrapper assumes batch 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
from torch import nn

from candor.errors import CandorError
from candor.saliency.modes import saliency_mode

logger = logging.getLogger(__name__)


class EmptyTargetRegion(CandorError, ValueError):
    """A segmentation target's region has no pixel for some image, so there is nothing to explain."""


@dataclass(frozen=True)
class ClassTarget:
    """Explain a classifier's logit ``index`` (one int for the whole batch, or one per image)."""

    index: int | Sequence[int]


@dataclass(frozen=True)
class SegmentationTarget:
    """Explain the sum of class ``class_index``'s logits over a region of each image.

    ``region`` is a boolean or 0/1 mask of the model output's spatial shape,
    (H, W) for every image or (B, H, W) per image. ``None`` means the predicted
    mask from an eval-mode forward pass: argmax over classes equal to
    ``class_index``; for a single-channel (sigmoid) output, logit > 0.
    """

    class_index: int
    region: torch.Tensor | np.ndarray | None = None


Target = Union[ClassTarget, SegmentationTarget]


class ClassLogit(nn.Module):
    """``model`` reduced to one logit per row: ``model(x)[n, index[n]]``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if logits.ndim != 2:
            raise ValueError(f"ClassTarget needs (B, classes) logits; the model returned shape {tuple(logits.shape)}")
        if index.shape[0] != logits.shape[0]:
            raise ValueError(f"{index.shape[0]} class indices for {logits.shape[0]} rows")
        if int(index.max()) >= logits.shape[1]:
            raise ValueError(f"class index {int(index.max())} out of range for {logits.shape[1]} classes")
        return logits.gather(1, index.view(-1, 1)).squeeze(1)


class RegionLogitSum(nn.Module):
    """``model`` reduced to Σ_{pixels in region[n]} logit[n, class_index] per row n."""

    def __init__(self, model: nn.Module, class_index: int):
        super().__init__()
        self.model = model
        self.class_index = class_index

    def forward(self, x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if logits.ndim < 3:
            raise ValueError(
                f"SegmentationTarget needs (B, classes, *spatial) logits; got shape {tuple(logits.shape)}"
            )
        if region.shape[0] != logits.shape[0] or region.shape[1:] != logits.shape[2:]:
            raise ValueError(
                f"region of shape {tuple(region.shape)} does not match the output's "
                f"(rows, *spatial) {(logits.shape[0], *logits.shape[2:])}"
            )
        if not 0 <= self.class_index < logits.shape[1]:
            raise ValueError(f"class index {self.class_index} out of range for a {logits.shape[1]}-channel output")
        class_logits = logits[:, self.class_index]
        return (class_logits * region.to(class_logits.dtype)).flatten(1).sum(dim=1)


@dataclass(frozen=True)
class ResolvedTarget:
    """A target made explicit for one batch: the scalar module and its per-image argument."""

    target: Target
    """An explicit target (a predicted region filled in), reusable on other models."""
    forward_arg: torch.Tensor
    """(B,) long class indices or (B, *spatial) float region masks."""
    description: str
    preparation_forward_passes: int
    """Eval forward passes of the batch spent resolving the target (1 for a predicted mask)."""

    def scorer(self, model: nn.Module) -> nn.Module:
        """The module captum differentiates: ``model`` reduced to one scalar per row."""
        if isinstance(self.target, ClassTarget):
            return ClassLogit(model)
        return RegionLogitSum(model, self.target.class_index)


def _class_indices(target: ClassTarget, batch: int, device: torch.device) -> torch.Tensor:
    index = target.index.tolist() if isinstance(target.index, (torch.Tensor, np.ndarray)) else target.index
    raw = [index] * batch if isinstance(index, (int, np.integer)) else list(index)
    if len(raw) != batch:
        raise ValueError(f"ClassTarget has {len(raw)} indices for a batch of {batch}")
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"class indices must be non-negative integers, got {value!r}")
    return torch.as_tensor([int(v) for v in raw], dtype=torch.long, device=device)


def predicted_region(model: nn.Module, inputs: torch.Tensor, class_index: int) -> torch.Tensor:
    """The (B, *spatial) boolean mask the model predicts for ``class_index`` (eval mode, no grad)."""
    with saliency_mode(model), torch.no_grad():
        logits = model(inputs)
    if logits.ndim < 3:
        raise ValueError(f"SegmentationTarget needs (B, classes, *spatial) logits; got {tuple(logits.shape)}")
    classes = logits.shape[1]
    if not 0 <= class_index < classes:
        raise ValueError(f"class index {class_index} out of range for a {classes}-channel output")
    if classes == 1:
        return logits[:, 0] > 0
    return logits.argmax(dim=1) == class_index


def _explicit_region(target: SegmentationTarget, device: torch.device) -> torch.Tensor:
    region = torch.as_tensor(target.region)
    if region.ndim < 2:
        raise ValueError(f"a region must be (*spatial) or (B, *spatial), got shape {tuple(region.shape)}")
    if region.dtype != torch.bool:
        values = torch.unique(region)
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError("a region mask must be boolean or hold only 0 and 1")
        region = region != 0
    return region.to(device)


def resolve_target(model: nn.Module, inputs: torch.Tensor, target: Target) -> ResolvedTarget:
    """Turn ``target`` into per-image forward arguments for a batch ``inputs`` (B, C, *spatial).

    Raises :class:`EmptyTargetRegion` when an image's region is empty: its map
    would be identically zero, which must not be shown as an explanation.
    """
    batch = inputs.shape[0]
    if isinstance(target, ClassTarget):
        indices = _class_indices(target, batch, inputs.device)
        return ResolvedTarget(target, indices, f"class logit {indices.tolist()}", 0)
    if not isinstance(target, SegmentationTarget):
        raise TypeError(f"target must be a ClassTarget or SegmentationTarget, got {type(target).__name__}")
    if isinstance(target.class_index, bool) or not isinstance(target.class_index, (int, np.integer)):
        raise ValueError(f"class_index must be an integer, got {target.class_index!r}")
    passes = 0
    if target.region is None:
        region = predicted_region(model, inputs, int(target.class_index))
        passes = 1
        source = "predicted"
    else:
        region = _explicit_region(target, inputs.device)
        source = "given"
        if region.ndim == inputs.ndim - 2:
            region = region.unsqueeze(0).expand(batch, *region.shape)
        if region.shape[0] != batch:
            raise ValueError(f"region has {region.shape[0]} masks for a batch of {batch}")
    empty = [n for n in range(batch) if not bool(region[n].any())]
    if empty:
        raise EmptyTargetRegion(f"the {source} region of class {target.class_index} is empty for images {empty}")
    explicit = SegmentationTarget(int(target.class_index), region.clone())
    description = f"sum of class {target.class_index} logits over the {source} region"
    return ResolvedTarget(explicit, region.to(inputs.dtype), description, passes)
