"""The model state a saliency call needs, entered and left without side effects.

Gradient saliency must run in eval mode: with dropout active two identical
integrated-gradients calls differ by ~40 % relative L2 (reference §5.4), and the
explained function would not be the model's deterministic prediction. Gradients
are taken with respect to the input only: freezing the parameters makes the
backward pass skip weight gradients, so a gradient map costs 2 forward-pass
equivalents instead of 3 (reference §5.3).

MONAI's saliency classes call ``model.eval()`` and restore only the top-level
flag, silently switching MC dropout off for later sampling (reference §5.2).
:func:`saliency_mode` instead records every module's ``training`` flag and every
parameter's ``requires_grad`` and restores them all in ``finally``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import torch
from torch import nn

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def saliency_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the body with ``model`` in eval mode, parameters frozen and autograd on.

    Autograd is switched on even inside a caller's ``torch.no_grad()`` or
    ``torch.inference_mode()``. On exit — normal or by exception — each module's
    previous ``training`` flag (e.g. an MC-dropout state set by
    :func:`candor.uncertainty.mc_dropout_mode`) and each parameter's previous
    ``requires_grad`` are put back.
    """
    training = {module: module.training for module in model.modules()}
    requires_grad = {parameter: parameter.requires_grad for parameter in model.parameters()}
    try:
        model.eval()
        for parameter in requires_grad:
            parameter.requires_grad_(False)
        with torch.inference_mode(False), torch.enable_grad():
            yield model
    finally:
        for module, was_training in training.items():
            module.training = was_training
        for parameter, needed_grad in requires_grad.items():
            parameter.requires_grad_(needed_grad)
        logger.debug("restored training flags of %d modules and %d parameters", len(training), len(requires_grad))
