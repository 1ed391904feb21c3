"""Model-parameter randomisation test: does a saliency method depend on what the model learned?

Adebayo et al. 2018 ("Sanity checks for saliency maps", NeurIPS) re-initialise
a trained network's weights — cascading from the output layer towards the
input, or one layer at a time (independent) — and compare each randomised
model's maps with the original's. A method whose maps barely change explains
the image (edges), not the model; guided backprop is the known offender. Here
the comparison is Spearman's rank correlation of the flattened |maps| per image
(``scipy.stats.spearmanr``), averaged over the batch, and a method *fails* —
is labelled "not model-sensitive" — when the statistic is at or above a
threshold:

* cascading: the correlation after every listed layer has been randomised;
* independent: the mean correlation over the single-layer randomisations.

A layer is re-initialised with its own ``reset_parameters()`` (PyTorch's
default initialisers — the untrained state, as in the paper's re-initialisation);
batch-norm layers return to identity with fresh running statistics. The target
is resolved once on the original model, so a segmentation target keeps the
original prediction's region on every randomised model.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from candor.saliency.config import SaliencyConfig
from candor.saliency.methods import compute_saliency
from candor.saliency.registry import method_spec
from candor.saliency.targets import Target, resolve_target

logger = logging.getLogger(__name__)

MODEL_SENSITIVE = "model-sensitive"
NOT_MODEL_SENSITIVE = "not model-sensitive"
UNDETERMINED = "undetermined"
MODES = ("cascading", "independent")


@dataclass(frozen=True)
class RandomisationStep:
    """Maps after randomising ``layer`` (and, when cascading, every earlier step's layers)."""

    layer: str
    correlation: float
    """Mean over images of the per-image Spearman correlation (NaN images ignored)."""
    per_image: tuple[float, ...]


@dataclass(frozen=True)
class RandomisationResult:
    """One method's randomisation test."""

    method: str
    mode: str
    steps: tuple[RandomisationStep, ...]
    statistic: float
    threshold: float
    verdict: str
    """``model-sensitive``, ``not model-sensitive`` or ``undetermined`` (all correlations NaN)."""

    @property
    def passed(self) -> bool:
        return self.verdict == MODEL_SENSITIVE


def rank_correlation(original: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """Per image, Spearman's ρ between flattened |original| and |randomised| maps (B, H, W).

    NaN where either map is constant (ρ is undefined there).
    """
    a = np.abs(np.asarray(original, dtype=np.float64))
    b = np.abs(np.asarray(randomised, dtype=np.float64))
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"maps must share a (B, ...) shape, got {a.shape} and {b.shape}")
    rhos = np.full(a.shape[0], np.nan)
    for n in range(a.shape[0]):
        x, y = a[n].ravel(), b[n].ravel()
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        rhos[n] = float(stats.spearmanr(x, y).statistic)
    return rhos


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def randomisable_layers(model: nn.Module) -> list[str]:
    """Modules with their own parameters and ``reset_parameters()``, output end first.

    Order is the reverse of registration order, which for sequential models is
    the reverse of execution order (Adebayo et al. randomise from the logits down).
    """
    names = [
        name
        for name, module in model.named_modules()
        if name and _owns_parameters(module) and callable(getattr(module, "reset_parameters", None))
    ]
    return names[::-1]


def _parameter_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The parameter-bearing modules inside ``name``; ``ValueError`` if one cannot be re-initialised."""
    reset = [m for m in model.get_submodule(name).modules() if _owns_parameters(m)]
    if not reset:
        raise ValueError(f"layer {name!r} has no parameters to randomise")
    for sub in reset:
        if not callable(getattr(sub, "reset_parameters", None)):
            raise ValueError(f"{name!r} contains {type(sub).__name__}, which has no reset_parameters()")
    return reset


def _randomise(model: nn.Module, name: str) -> None:
    with torch.no_grad():
        for module in _parameter_modules(model, name):
            module.reset_parameters()


def _step(label: str, original: np.ndarray, randomised: np.ndarray) -> RandomisationStep:
    rhos = rank_correlation(original, randomised)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN mean is reported as NaN
        mean = float(np.nanmean(rhos))
    return RandomisationStep(label, mean, tuple(float(r) for r in rhos))


def randomisation_test(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target,
    methods: Sequence[str],
    config: SaliencyConfig | None = None,
    *,
    mode: str = "cascading",
    layers: Sequence[str] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict[str, RandomisationResult]:
    """Run the model-parameter randomisation test for each of ``methods``.

    ``layers`` are module names randomised in the given order (each step
    re-initialises every parameter-bearing submodule of the named module);
    default :func:`randomisable_layers`. ``model`` is not modified: each
    randomisation works on a deep copy. Cost: (steps + 1) × each method's cost.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not -1.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (-1, 1], got {threshold}")
    for method in methods:
        method_spec(method)
    names = list(layers) if layers is not None else randomisable_layers(model)
    if not names:
        raise ValueError("no layers to randomise")
    for name in names:
        _parameter_modules(model, name)
    config = config or SaliencyConfig()
    explicit = resolve_target(model, inputs, target).target
    original = {m: compute_saliency(model, inputs, explicit, m, config).maps for m in methods}
    steps: dict[str, list[RandomisationStep]] = {m: [] for m in methods}
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        cascade = copy.deepcopy(model) if mode == "cascading" else None
        for name in names:
            randomised = cascade if cascade is not None else copy.deepcopy(model)
            _randomise(randomised, name)
            for method in methods:
                maps = compute_saliency(randomised, inputs, explicit, method, config).maps
                steps[method].append(_step(name, original[method], maps))
                logger.info(
                    "randomisation (%s) %s after %s: rho=%.3f", mode, method, name, steps[method][-1].correlation
                )
    results = {}
    for method in methods:
        correlations = np.array([s.correlation for s in steps[method]])
        if mode == "cascading":
            statistic = float(correlations[-1])
        else:
            statistic = float(np.nanmean(correlations)) if np.isfinite(correlations).any() else float("nan")
        if np.isnan(statistic):
            verdict = UNDETERMINED
        else:
            verdict = MODEL_SENSITIVE if statistic < threshold else NOT_MODEL_SENSITIVE
        if verdict != MODEL_SENSITIVE:
            logger.warning(
                "%s is %s: randomisation statistic %.3f (threshold %.3f)", method, verdict, statistic, threshold
            )
        results[method] = RandomisationResult(method, mode, tuple(steps[method]), statistic, threshold, verdict)
    return results
