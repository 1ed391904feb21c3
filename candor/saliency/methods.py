"""Gradient saliency methods behind one call, :func:`compute_saliency`, built on captum.

Methods (registry :data:`METHODS`):

* ``gradient`` — vanilla gradient of the target score w.r.t. the input
  (Simonyan et al. 2013, "Deep inside convolutional networks"); captum ``Saliency``.
* ``guided_backprop`` — guided backpropagation (Springenberg et al. 2014); captum
  ``GuidedBackprop`` on a surgically prepared copy (:mod:`candor.saliency.surgery`).
* ``integrated_gradients`` — (Sundararajan et al. 2017, "Axiomatic attribution");
  captum ``IntegratedGradients`` with a constant baseline, returning the
  convergence delta δ = Σ attributions − (f(x) − f(baseline)).
* ``smoothgrad_<base>`` — SmoothGrad (Smilkov et al. 2017): the mean of the base
  attribution over noisy copies x + N(0, σ²); captum ``NoiseTunnel``.
* ``gradcam`` — Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A_k) on a
  convolution layer, bilinearly upsampled to the input size; captum ``LayerGradCam``.

Channel reduction to one (H, W) map: gradient-type attributions take max |·|
over input channels (Simonyan et al. §3.1); integrated-gradient attributions are
summed over channels, keeping their sign and the completeness property (the map
sums to f(x) − f(baseline)); Grad-CAM has one channel and is non-negative.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import (
    Attribution,
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from torch import nn

from candor.saliency.config import SaliencyConfig
from candor.saliency.cost import cost_forward_equivalents
from candor.saliency.modes import saliency_mode
from candor.saliency.registry import MethodSpec, method_spec
from candor.saliency.surgery import PREPARED_ATTRIBUTE, is_prepared, prepare_for_guided_backprop
from candor.saliency.targets import ResolvedTarget, Target, resolve_target

logger = logging.getLogger(__name__)

_CONV_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)

@dataclass(frozen=True)
class SaliencyResult:
    """Saliency maps of one batch for one target.

    ``maps`` (B, H, W) float32 is the display map (see the module docstring for
    the channel reduction); ``attributions`` (B, C, H, W) float32 is the
    attribution before that reduction (Grad-CAM: (B, 1, H, W) upsampled).
    ``delta`` is integrated gradients' convergence delta — shape (B,) for
    ``integrated_gradients`` and (B, samples) for ``smoothgrad_integrated_gradients``
    (one per noisy copy) — and ``relative_delta`` = |δ| / |f(x) − f(baseline)|
    per image for ``integrated_gradients``; both are ``None`` for other methods.
    """

    maps: np.ndarray
    attributions: np.ndarray
    method: str
    signed: bool
    target: str
    cost_forward_equivalents: float
    """Per image, from :func:`cost_forward_equivalents` (reference §6)."""
    preparation_forward_equivalents: float
    """Per image, one-off passes not in the cost model: predicted-mask forward,
    guided-backprop surgery checks, Grad-CAM layer search."""
    seconds: float
    delta: np.ndarray | None = None
    relative_delta: np.ndarray | None = None
    layer: str | None = None


def find_gradcam_layer(model: nn.Module, example_input: torch.Tensor) -> str:
    """Name of the last convolution, in execution order, whose output has > 1 spatial element.

    Runs ``model`` once on ``example_input`` (eval, no grad). For a U-Net this is
    usually the final 1×1 output convolution; pass ``SaliencyConfig.gradcam_layer``
    to explain a deeper decoder or bottleneck layer instead.
    """
    names = {module: name for name, module in model.named_modules()}
    executed: list[tuple[str, tuple[int, ...]]] = []

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        executed.append((names[module], tuple(output.shape)))

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, _CONV_TYPES)]
    try:
        with saliency_mode(model), torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    spatial = [name for name, shape in executed if int(np.prod(shape[2:])) > 1]
    if not spatial:
        raise ValueError(f"{type(model).__name__} runs no convolution with a spatial output; name a Grad-CAM layer")
    return spatial[-1]


def _attribution(spec: MethodSpec, scorer: nn.Module, layer: nn.Module | None) -> Attribution:
    if spec.base == "gradient":
        return Saliency(scorer)
    if spec.base == "guided_backprop":
        return GuidedBackprop(scorer)
    if spec.base == "integrated_gradients":
        return IntegratedGradients(scorer, multiply_by_inputs=True)
    if spec.base == "gradcam":
        return LayerGradCam(scorer, layer)
    raise ValueError(f"unknown base method {spec.base!r}")


def _kwargs(spec: MethodSpec, config: SaliencyConfig, forward_arg: torch.Tensor, rows: int) -> dict:
    kwargs: dict = {"additional_forward_args": (forward_arg,)}
    if spec.base == "gradient":
        kwargs["abs"] = False
    elif spec.base == "integrated_gradients":
        internal = config.ig_internal_batch_size
        if internal < rows:
            logger.warning(
                "ig_internal_batch_size %d is below the %d rows captum evaluates together; using %d",
                internal, rows, rows,
            )
            internal = rows
        kwargs.update(
            baselines=config.ig_baseline,
            n_steps=config.ig_steps,
            method=config.ig_method,
            internal_batch_size=internal,
            return_convergence_delta=True,
        )
    elif spec.base == "gradcam":
        kwargs["relu_attributions"] = True
    return kwargs


def noise_sigmas(inputs: torch.Tensor, config: SaliencyConfig) -> list[float]:
    """SmoothGrad σ per image: ``noise_fraction`` × value range (captum's ``stdevs`` is absolute, §5.6)."""
    sigmas = []
    for n in range(inputs.shape[0]):
        width = config.noise_range if config.noise_range is not None else float(inputs[n].max() - inputs[n].min())
        if width <= 0.0:
            raise ValueError(
                f"image {n} is constant, so a noise level relative to its range is undefined; "
                "set SaliencyConfig.noise_range to the data's nominal range"
            )
        sigmas.append(config.noise_fraction * width)
    return sigmas


def _smoothgrad(
    spec: MethodSpec,
    attribution: Attribution,
    x: torch.Tensor,
    forward_arg: torch.Tensor,
    config: SaliencyConfig,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run captum's NoiseTunnel once per group of images that share a σ."""
    sigmas = noise_sigmas(x, config)
    chunk = min(config.smoothgrad_batch_size, config.smoothgrad_samples)
    out = torch.empty_like(x)
    deltas = torch.empty(x.shape[0], config.smoothgrad_samples, dtype=x.dtype)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        for sigma in sorted(set(sigmas)):
            index = torch.tensor([n for n, s in enumerate(sigmas) if s == sigma], device=x.device)
            kwargs = _kwargs(spec, config, forward_arg[index], rows=len(index) * chunk)
            result = NoiseTunnel(attribution).attribute(
                x[index], nt_type="smoothgrad", nt_samples=config.smoothgrad_samples,
                nt_samples_batch_size=chunk, stdevs=float(sigma), **kwargs,
            )
            if spec.base == "integrated_gradients":
                result, delta = result
                deltas[index.cpu()] = _per_image_deltas(
                    delta.detach().cpu(), len(index), config.smoothgrad_samples, chunk
                )
            out[index] = result.detach()
    return out, (deltas if spec.base == "integrated_gradients" else None)


def _per_image_deltas(delta: torch.Tensor, images: int, samples: int, chunk: int) -> torch.Tensor:
    """Reorder NoiseTunnel's deltas into (images, samples).

    captum 0.9 concatenates one block per chunk of noisy copies; inside a block
    the copies of each image are contiguous (``repeat_interleave``).
    """
    sizes = [chunk] * (samples // chunk) + ([samples % chunk] if samples % chunk else [])
    blocks, start = [], 0
    for size in sizes:
        blocks.append(delta[start:start + images * size].view(images, size))
        start += images * size
    return torch.cat(blocks, dim=1)


def _reduce(spec: MethodSpec, attributions: torch.Tensor) -> torch.Tensor:
    if spec.reduction == "max_abs":
        return attributions.abs().amax(dim=1)
    if spec.reduction == "sum":
        return attributions.sum(dim=1)
    return attributions[:, 0]


def _check_inputs(inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.ndim != 4 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must have shape (B, C, H, W), got {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be floating point, got {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or infinite values")


def _relative_delta(attributions: torch.Tensor, delta: torch.Tensor) -> np.ndarray:
    """|δ| / |f(x) − f(baseline)|, with f(x) − f(baseline) = Σ attributions − δ (no extra pass)."""
    total = attributions.flatten(1).sum(dim=1).double().cpu()
    d = delta.detach().double().cpu()
    change = (total - d).abs()
    return np.where(change.numpy() > 0, (d.abs() / change.clamp_min(1e-300)).numpy(), np.nan)


def _run(
    spec: MethodSpec,
    model: nn.Module,
    x: torch.Tensor,
    resolved: ResolvedTarget,
    config: SaliencyConfig,
    layer: nn.Module | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    scorer = resolved.scorer(model).eval()
    attribution = _attribution(spec, scorer, layer)
    if spec.smoothed:
        return _smoothgrad(spec, attribution, x, resolved.forward_arg, config)
    kwargs = _kwargs(spec, config, resolved.forward_arg, rows=x.shape[0])
    result = attribution.attribute(x.requires_grad_(spec.base != "integrated_gradients"), **kwargs)
    if spec.base == "integrated_gradients":
        return result[0].detach(), result[1].detach()
    if spec.base == "gradcam":
        result = LayerAttribution.interpolate(result, tuple(x.shape[2:]), interpolate_mode="bilinear")
    return result.detach(), None


def compute_saliency(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target,
    method: str,
    config: SaliencyConfig | None = None,
) -> SaliencyResult:
    """Saliency maps of ``target`` for a batch ``inputs`` (B, C, H, W) by ``method``.

    Runs in eval mode with parameters frozen and restores every module's
    ``training`` flag and every parameter's ``requires_grad`` afterwards, even on
    error (:func:`candor.saliency.modes.saliency_mode`). ``model`` is never
    modified; guided backprop works on a prepared deep copy unless ``model``
    already is one.
    """
    config = config or SaliencyConfig()
    spec = method_spec(method)
    _check_inputs(inputs)
    started = time.perf_counter()
    batch = inputs.shape[0]
    layer_name = None
    layer = None
    with saliency_mode(model):
        x = inputs.detach().clone()  # a normal tensor even when the caller is in inference mode
        resolved = resolve_target(model, x, target)
        preparation = float(resolved.preparation_forward_passes)
        work = model
        if spec.base == "guided_backprop" and not is_prepared(model):
            work = prepare_for_guided_backprop(model, x[:1])
            preparation += (4.0 if getattr(work, PREPARED_ATTRIBUTE).functional_converted else 3.0) / batch
        if spec.base == "gradcam":
            if config.gradcam_layer is None:
                layer_name = find_gradcam_layer(model, x[:1])
                preparation += 1.0 / batch
            else:
                layer_name = config.gradcam_layer
            try:
                layer = model.get_submodule(layer_name)
            except AttributeError as error:
                raise ValueError(f"Grad-CAM layer {layer_name!r} is not a module of the model") from error
        with saliency_mode(work):
            attributions, delta = _run(spec, work, x, resolved, config, layer)
    attributions = attributions.float()
    relative = None
    if spec.base == "integrated_gradients" and not spec.smoothed:
        relative = _relative_delta(attributions, delta)
        if np.nanmax(relative, initial=0.0) > config.ig_relative_delta_warning:
            logger.warning(
                "integrated gradients did not converge: relative delta %s exceeds %.3g with %d steps; raise ig_steps",
                np.round(relative, 4).tolist(), config.ig_relative_delta_warning, config.ig_steps,
            )
    maps = _reduce(spec, attributions)
    if not bool(torch.isfinite(maps).all()):
        raise FloatingPointError(f"{method} produced non-finite saliency values")
    seconds = time.perf_counter() - started
    logger.info("%s saliency for %d image(s), %s: %.2f s", method, batch, resolved.description, seconds)
    return SaliencyResult(
        maps=maps.cpu().numpy().astype(np.float32),
        attributions=attributions.cpu().numpy().astype(np.float32),
        method=method,
        signed=spec.signed,
        target=resolved.description,
        cost_forward_equivalents=cost_forward_equivalents(method, config),
        preparation_forward_equivalents=preparation,
        seconds=seconds,
        delta=None if delta is None else delta.cpu().numpy().astype(np.float32),
        relative_delta=relative,
        layer=layer_name,
    )
