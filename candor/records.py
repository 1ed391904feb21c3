"""Typed records handed from one pipeline stage to the next (one per source image)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydicom.dataset import Dataset

from candor.bundle import ModelBundle
from candor.preprocess import Geometry
from candor.tasks import Task
from candor.uncertainty import UncertaintyMaps


@dataclass(frozen=True)
class DecodedImage:
    """A source image decoded to 8 bits, with its header (pixel data dropped)."""

    task: Task
    path: Path
    source: Dataset
    image: np.ndarray


@dataclass(frozen=True)
class PreparedImage:
    """A decoded image brought to the network's working resolution."""

    decoded: DecodedImage
    bundle: ModelBundle
    network_input: torch.Tensor
    geometry: Geometry


@dataclass(frozen=True)
class InferredImage:
    """MC-dropout results at working resolution (padding included; see ``geometry``)."""

    decoded: DecodedImage
    bundle: ModelBundle
    geometry: Geometry
    network_input: torch.Tensor
    maps: UncertaintyMaps
    seed: int


@dataclass(frozen=True)
class ExplainedImage:
    """Saliency maps (``candor.explain.SaliencyMap``) of one inferred image."""

    inferred: InferredImage
    maps: list
