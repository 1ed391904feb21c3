"""Bring each decoded image to its task model's working resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.bundle import ModelBundle, load_bundle
from candor.preprocess import to_network_input
from candor.records import DecodedImage, PreparedImage

logger = logging.getLogger(__name__)


class PreprocessOperator(Operator):
    """``images`` → ``prepared``: loads each task's model folder once and resizes/normalises."""

    INPUT = "images"
    OUTPUT = "prepared"

    def __init__(self, fragment: Fragment, *args, models_path: Path, device: torch.device, **kwargs):
        self.models_path = Path(models_path)
        self.device = device
        self._bundles: dict[str, ModelBundle] = {}
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)
        spec.output(self.OUTPUT)

    def bundle_for(self, folder: str) -> ModelBundle:
        if folder not in self._bundles:
            self._bundles[folder] = load_bundle(self.models_path / folder, device=self.device)
            logger.info("loaded model %s %s from %s", self._bundles[folder].name, self._bundles[folder].version,
                        self.models_path / folder)
        return self._bundles[folder]

    def compute(self, op_input, op_output, context) -> None:
        images: list[DecodedImage] = op_input.receive(self.INPUT) or []
        prepared = []
        for decoded in images:
            bundle = self.bundle_for(decoded.task.model_folder)
            tensor, geometry = to_network_input(decoded.image, bundle.preprocessing)
            prepared.append(PreparedImage(decoded=decoded, bundle=bundle, network_input=tensor, geometry=geometry))
        op_output.emit(prepared, self.OUTPUT)
