"""Model surgery so that captum's guided backprop guides every rectifier.

Guided backpropagation (Springenberg et al. 2014, "Striving for simplicity")
passes a gradient backwards through a ReLU only where both the forward input and
the incoming gradient are positive. captum's ``GuidedBackprop`` implements this
with hooks on ``nn.ReLU`` *modules* only: a functional ``F.relu`` in ``forward``
silently stays a plain gradient, and in-place ReLUs have broken backward hooks
(reference §5.7, §5.8; captum #914, PR #979). :func:`prepare_for_guided_backprop`
therefore works on a deep copy and

* sets ``inplace=False`` on every ``nn.ReLU`` (MONAI DenseNet121 builds
  ``nn.ReLU(inplace=True)`` throughout);
* wraps the other piecewise-linear rectifiers — ``nn.LeakyReLU`` (MONAI
  BasicUNet's default, slope 0.1), ``nn.PReLU`` (MONAI UNet's default),
  ``nn.RReLU`` and ``nn.ReLU6`` — in :class:`GuidedRectifier`, an ``nn.ReLU``
  subclass that captum hooks but whose forward is the original activation. The
  guided rule then keeps the activation's true local derivative (1, or the
  negative slope below zero) and drops negative gradient signals. Without this,
  guided backprop on BasicUNet is *identical* to the vanilla gradient;
* converts functional ``relu``/``relu_``/``leaky_relu`` calls into modules by
  ``torch.fx`` tracing (torchxrayvision's DenseNet uses ``F.relu`` in forward).

It then checks, with one forward pass of an example image, that no functional
rectifier is left, that at least one guided module runs, and that the copy's
output equals the original's. Smooth activations (ELU, GELU, SiLU, …) have no
guided rule and are left as they are, with a logged warning.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from candor.errors import CandorError
from candor.saliency.modes import saliency_mode

logger = logging.getLogger(__name__)

#: Marker attribute set on a prepared copy; its value is the :class:`SurgeryReport`.
PREPARED_ATTRIBUTE = "candor_guided_backprop_surgery"

_FUNCTIONAL_RELUS: frozenset[Callable] = frozenset(
    {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
)
_FUNCTIONAL_LEAKY: frozenset[Callable] = frozenset({F.leaky_relu, F.leaky_relu_})
_WRAPPED_TYPES: tuple[type[nn.Module], ...] = (nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ReLU6)
_UNGUIDED_TYPES: tuple[type[nn.Module], ...] = (
    nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Hardswish,
)


class GuidedBackpropUnsupported(CandorError):
    """The model cannot be made safe for guided backprop; the reason names what is left."""


class GuidedRectifier(nn.ReLU):
    """A rectifier that captum's guided backprop recognises as a ReLU.

    Subclassing ``nn.ReLU`` is what makes captum hook it; ``forward`` is the
    wrapped activation (e.g. LeakyReLU), so the model's output is unchanged.
    """

    def __init__(self, activation: nn.Module):
        super().__init__(inplace=False)
        if hasattr(activation, "inplace"):
            activation.inplace = False
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x)

    def extra_repr(self) -> str:
        return ""


@dataclass(frozen=True)
class SurgeryReport:
    """What :func:`prepare_for_guided_backprop` changed, for logs and the docs."""

    relu_modules: int
    inplace_disabled: int
    wrapped: dict[str, int] = field(default_factory=dict)
    functional_converted: int = 0
    unguided: dict[str, int] = field(default_factory=dict)
    guided_calls: int = 0


def _swap_modules(model: nn.Module) -> tuple[int, int, dict[str, int], dict[str, int]]:
    relus = inplace = 0
    wrapped: dict[str, int] = {}
    unguided: dict[str, int] = {}
    for parent in list(model.modules()):
        if isinstance(parent, GuidedRectifier):
            continue
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                relus += 1
                if child.inplace:
                    child.inplace = False
                    inplace += 1
            elif isinstance(child, _WRAPPED_TYPES):
                setattr(parent, name, GuidedRectifier(child))
                wrapped[type(child).__name__] = wrapped.get(type(child).__name__, 0) + 1
            elif isinstance(child, _UNGUIDED_TYPES):
                unguided[type(child).__name__] = unguided.get(type(child).__name__, 0) + 1
    return relus, inplace, wrapped, unguided


class _RectifierCensus(TorchFunctionMode):
    """Counts functional rectifier calls made outside ``nn.ReLU`` modules."""

    def __init__(self, depth: list[int]):
        super().__init__()
        self.depth = depth
        self.functional = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch protocol
        if self.depth[0] == 0 and (func in _FUNCTIONAL_RELUS or func in _FUNCTIONAL_LEAKY):
            self.functional += 1
        return func(*args, **(kwargs or {}))


def rectifier_census(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int, torch.Tensor]:
    """Run ``model`` once (eval, no grad) and count rectifier calls.

    Returns (functional relu/leaky_relu calls outside ReLU modules, calls of
    ``nn.ReLU`` modules including :class:`GuidedRectifier`, the output).
    """
    depth = [0]
    module_calls = [0]

    def enter(_module: nn.Module, _inputs: tuple) -> None:
        depth[0] += 1
        module_calls[0] += 1

    def leave(_module: nn.Module, _inputs: tuple, _output: object) -> None:
        depth[0] -= 1

    handles = []
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    census = _RectifierCensus(depth)
    try:
        with saliency_mode(model), torch.no_grad(), census:
            output = model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return census.functional, module_calls[0], output


def _functional_kind(node: torch.fx.Node) -> str | None:
    if node.op == "call_function" and node.target in _FUNCTIONAL_RELUS:
        return "relu"
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return "relu"
    if node.op == "call_function" and node.target in _FUNCTIONAL_LEAKY:
        return "leaky_relu"
    return None


def _convert_functional(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace functional relu/leaky_relu calls by modules via ``torch.fx`` tracing."""
    try:
        graph_module = torch.fx.symbolic_trace(model)
    except Exception as error:  # fx raises many types (TraceError, TypeError, …) for untraceable code
        raise GuidedBackpropUnsupported(
            f"{type(model).__name__} calls a functional ReLU in forward and cannot be traced by torch.fx "
            f"to replace it with a module ({type(error).__name__}: {error}); rewrite the model to use nn.ReLU"
        ) from error
    converted = 0
    for node in list(graph_module.graph.nodes):
        kind = _functional_kind(node)
        if kind is None:
            continue
        source = node.args[0] if node.args else node.kwargs["input"]
        if kind == "relu":
            module: nn.Module = nn.ReLU()
        else:
            slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
            module = GuidedRectifier(nn.LeakyReLU(float(slope)))
        name = f"candor_guided_{kind}_{converted}"
        graph_module.add_submodule(name, module)
        with graph_module.graph.inserting_after(node):
            replacement = graph_module.graph.call_module(name, args=(source,))
        node.replace_all_uses_with(replacement)
        graph_module.graph.erase_node(node)
        converted += 1
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.train(model.training)
    return graph_module, converted


