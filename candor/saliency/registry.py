"""The saliency methods Candor offers, by name, with the facts the rest of the code needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """One saliency method: its captum base algorithm, smoothing, channel reduction and paper."""

    name: str
    base: str
    """``gradient``, ``guided_backprop``, ``integrated_gradients`` or ``gradcam``."""
    smoothed: bool
    """SmoothGrad over the base method (Smilkov et al. 2017)."""
    reduction: str
    """``max_abs`` (max |·| over channels), ``sum`` (signed sum over channels) or ``cam``."""
    signed: bool
    """Whether the (H, W) map can be negative."""
    paper: str


_GRADIENT = "Simonyan, Vedaldi & Zisserman 2013, arXiv:1312.6034"
_GBP = "Springenberg, Dosovitskiy, Brox & Riedmiller 2014, arXiv:1412.6806"
_IG = "Sundararajan, Taly & Yan 2017, arXiv:1703.01365"
_SG = "Smilkov, Thorat, Kim, Viégas & Wattenberg 2017, arXiv:1706.03825"
_GRADCAM = "Selvaraju et al. 2017, arXiv:1610.02391"

#: Every method :func:`candor.saliency.compute_saliency` accepts, by name.
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("gradient", "gradient", False, "max_abs", False, _GRADIENT),
        MethodSpec("guided_backprop", "guided_backprop", False, "max_abs", False, _GBP),
        MethodSpec("integrated_gradients", "integrated_gradients", False, "sum", True, _IG),
        MethodSpec("smoothgrad_gradient", "gradient", True, "max_abs", False, f"{_SG}; {_GRADIENT}"),
        MethodSpec("smoothgrad_guided_backprop", "guided_backprop", True, "max_abs", False, f"{_SG}; {_GBP}"),
        MethodSpec("smoothgrad_integrated_gradients", "integrated_gradients", True, "sum", True, f"{_SG}; {_IG}"),
        MethodSpec("gradcam", "gradcam", False, "cam", False, _GRADCAM),
    )
}


def method_spec(method: str) -> MethodSpec:
    """The :class:`MethodSpec` named ``method``; ``ValueError`` listing the valid names otherwise."""
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}") from None
