"""Cost of each saliency method in forward-pass equivalents (reference §6).

Unit F = one full-resolution forward pass of one image. A backward pass with
respect to the input only (parameters frozen, ``torch.autograd.grad`` as captum
does it) costs about 1F, so one gradient map is 2F — measured with
``torch.utils.flop_counter`` (reference §5.3; ``tests/saliency/test_cost.py``).
Per image and per explained target:

* gradient, guided backprop, Grad-CAM: 2F (Grad-CAM's backward stops at its
  layer, so 2F is an upper bound);
* integrated gradients: 2 · ig_steps + 2 F — one forward and backward per step,
  plus the forward passes at x and at the baseline that captum spends on the
  convergence delta (measured; the reference table's 100F for 50 steps omits
  those 2F);
* SmoothGrad of a method: smoothgrad_samples × that method's cost.

One-off preparation passes (the predicted-mask forward of a segmentation
target, guided-backprop surgery checks, the Grad-CAM layer search) are not
part of this model; :class:`candor.saliency.methods.SaliencyResult` reports them
separately.
"""

from __future__ import annotations

from candor.saliency.config import SaliencyConfig
from candor.saliency.registry import method_spec

_BASE_COST = {"gradient": 2.0, "guided_backprop": 2.0, "gradcam": 2.0}


def cost_forward_equivalents(method: str, config: SaliencyConfig | None = None) -> float:
    """Forward-pass equivalents per image and target of ``method`` under ``config``."""
    config = config or SaliencyConfig()
    spec = method_spec(method)
    if spec.base == "integrated_gradients":
        base = 2.0 * config.ig_steps + 2.0
    else:
        base = _BASE_COST[spec.base]
    return base * config.smoothgrad_samples if spec.smoothed else base
