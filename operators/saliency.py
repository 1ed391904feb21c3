"""Saliency: which pixels drove each finding (gradient methods on the eval-mode network)."""

from __future__ import annotations

import logging

import torch
from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.explain import Explainer
from candor.records import ExplainedImage, InferredImage
from candor.settings import Settings

logger = logging.getLogger(__name__)


class SaliencyOperator(Operator):
    """``inferred`` → ``explained``: the configured saliency methods on each image's finding(s).

    Saliency runs in eval mode (dropout off) after MC sampling; the model's per-module
    modes are restored afterwards (:mod:`candor.explain`). Every image is passed on,
    with no maps when there is nothing to explain or no method is configured (overlays
    off means no maps are computed), because the writers downstream take explained images.
    """

    INPUT = "inferred"
    OUTPUT = "explained"

    def __init__(self, fragment: Fragment, *args, settings: Settings, device: torch.device, **kwargs):
        self.device = device
        self.explainer = Explainer(settings, None if settings.write_overlays else (), on_gpu=device.type == "cuda")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)
        spec.output(self.OUTPUT)

    def compute(self, op_input, op_output, context) -> None:
        explained: list[ExplainedImage] = []
        for inferred in op_input.receive(self.INPUT) or []:
            inferred: InferredImage
            item = self.explainer.explain_image(inferred, self.device)
            if item.maps:
                logger.info("%s: %d saliency map(s) in %.1f s (%.0f forward-pass equivalents): %s",
                            inferred.decoded.path.name, len(item.maps), sum(m.seconds for m in item.maps),
                            sum(m.cost_forward_equivalents for m in item.maps),
                            ", ".join(sorted({m.method for m in item.maps})))
            explained.append(item)
        op_output.emit(explained, self.OUTPUT)
