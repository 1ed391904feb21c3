"""Monte-Carlo-dropout inference for one prepared image, by task kind.

T seeded stochastic passes (dropout on, batch-norm frozen; Gal & Ghahramani 2016), then
the entropy decomposition of :mod:`candor.uncertainty`:

* ``segmentation`` — softmax per pixel → per-pixel mean probability and uncertainty maps;
* ``classification`` — one sigmoid per finding (multi-label). Each finding's p is the
  two-class distribution (1 − p, p), so every finding gets its own mean probability, MC
  standard deviation, and epistemic/aleatoric uncertainty in nats (bounded by ln 2);
* ``instances`` — softmax per pixel (background / interior / boundary), then every
  sample is split into nuclei (:func:`candor.instances.analyse_instances`): the count of
  each sample gives the count's mean, standard deviation and calibrated interval.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from candor.errors import ModelBundleError
from candor.instances import InstanceAnalysis, PostProcessing, analyse_instances
from candor.records import InferredImage, PreparedImage
from candor.uncertainty import as_two_class, decompose, mc_sample

logger = logging.getLogger(__name__)


def resolve_device(setting: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.softmax(dim=1)


def _sigmoid(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits)


def classification_samples(model: torch.nn.Module, image: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """(T, 2, F) two-class probabilities of F sigmoid findings over T MC-dropout passes."""
    sigmoid = mc_sample(model, image, samples, seed, to_probabilities=_sigmoid)
    if sigmoid.ndim != 2:
        raise ValueError(f"a classification model must output (1, F) logits; got samples of shape {tuple(sigmoid.shape)}")
    return as_two_class(sigmoid[:, None, :], dim=1)


def instance_analysis(prepared: PreparedImage, probabilities: torch.Tensor, epistemic: np.ndarray) -> InstanceAnalysis:
    """Nuclei, count distribution and per-nucleus confidence on the (unpadded) working grid."""
    metadata = prepared.bundle.metadata.get("postprocessing")
    if not isinstance(metadata, dict):
        raise ModelBundleError(f"{prepared.bundle.path}: an instance model needs 'postprocessing' in metadata.json")
    try:
        params = PostProcessing.from_metadata(metadata)
    except (TypeError, ValueError) as error:
        raise ModelBundleError(f"{prepared.bundle.path}: metadata.json postprocessing: {error}") from None
    level = float(metadata.get("count_interval_level", 0.9))
    scale = float(metadata.get("count_interval_scale", 1.0))
    rows, cols = prepared.geometry.resized_shape
    return analyse_instances(probabilities[..., :rows, :cols].numpy(), epistemic[:rows, :cols], params, level, scale)


def infer(prepared: PreparedImage, samples: int, seed: int, device: torch.device) -> InferredImage:
    """Run MC-dropout inference on ``prepared`` as its task kind requires."""
    kind = prepared.decoded.task.kind
    network, image = prepared.bundle.network, prepared.network_input.to(device)
    started = time.perf_counter()
    analysis = None
    if kind == "classification":
        maps = decompose(classification_samples(network, image, samples, seed))
    else:
        probabilities = mc_sample(network, image, samples, seed, to_probabilities=_softmax)
        maps = decompose(probabilities)
        if kind == "instances":
            analysis = instance_analysis(prepared, probabilities, maps.epistemic)
        del probabilities
    logger.info("%s: %d MC-dropout passes at %s in %.1f s", prepared.decoded.path.name, maps.samples,
                "×".join(map(str, prepared.geometry.padded_shape)), time.perf_counter() - started)
    return InferredImage(decoded=prepared.decoded, bundle=prepared.bundle, geometry=prepared.geometry,
                         network_input=prepared.network_input, maps=maps, seed=seed, instances=analysis)
