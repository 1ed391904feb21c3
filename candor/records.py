"""Typed records handed from one pipeline stage to the next (one per source image)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydicom.dataset import Dataset

from candor.bundle import ModelBundle
from candor.instances import InstanceAnalysis
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
    """MC-dropout results at working resolution (padding included; see ``geometry``).

    ``maps`` depends on the task kind: per pixel, (C, H, W) / (H, W), for segmentation and
    instances; per finding for classification, where each finding's sigmoid output p is
    taken as the two-class distribution (1 − p, p), so ``mean_probability`` is (2, F) and
    the entropy maps are (F,). ``instances`` (instance tasks only) holds the nuclei of the
    MC-mean prediction on the working grid, the count distribution over the samples and
    the per-nucleus confidence.
    """

    decoded: DecodedImage
    bundle: ModelBundle
    geometry: Geometry
    network_input: torch.Tensor
    maps: UncertaintyMaps
    seed: int
    instances: InstanceAnalysis | None = None


@dataclass(frozen=True)
class ExplainedImage:
    """Saliency maps (``candor.explain.SaliencyMap``) of one inferred image.

    ``regions`` (classification): per model label, the box (row_start, col_start,
    row_stop, col_stop) on the unpadded working grid around that finding's saliency peak.
    """

    inferred: InferredImage
    maps: list
    regions: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
