"""Where the model looked: gradient saliency maps, their cost and their sanity checks.

The pure core of Candor's saliency capability (no DICOM, no operators):

* :func:`compute_saliency` — one call for every method in :data:`METHODS`
  (vanilla gradient, guided backprop, integrated gradients, SmoothGrad of each,
  Grad-CAM), built on captum, run in eval mode on input gradients only;
* :class:`ClassTarget` / :class:`SegmentationTarget` — what is explained;
* :func:`prepare_for_guided_backprop` — ReLU surgery that guided backprop needs;
* :func:`cost_forward_equivalents` — the reference cost model;
* :func:`randomisation_test`, :func:`pointing_game`, :func:`mass_inside` —
  sanity and localisation checks (Adebayo et al. 2018; Zhang et al. 2016).

See ``docs/saliency.md``.
"""

from candor.saliency.config import IG_METHODS, SaliencyConfig
from candor.saliency.cost import cost_forward_equivalents
from candor.saliency.localisation import mass_inside, peak_region, pointing_game
from candor.saliency.methods import SaliencyResult, compute_saliency, find_gradcam_layer, noise_sigmas
from candor.saliency.modes import saliency_mode
from candor.saliency.registry import METHODS, MethodSpec, method_spec
from candor.saliency.sanity import (
    RandomisationResult,
    RandomisationStep,
    randomisable_layers,
    randomisation_test,
    rank_correlation,
)
from candor.saliency.surgery import (
    GuidedBackpropUnsupported,
    GuidedRectifier,
    SurgeryReport,
    is_prepared,
    prepare_for_guided_backprop,
)
from candor.saliency.targets import (
    ClassTarget,
    EmptyTargetRegion,
    SegmentationTarget,
    Target,
    predicted_region,
    resolve_target,
)

__all__ = [
    "IG_METHODS",
    "METHODS",
    "ClassTarget",
    "EmptyTargetRegion",
    "GuidedBackpropUnsupported",
    "GuidedRectifier",
    "MethodSpec",
    "RandomisationResult",
    "RandomisationStep",
    "SaliencyConfig",
    "SaliencyResult",
    "SegmentationTarget",
    "SurgeryReport",
    "Target",
    "compute_saliency",
    "cost_forward_equivalents",
    "find_gradcam_layer",
    "is_prepared",
    "mass_inside",
    "method_spec",
    "noise_sigmas",
    "peak_region",
    "pointing_game",
    "predicted_region",
    "prepare_for_guided_backprop",
    "randomisable_layers",
    "randomisation_test",
    "rank_correlation",
    "resolve_target",
    "saliency_mode",
]
