"""Monte-Carlo-dropout inference: T seeded stochastic passes → uncertainty (see :mod:`candor.inference`)."""

from __future__ import annotations

import torch
from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.inference import infer
from candor.records import PreparedImage
from candor.settings import Settings


class MCDropoutInferenceOperator(Operator):
    """``prepared`` → ``inferred``: per task kind, mean probabilities and epistemic/aleatoric uncertainty.

    Dropout is on and batch-norm frozen only while sampling (:func:`candor.uncertainty.mc_dropout_mode`);
    the seed is the run's seed, so a re-run of the same study gives the same results.
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
        inferred = [infer(item, self.settings.mc_samples, self.settings.seed, self.device) for item in prepared]
        op_output.emit(inferred, self.OUTPUT)
