"""Saliency: which pixels drove each finding (gradient methods on the eval-mode network)."""

from __future__ import annotations

import logging

import torch
from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.explain import Explainer, segmentation_target
from candor.records import ExplainedImage, InferredImage
from candor.saliency import EmptyTargetRegion
from candor.settings import Settings

logger = logging.getLogger(__name__)


class SaliencyOperator(Operator):
    """``inferred`` → ``explained``: the configured saliency methods on each image's finding.

    Saliency runs in eval mode (dropout off) after MC sampling; the model's per-module
    modes are restored afterwards. An image with nothing found has no target to explain:
    it is logged and gets no saliency maps.
    """

    INPUT = "inferred"
    OUTPUT = "explained"

    def __init__(self, fragment: Fragment, *args, settings: Settings, device: torch.device, **kwargs):
        self.settings = settings
        self.device = device
        self.explainer = Explainer(settings, settings.saliency_method_list(on_gpu=device.type == "cuda"))
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)
        spec.output(self.OUTPUT)

    def compute(self, op_input, op_output, context) -> None:
        explained = []
        for inferred in op_input.receive(self.INPUT) or []:
            inferred: InferredImage
            target = segmentation_target(inferred.maps.mean_probability, self.settings.threshold)
            try:
                maps = self.explainer.explain(inferred.bundle, inferred.network_input.to(self.device), target)
            except EmptyTargetRegion:
                logger.info("%s: nothing segmented, so no saliency target", inferred.decoded.path.name)
                continue
            logger.info("%s: %d saliency map(s) in %.1f s (%.0f forward-pass equivalents): %s",
                        inferred.decoded.path.name, len(maps), sum(m.seconds for m in maps),
                        sum(m.cost_forward_equivalents for m in maps), ", ".join(m.method for m in maps))
            explained.append(ExplainedImage(inferred=inferred, maps=maps))
        op_output.emit(explained, self.OUTPUT)
