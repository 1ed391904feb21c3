"""Model folders in MONAI-bundle style, loaded as eager ``nn.Module``s.

Layout of one model folder (``models/<task>/``)::

    configs/metadata.json   name, version, labels, preprocessing, task, measured figures
    configs/network.json    {"_target_": "monai.networks.nets.BasicUNet", ...kwargs}
    models/model.pt         state_dict of that network (weights only)
    docs/README.md          the model card

Saliency needs the eager model (guided backprop and Grad-CAM hook modules, which
TorchScript does not allow), so weights and the network definition are shipped
rather than a TorchScript export. The network definition is resolved with MONAI's
``ConfigParser`` so that a bundle needs no custom code; only MONAI and torch
targets are allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from candor.errors import ModelBundleError

_ALLOWED_TARGET_PREFIXES = ("monai.networks.nets.", "torch.nn.")


@dataclass(frozen=True)
class Preprocessing:
    """How an image is brought to the network's input (see :mod:`candor.preprocess`)."""

    working_size: int
    """Long side, in pixels, that the image is resized to before inference."""
    size_multiple: int = 16
    """Spatial sizes are padded up to a multiple of this (the U-Net's down-sampling factor)."""
    channels: str = "RGB"
    """``RGB`` or ``MONOCHROME`` (after the presentation LUT: higher is brighter)."""
    colour_to_grey: str = "luminance"
    """How a MONOCHROME model reads a colour source: ``luminance`` (ITU-R BT.601 weights) or ``max``
    (the brightest channel: a fluorescence stain shows in one channel on black, e.g. DAPI in blue)."""

    def __post_init__(self) -> None:
        if self.channels not in ("RGB", "MONOCHROME"):
            raise ValueError(f"preprocessing.channels must be RGB or MONOCHROME, got {self.channels!r}")
        if self.colour_to_grey not in ("luminance", "max"):
            raise ValueError(f"preprocessing.colour_to_grey must be luminance or max, got {self.colour_to_grey!r}")


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model folder."""

    path: Path
    name: str
    version: str
    task: str
    labels: dict[int, str]
    preprocessing: Preprocessing
    network: nn.Module
    metadata: dict[str, Any] = field(repr=False)

    @property
    def algorithm_name(self) -> str:
        return self.name


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelBundleError(f"model folder {path.parent.parent}: missing {path.relative_to(path.parent.parent)}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ModelBundleError(f"cannot read {path}: {error}") from None


def build_network(network_config: dict[str, Any], source: str = "network.json") -> nn.Module:
    """Instantiate the network described by a ``{"_target_": ..., **kwargs}`` mapping."""
    target = network_config.get("_target_")
    if not isinstance(target, str) or not target.startswith(_ALLOWED_TARGET_PREFIXES):
        raise ModelBundleError(
            f"{source}: _target_ must name a MONAI network or torch.nn module, got {target!r}"
        )
    try:
        network = ConfigParser({"network": network_config}).get_parsed_content("network")
    except Exception as error:  # ConfigParser raises many types; re-raise as one with the file named
        raise ModelBundleError(f"{source}: cannot build {target}: {error}") from error
    if not isinstance(network, nn.Module):
        raise ModelBundleError(f"{source}: {target} did not produce a torch.nn.Module")
    return network


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> ModelBundle:
    """Load a model folder; raises :class:`ModelBundleError` naming the file at fault."""
    root = Path(path)
    if not root.is_dir():
        raise ModelBundleError(f"model folder {root} does not exist")
    metadata = _read_json(root / "configs" / "metadata.json")
    network_config = _read_json(root / "configs" / "network.json")
    network = build_network(network_config, source=str(root / "configs" / "network.json"))
    weights = root / "models" / "model.pt"
    if not weights.is_file():
        raise ModelBundleError(f"model folder {root}: missing models/model.pt")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as error:
        raise ModelBundleError(f"{weights}: weights do not fit the network in configs/network.json: {error}") from None
    try:
        labels = {int(k): str(v) for k, v in metadata["labels"].items()}
        prep = Preprocessing(**metadata["preprocessing"])
        bundle = ModelBundle(
            path=root,
            name=str(metadata["name"]),
            version=str(metadata["version"]),
            task=str(metadata["task"]),
            labels=labels,
            preprocessing=prep,
            network=network.to(device).eval(),
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelBundleError(f"{root / 'configs' / 'metadata.json'}: invalid or missing field: {error}") from None
    return bundle


def save_bundle(
    path: str | Path,
    network: nn.Module,
    network_config: dict[str, Any],
    metadata: dict[str, Any],
) -> Path:
    """Write ``network``'s weights and its configuration as a model folder (card written separately)."""
    root = Path(path)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "network.json").write_text(json.dumps(network_config, indent=2) + "\n", encoding="utf-8")
    (root / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    state = {key: value.detach().cpu() for key, value in network.state_dict().items()}
    torch.save(state, root / "models" / "model.pt")
    return root
