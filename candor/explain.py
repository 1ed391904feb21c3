"""Saliency maps for one inferred image: which pixels drove the finding.

Runs the configured methods of :mod:`candor.saliency` in eval mode (dropout off; the
MC-dropout state is restored afterwards) on the network input at working resolution.

* Segmentation (and instances): the foreground logits summed over the MC-mean mask that
  the SEG also reports (for instances, every reported nucleus), so the map explains
  exactly the finding that was written.
* Classification: each finding's logit. Every finding gets a cheap Grad-CAM map
  (Selvaraju et al. 2017; the vanilla gradient when the model names no Grad-CAM layer)
  whose peak region becomes the finding's box in the SR; the configured methods run for
  the ``saliency_top_findings`` most probable findings, whose maps become overlays.

A method that failed the model-parameter randomisation test (Adebayo et al. 2018) when
the model was evaluated carries that verdict from the model folder into every map it draws.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from candor.bundle import ModelBundle
from candor.records import ExplainedImage, InferredImage
from candor.saliency import (
    ClassTarget,
    EmptyTargetRegion,
    SaliencyConfig,
    SegmentationTarget,
    Target,
    compute_saliency,
    method_spec,
    peak_region,
    prepare_for_guided_backprop,
)
from candor.settings import Settings
from candor.tasks import TASKS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaliencyMap:
    """One method's map at working resolution (padded like the network input)."""

    method: str
    values: np.ndarray
    signed: bool
    cost_forward_equivalents: float
    seconds: float
    sanity: str | None
    """The model's randomisation-test verdict for this method, when the model card has one."""
    finding: str | None = None
    """Classification: the model label of the explained finding; None for a segmentation target."""


def saliency_config(settings: Settings, bundle: ModelBundle) -> SaliencyConfig:
    return SaliencyConfig(
        ig_steps=settings.saliency_ig_steps,
        ig_internal_batch_size=settings.saliency_batch_size,
        smoothgrad_samples=settings.saliency_smoothgrad_samples,
        smoothgrad_batch_size=settings.saliency_batch_size,
        noise_fraction=settings.saliency_noise_fraction,
        noise_range=1.0,  # inputs are scaled to [0, 1]; the same σ for every image
        gradcam_layer=bundle.metadata.get("gradcam_layer"),
        seed=settings.seed,
    )


def bundle_kind(bundle: ModelBundle) -> str | None:
    """The kind of the task the model folder serves (``metadata.json`` ``task``), None if it names no known task."""
    task = TASKS.get(bundle.task)
    return task.kind if task is not None else None


def sanity_verdict(bundle: ModelBundle, method: str) -> str | None:
    """The randomisation-test verdict stored in the model folder's metadata, if any."""
    entry = bundle.metadata.get("saliency_sanity", {}).get(method)
    return entry.get("verdict") if isinstance(entry, dict) else None


class Explainer:
    """Computes saliency maps; keeps one guided-backprop copy of each model (ReLU surgery is costly).

    ``methods`` None picks them per image from the settings (``auto`` depends on the device
    and the task kind); a tuple fixes them, ``()`` for none.
    """

    def __init__(self, settings: Settings, methods: tuple[str, ...] | None = None, on_gpu: bool = False):
        self.settings = settings
        self.methods = methods
        self.on_gpu = on_gpu
        self._guided: dict[int, nn.Module] = {}

    def methods_for(self, task_kind: str) -> tuple[str, ...]:
        if self.methods is not None:
            return self.methods
        return self.settings.saliency_method_list(on_gpu=self.on_gpu, task_kind=task_kind)

    def _model_for(self, bundle: ModelBundle, method: str, example: torch.Tensor) -> nn.Module:
        if method_spec(method).base != "guided_backprop":
            return bundle.network
        key = id(bundle.network)
        if key not in self._guided:
            self._guided[key] = prepare_for_guided_backprop(bundle.network, example)
        return self._guided[key]

    def explain(self, bundle: ModelBundle, network_input: torch.Tensor, target: Target,
                methods: tuple[str, ...] | None = None, finding: str | None = None) -> list[SaliencyMap]:
        """Maps of ``methods`` (default: the configured ones) for ``target``."""
        config = saliency_config(self.settings, bundle)
        maps = []
        for method in self.methods_for(bundle_kind(bundle)) if methods is None else methods:
            started = time.perf_counter()
            model = self._model_for(bundle, method, network_input)
            result = compute_saliency(model, network_input, target, method, config)
            maps.append(SaliencyMap(
                method=method, values=result.maps[0], signed=result.signed,
                cost_forward_equivalents=result.cost_forward_equivalents,
                seconds=time.perf_counter() - started, sanity=sanity_verdict(bundle, method), finding=finding))
        return maps

    def explain_image(self, inferred: InferredImage, device: torch.device) -> ExplainedImage:
        """The maps (and, for classification, the finding regions) of one inferred image."""
        network_input = inferred.network_input.to(device)
        methods = self.methods_for(inferred.decoded.task.kind)
        if inferred.decoded.task.kind == "classification":
            return self._explain_findings(inferred, network_input, methods)
        if inferred.instances is not None:
            target = instances_target(inferred.instances.labels, inferred.geometry.padded_shape)
        else:
            target = segmentation_target(inferred.maps.mean_probability, self.settings.threshold)
        try:
            maps = self.explain(inferred.bundle, network_input, target, methods) if methods else []
        except EmptyTargetRegion:
            logger.info("%s: nothing segmented, so no saliency target", inferred.decoded.path.name)
            maps = []
        return ExplainedImage(inferred=inferred, maps=maps)

    def _explain_findings(self, inferred: InferredImage, network_input: torch.Tensor,
                          methods: tuple[str, ...]) -> ExplainedImage:
        bundle = inferred.bundle
        probability = inferred.maps.mean_probability[1]
        region_method = "gradcam" if bundle.metadata.get("gradcam_layer") else "gradient"
        rows, cols = inferred.geometry.resized_shape
        regions, maps = {}, []
        for index, label in sorted(bundle.labels.items()):
            peak = self.explain(bundle, network_input, ClassTarget(index), (region_method,), label)[0]
            regions[label] = peak_region(peak.values[:rows, :cols])
        ranked = sorted(bundle.labels, key=lambda index: -float(probability[index]))
        for index in ranked[: self.settings.saliency_top_findings] if methods else []:
            maps += self.explain(bundle, network_input, ClassTarget(index), methods, bundle.labels[index])
        return ExplainedImage(inferred=inferred, maps=maps, regions=regions)


def segmentation_target(mean_probability: np.ndarray, threshold: float, foreground_class: int = 1) -> Target:
    """The foreground logits summed over the thresholded MC-mean mask (the mask the SEG reports)."""
    region = torch.from_numpy(mean_probability[foreground_class] >= threshold)
    return SegmentationTarget(class_index=foreground_class, region=region)


def instances_target(labels: np.ndarray, padded_shape: tuple[int, int], foreground_class: int = 1) -> Target:
    """The nucleus-interior logits summed over every reported nucleus (the SEG's mask, on the padded grid)."""
    region = np.zeros(padded_shape, dtype=bool)
    region[: labels.shape[0], : labels.shape[1]] = labels > 0
    return SegmentationTarget(class_index=foreground_class, region=torch.from_numpy(region))
