"""Settings of the saliency methods, validated when the object is built.

Defaults follow the papers and the reference cost model
(``shared/reference/uncertainty-and-saliency.md`` §6): integrated gradients with
50 Gauss-Legendre steps and a black (zero) baseline (Sundararajan et al. 2017),
SmoothGrad with 25 samples and noise of 15 % of the input's value range
(Smilkov et al. 2017 recommend 10–20 %). The batch sizes bound memory, not the
result: they only decide how many perturbed copies go through the model at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Integration rules captum's ``IntegratedGradients`` accepts.
IG_METHODS: tuple[str, ...] = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
)


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _require_finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SaliencyConfig:
    """How every saliency method is run; invalid values raise ``ValueError`` at construction."""

    ig_steps: int = 50
    """Integration steps of integrated gradients (captum ``n_steps``); at least 2."""
    ig_method: str = "gausslegendre"
    """Integration rule (captum ``method``); one of :data:`IG_METHODS`."""
    ig_baseline: float = 0.0
    """Constant baseline value of integrated gradients, in the model's input space.

    0.0 is a black image for inputs scaled to [0, 1]; for standardised inputs pass
    the standardised value of black instead.
    """
    ig_internal_batch_size: int = 8
    """Rows (example × step) per forward/backward pass of integrated gradients
    (captum ``internal_batch_size``); raised to the number of examples when smaller."""
    ig_relative_delta_warning: float = 0.05
    """Log a warning when |convergence delta| exceeds this fraction of |f(x) − f(baseline)|."""
    noise_fraction: float = 0.15
    """SmoothGrad noise σ as a fraction of the input's value range, in (0, 1]."""
    noise_range: float | None = None
    """Width of the value range that ``noise_fraction`` refers to.

    ``None``: each sample's own max − min. Give the data's nominal range (e.g. 1.0
    for images scaled to [0, 1]) to use the same σ for every image.
    """
    smoothgrad_samples: int = 25
    """Noisy copies averaged per image (captum ``nt_samples``); at least 1."""
    smoothgrad_batch_size: int = 4
    """Noisy copies per image evaluated together (captum ``nt_samples_batch_size``)."""
    gradcam_layer: str | None = None
    """Dotted module name of the Grad-CAM layer; ``None`` picks the last convolution
    (in execution order) whose output still has more than one spatial element."""
    seed: int = 0
    """Seed of the SmoothGrad noise; the global RNG state is saved and restored."""

    def __post_init__(self) -> None:
        _require_int("ig_steps", self.ig_steps, 2)
        if self.ig_method not in IG_METHODS:
            raise ValueError(f"ig_method must be one of {', '.join(IG_METHODS)}, got {self.ig_method!r}")
        _require_finite("ig_baseline", self.ig_baseline)
        _require_int("ig_internal_batch_size", self.ig_internal_batch_size, 1)
        if _require_finite("ig_relative_delta_warning", self.ig_relative_delta_warning) <= 0.0:
            raise ValueError(f"ig_relative_delta_warning must be positive, got {self.ig_relative_delta_warning}")
        fraction = _require_finite("noise_fraction", self.noise_fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"noise_fraction must lie in (0, 1], got {self.noise_fraction}")
        if self.noise_range is not None and _require_finite("noise_range", self.noise_range) <= 0.0:
            raise ValueError(f"noise_range must be positive, got {self.noise_range}")
        _require_int("smoothgrad_samples", self.smoothgrad_samples, 1)
        _require_int("smoothgrad_batch_size", self.smoothgrad_batch_size, 1)
        if self.gradcam_layer is not None and (not isinstance(self.gradcam_layer, str) or not self.gradcam_layer):
            raise ValueError(f"gradcam_layer must be a non-empty module name or None, got {self.gradcam_layer!r}")
        _require_int("seed", self.seed, 0)
        if self.seed >= 2**63:
            raise ValueError(f"seed must fit in 64 bits, got {self.seed}")
