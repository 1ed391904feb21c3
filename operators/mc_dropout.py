"""Monte-Carlo-dropout inference: T seeded stochastic passes → uncertainty maps."""

from __future__ import annotations

import logging
import time

import torch
from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.records import InferredImage, PreparedImage
from candor.settings import Settings
from candor.uncertainty import decompose, mc_sample

logger = logging.getLogger(__name__)


class MCDropoutInferenceOperator(Operator):
    """``prepared`` → ``inferred``: mean probability, total, aleatoric and epistemic maps.

    Dropout is on and batch-norm frozen only while sampling (:func:`candor.uncertainty.mc_dropout_mode`);
    the seed is the run's seed, so a re-run of the same study gives the same maps.
    """

    INPUT = "prepared"
    OUTPUT = "inferred"

    def __init__(self, fragment: Fragment, *args, settings: Settings, device: torch.device, **kwargs):
        self.settings = settings
        self.device = device
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)
        spec.output(self.OUTPUT)

    def compute(self, op_input, op_output, context) -> None:
        prepared: list[PreparedImage] = op_input.receive(self.INPUT) or []
        inferred = []
        for item in prepared:
            started = time.perf_counter()
            probabilities = mc_sample(item.bundle.network, item.network_input.to(self.device),
                                      samples=self.settings.mc_samples, seed=self.settings.seed)
            maps = decompose(probabilities)
            logger.info("%s: %d MC-dropout passes at %s in %.1f s", item.decoded.path.name, maps.samples,
                        "×".join(map(str, item.geometry.padded_shape)), time.perf_counter() - started)
            inferred.append(InferredImage(decoded=item.decoded, bundle=item.bundle, geometry=item.geometry,
                                          network_input=item.network_input, maps=maps, seed=self.settings.seed))
        op_output.emit(inferred, self.OUTPUT)