def is_prepared(model: nn.Module) -> bool:
    """Whether ``model`` came out of :func:`prepare_for_guided_backprop`."""
    return isinstance(getattr(model, PREPARED_ATTRIBUTE, None), SurgeryReport)


def prepare_for_guided_backprop(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` in which every rectifier is a non-inplace ``nn.ReLU`` module.

    ``example_input`` (one or a few images) is run through the copy to find
    functional rectifiers and to check that the copy computes the same output
    as ``model``. The original model is not modified. Raises
    :class:`GuidedBackpropUnsupported` when a functional rectifier cannot be
    converted, when no rectifier runs at all (guided backprop would equal the
    plain gradient), or when the copy's output differs from the original's.
    The :class:`SurgeryReport` is stored on the copy as ``PREPARED_ATTRIBUTE``.
    """
    if is_prepared(model):
        return model
    with saliency_mode(model), torch.no_grad():
        reference = model(example_input)
    prepared = copy.deepcopy(model)
    relus, inplace, wrapped, unguided = _swap_modules(prepared)
    functional, guided_calls, _ = rectifier_census(prepared, example_input)
    converted = 0
    if functional:
        prepared, converted = _convert_functional(prepared)
        functional, guided_calls, _ = rectifier_census(prepared, example_input)
        if functional:
            raise GuidedBackpropUnsupported(
                f"{functional} functional ReLU call(s) remain after torch.fx conversion "
                "(e.g. inside a nested function fx does not trace); guided backprop would treat them as plain gradients"
            )
    if guided_calls == 0:
        raise GuidedBackpropUnsupported(
            f"{type(model).__name__} runs no ReLU-type activation; guided backprop would equal the vanilla gradient"
        )
    with saliency_mode(prepared), torch.no_grad():
        output = prepared(example_input)
    if not torch.allclose(output, reference, rtol=1e-5, atol=1e-6):
        raise GuidedBackpropUnsupported(
            "the surgically prepared copy computes a different output from the original model "
            f"(max abs difference {float((output - reference).abs().max()):.3g}); "
            "refusing to explain a different function"
        )
    if unguided:
        logger.warning("guided backprop leaves these activations unguided (no guided rule exists): %s", unguided)
    report = SurgeryReport(relus, inplace, wrapped, converted, unguided, guided_calls)
    setattr(prepared, PREPARED_ATTRIBUTE, report)
    logger.info("prepared %s for guided backprop: %s", type(model).__name__, report)
    return prepared
