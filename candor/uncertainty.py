"""Monte-Carlo dropout sampling and the entropy decomposition of its predictions.

With T stochastic forward passes (dropout on, batch-norm frozen) and p_t the
class probabilities of pass t (Gal & Ghahramani 2016, "Dropout as a Bayesian
approximation"), per pixel:

* mean probability     p̄ = mean_t p_t
* total (predictive)   H[p̄]
* aleatoric            E_t H[p_t]                (expected entropy)
* epistemic            H[p̄] − E_t H[p_t] ≥ 0     (mutual information, BALD)

Entropies are in nats; for C classes every term lies in [0, ln C].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

#: Dropout module types that MC sampling switches on.
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

_EPS = 1e-12


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The model's dropout modules (eager models; TorchScript names them ``Dropout*``)."""
    found = []
    for module in model.modules():
        if isinstance(module, DROPOUT_TYPES):
            found.append(module)
        elif getattr(module, "original_name", "").startswith("Dropout"):
            found.append(module)
    return found


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with only its dropout modules in training mode.

    Batch-norm keeps its running statistics (unlike ``monai.networks.utils.train_mode``,
    which flips every module). On exit every module's previous ``training`` flag is
    restored, whatever happened inside.
    """
    previous = {module: module.training for module in model.modules()}
    drops = dropout_modules(model)
    if not drops:
        raise ValueError("MC dropout needs a model with dropout modules; this one has none")
    try:
        model.eval()
        for module in drops:
            module.train()
        yield model
    finally:
        for module, was_training in previous.items():
            module.training = was_training


def entropy(probabilities: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy in nats along ``dim`` (0 · log 0 taken as 0)."""
    p = probabilities.clamp_min(0.0)
    return -(p * torch.log(p.clamp_min(_EPS))).sum(dim=dim)


@dataclass(frozen=True)
class UncertaintyMaps:
    """Per-pixel MC-dropout summaries for one image, all float32 arrays.

    ``mean_probability`` has shape (C, H, W); the entropy maps have shape (H, W).
    """

    mean_probability: np.ndarray
    std_probability: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    samples: int

    @property
    def max_entropy(self) -> float:
        """ln C: the upper bound of every entropy map."""
        return float(np.log(self.mean_probability.shape[0]))


def decompose(sample_probabilities: torch.Tensor) -> UncertaintyMaps:
    """Decompose T sampled probability maps of shape (T, C, H, W) into uncertainty maps.

    The class axis must hold probabilities that sum to one; a binary sigmoid
    output should be stacked as (1 − p, p) first (see :func:`as_two_class`).
    """
    if sample_probabilities.ndim < 3:
        raise ValueError(f"expected (T, C, ...) probabilities, got shape {tuple(sample_probabilities.shape)}")
    probs = sample_probabilities.double()
    mean = probs.mean(dim=0)
    total = entropy(mean, dim=0)
    aleatoric = entropy(probs, dim=1).mean(dim=0)
    epistemic = (total - aleatoric).clamp_min(0.0)
    std = probs.std(dim=0, unbiased=False)
    return UncertaintyMaps(
        mean_probability=mean.float().cpu().numpy(),
        std_probability=std.float().cpu().numpy(),
        total=total.float().cpu().numpy(),
        aleatoric=aleatoric.float().cpu().numpy(),
        epistemic=epistemic.float().cpu().numpy(),
        samples=int(sample_probabilities.shape[0]),
    )


def as_two_class(foreground: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Stack a foreground probability p as (1 − p, p) along ``dim``."""
    return torch.cat([1.0 - foreground, foreground], dim=dim)


def mc_sample(
    model: nn.Module,
    image: torch.Tensor,
    samples: int,
    seed: int,
    to_probabilities: Callable[[torch.Tensor], torch.Tensor] = lambda logits: logits.softmax(dim=1),
) -> torch.Tensor:
    """Run ``samples`` stochastic passes of ``model`` on ``image`` (1, C_in, H, W).

    Returns probabilities (T, C, H, W) on the CPU. The dropout masks come from a
    generator seeded with ``seed`` (the global RNG state is saved and restored),
    so a fixed seed gives identical maps on a re-run.
    """
    if samples < 2:
        raise ValueError(f"MC dropout needs at least 2 samples, got {samples}")
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image of shape (1, C, H, W), got {tuple(image.shape)}")
    devices = [image.device] if image.device.type == "cuda" else []
    outputs = []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), mc_dropout_mode(model):
        torch.manual_seed(seed)
        for _ in range(samples):
            outputs.append(to_probabilities(model(image))[0].float().cpu())
    return torch.stack(outputs)
