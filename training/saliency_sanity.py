"""Measure whether each saliency method depends on what a model learned, and record it in the model folder.

Usage::

    python -m training.saliency_sanity --model models/chest_findings --images 8
    python -m training.saliency_sanity --model models/fundus_vessels --images 2 --crop 256

Method: the *cascading model-parameter randomisation test* of Adebayo et al. 2018
("Sanity checks for saliency maps", NeurIPS). The trained network's layers are
re-initialised step by step from the output towards the input (each step keeps the
earlier steps' layers random); after every step each method's maps are compared with
the trained network's maps by Spearman's rank correlation of |map| per image
(:func:`candor.saliency.randomisation_test`). A method whose maps still correlate with
the trained maps (final ρ ≥ ``--threshold``) once every layer is random explains the
image, not the model: it is "not model-sensitive", and the app prints that verdict on
its overlays (:func:`candor.explain.sanity_verdict`).

Inputs are N held-out SYNTHETIC images of the model's task (:data:`TASK_DATA`), preprocessed
by :func:`candor.preprocess.to_network_input`; the explained target is the app's:

chest: the logit of the present finding with the highest MC-mean probability (images without
a finding are skipped); fundus: vessel logits summed over the MC-mean mask p̄ ≥ 0.5
(:func:`candor.explain.segmentation_target`); nuclei: interior logits summed over the
post-processed nuclei (:func:`candor.explain.instances_target`).

Saliency settings are the app's (:func:`candor.explain.saliency_config`, default settings). A
cascade step may re-initialise a *group* of blocks (:data:`DEFAULT_CASCADES`) to keep the run
affordable on a CPU; after the last step no parameter is trained. Results replace
``configs/metadata.json`` → ``saliency_sanity`` and a section of ``docs/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from candor.bundle import ModelBundle, load_bundle
from candor.explain import instances_target, saliency_config, segmentation_target
from candor.instances import PostProcessing, instances_from_probabilities
from candor.preprocess import to_network_input
from candor.saliency import (
    METHODS,
    ClassTarget,
    GuidedBackpropUnsupported,
    RandomisationResult,
    SaliencyConfig,
    SegmentationTarget,
    Target,
    randomisation_test,
)
from candor.settings import Settings
from candor.uncertainty import mc_sample
from training.common import run_cli
from training.synth import chest, fundus, nuclei

logger = logging.getLogger("training.saliency_sanity")

SECTION_TITLE = "## Saliency sanity (model-parameter randomisation)"
#: A loader's result: the network input of one image and its target (class index or region), or None.
Item = Optional[tuple[torch.Tensor, Any]]
#: Cascades per network class, output end first; each step is a group of module names.
#: Blocks are grouped so that a step costs one pass of all methods (the cost of the test is
#: (steps + 1) × the methods' cost); every parameter is re-initialised by the last step.
DEFAULT_CASCADES: dict[str, tuple[tuple[str, ...], ...]] = {
    "DenseNet": (
        ("class_layers",),
        ("features.norm5", "features.denseblock3"),
        ("features.transition2", "features.denseblock2"),
        ("features.transition1", "features.denseblock1"),
        ("features.norm0", "features.conv0"),
    ),
    "BasicUNet": (
        ("final_conv",),
        ("upcat_1", "upcat_2"),
        ("upcat_3", "upcat_4"),
        ("down_4", "down_3"),
        ("down_2", "down_1"),
        ("conv_0",),
    ),
}


@dataclass(frozen=True)
class HeldOut:
    """A batch of held-out network inputs and the target the app would explain for each."""

    inputs: torch.Tensor
    target: Target
    keys: str
    description: str


class CascadeView(nn.Module):
    """``network`` plus one :class:`nn.ModuleList` per cascade step holding that step's blocks.

    The step lists share their modules with ``network`` (a deep copy keeps the sharing), so
    :func:`candor.saliency.randomisation_test` re-initialises a whole group of blocks when
    it is given the step's name (``steps.<i>``). The forward pass is ``network``'s.
    """

    def __init__(self, network: nn.Module, groups: Sequence[Sequence[str]]):
        super().__init__()
        self.network = network
        self.steps = nn.ModuleList(nn.ModuleList(network.get_submodule(n) for n in group) for group in groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def default_cascade(network: nn.Module) -> list[tuple[str, ...]]:
    """:data:`DEFAULT_CASCADES` for a known network class; else each top-level block, last first."""
    known = DEFAULT_CASCADES.get(type(network).__name__)
    if known is not None:
        return [tuple(group) for group in known]
    blocks = [(name,) for name, child in network.named_children() if any(True for _ in child.parameters())]
    return blocks[::-1] or [("",)]


def untouched_parameters(network: nn.Module, groups: Sequence[Sequence[str]]) -> list[str]:
    """Names of parameters that no step of the cascade re-initialises."""
    covered = {id(p) for group in groups for name in group for p in network.get_submodule(name).parameters()}
    return [name for name, p in network.named_parameters() if id(p) not in covered]


def app_config(bundle: ModelBundle) -> SaliencyConfig:
    """The app's saliency settings for ``bundle``, with the Grad-CAM layer named inside a :class:`CascadeView`."""
    config = saliency_config(Settings(), bundle)
    if config.gradcam_layer is None:
        return config
    return dataclasses.replace(config, gradcam_layer=f"network.{config.gradcam_layer}")


def _centre_crop(tensor: torch.Tensor, crop: int) -> torch.Tensor:
    if not crop:
        return tensor
    rows, cols = tensor.shape[-2:]
    if crop > min(rows, cols):
        raise ValueError(f"--crop {crop} is larger than the network input {rows}×{cols}")
    top, left = (rows - crop) // 2, (cols - crop) // 2
    return tensor[..., top:top + crop, left:left + crop].contiguous()


def _mean_probability(bundle: ModelBundle, tensor: torch.Tensor, samples: int, seed: int, sigmoid: bool) -> np.ndarray:
    convert = torch.sigmoid if sigmoid else (lambda logits: logits.softmax(dim=1))
    return mc_sample(bundle.network, tensor, samples, seed, to_probabilities=convert).mean(dim=0).numpy()


def chest_item(bundle: ModelBundle, k: int, seed: int, mc: tuple[int, int], crop: int) -> Item:
    """Image k of the chest evaluation stream and its most probable present finding; None without findings."""
    sample = chest.generate_chest(bundle.preprocessing.working_size, chest.synthetic_rng(chest.EVAL_STREAM, seed, k))
    present = [i for i, name in enumerate(chest.FINDINGS) if sample.labels[name]]
    if not present:
        return None
    tensor = _centre_crop(to_network_input(sample.image, bundle.preprocessing)[0], crop)
    probability = _mean_probability(bundle, tensor, mc[0], mc[1] + k, sigmoid=True)
    return tensor, max(present, key=lambda i: float(probability[i]))


def fundus_item(bundle: ModelBundle, k: int, seed: int, mc: tuple[int, int], crop: int) -> Item:
    """Image k of the fundus evaluation stream and the app's region: p̄(vessel) ≥ threshold."""
    image = fundus.generate_fundus(bundle.preprocessing.working_size,
                                   fundus.synthetic_rng(fundus.EVAL_STREAM, seed, k), "RL"[k % 2]).image
    tensor = _centre_crop(to_network_input(image, bundle.preprocessing)[0], crop)
    probability = _mean_probability(bundle, tensor, mc[0], mc[1] + k, sigmoid=False)
    region = segmentation_target(probability, Settings().threshold).region
    return (tensor, region) if bool(region.any()) else None


def nuclei_item(bundle: ModelBundle, k: int, seed: int, mc: tuple[int, int], crop: int) -> Item:
    """Image k of the nuclei test stream and the app's region: every post-processed nucleus."""
    rng = nuclei.synthetic_rng(nuclei.TEST_STREAM, seed, k)
    sample = nuclei.generate_nuclei(bundle.preprocessing.working_size, rng)
    tensor = _centre_crop(to_network_input(sample.image, bundle.preprocessing)[0], crop)
    probability = _mean_probability(bundle, tensor, mc[0], mc[1] + k, sigmoid=False)
    labels = instances_from_probabilities(probability, PostProcessing.from_metadata(bundle.metadata["postprocessing"]))
    region = instances_target(labels, tuple(tensor.shape[-2:])).region
    return (tensor, region) if bool(region.any()) else None


#: Per task: the image generator's stream text, the default image seed, the loader and the target text.
TASK_DATA: dict[str, tuple[str, int, Callable[..., Item], str]] = {
    "chest_findings": (f"training.synth.chest.generate_chest, keys [{chest.EVAL_STREAM}, seed, k]", 5000, chest_item,
                       "logit of the present finding with the highest MC-mean probability"),
    "fundus_vessels": (f"training.synth.fundus.generate_fundus, keys [{fundus.EVAL_STREAM}, seed, k]", 1000,
                       fundus_item, "vessel logits summed over the MC-mean mask p̄ ≥ 0.5 (the app's target)"),
    "microscopy_nuclei": (f"training.synth.nuclei.generate_nuclei, keys [{nuclei.TEST_STREAM}, seed, k]", 1000,
                          nuclei_item,
                          "nucleus-interior logits summed over the post-processed nuclei (the app's target)"),
}


def held_out_batch(bundle: ModelBundle, images: int, seed: int, mc: tuple[int, int], crop: int = 0) -> HeldOut:
    """The first ``images`` held-out synthetic images that have something to explain, as one batch."""
    if bundle.task not in TASK_DATA:
        raise ValueError(f"no synthetic data for task {bundle.task!r}; known: {', '.join(TASK_DATA)}")
    stream, _, load, target_text = TASK_DATA[bundle.task]
    tensors, targets, keys = [], [], []
    k = 0
    while len(tensors) < images:
        if k >= 20 * images:
            raise RuntimeError(f"only {len(tensors)} of the first {k} images have something to explain")
        item = load(bundle, k, seed, mc, crop)
        if item is None:
            logger.info("image %d: nothing to explain, skipped", k)
        else:
            tensors.append(item[0])
            targets.append(item[1])
            keys.append(k)
        k += 1
    inputs = torch.cat(tensors)
    if bundle.task == "chest_findings":
        target: Target = ClassTarget([int(t) for t in targets])
        target_text += " (" + ", ".join(chest.FINDINGS[int(t)] for t in targets) + ")"
    else:
        target = SegmentationTarget(class_index=1, region=torch.stack([torch.as_tensor(t) for t in targets]))
    size = "×".join(map(str, inputs.shape[-2:])) + (" centre crop of the network input" if crop else " network input")
    return HeldOut(inputs, target, f"{stream}, seed {seed}, k in {keys}",
                   f"{target_text}; {size}; MC mean over T = {mc[0]} passes, dropout seed {mc[1]} + k")


def entry(result: RandomisationResult, groups: Sequence[Sequence[str]], batch: HeldOut, seconds: float,
          shared: dict[str, Any]) -> dict[str, Any]:
    """One method's ``saliency_sanity`` record (JSON-ready; NaN becomes None)."""
    def number(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 4)

    return {
        "verdict": result.verdict, "statistic": number(result.statistic), "threshold": result.threshold,
        "mode": result.mode, "images": int(batch.inputs.shape[0]), "layers": ["+".join(g) for g in groups],
        "correlations": [number(step.correlation) for step in result.steps],
        "final_per_image": [number(r) for r in result.steps[-1].per_image], "seconds": round(seconds, 1), **shared,
    }


def undetermined_entry(method: str, reason: str, groups: Sequence[Sequence[str]], batch: HeldOut,
                       threshold: float, shared: dict[str, Any]) -> dict[str, Any]:
    """The record of a method that cannot run on this model (e.g. guided backprop without rectifiers)."""
    logger.warning("%s cannot run on this model: %s", method, reason)
    return {"verdict": "undetermined", "statistic": None, "threshold": threshold, "mode": "cascading",
            "images": int(batch.inputs.shape[0]), "layers": ["+".join(g) for g in groups], "correlations": [],
            "error": reason, **shared}


def run_sanity(network: nn.Module, groups: Sequence[Sequence[str]], batch: HeldOut, config: SaliencyConfig,
               methods: Sequence[str], threshold: float, seed: int, shared: dict[str, Any]) -> dict[str, dict]:
    """Cascading randomisation test of each method, one method at a time (same seed: same random weights)."""
    view = CascadeView(network, groups).eval()
    names = [f"steps.{i}" for i in range(len(groups))]
    results = {}
    for method in tqdm(methods, desc="randomisation test", unit="method"):
        started = time.perf_counter()
        try:
            result = randomisation_test(view, batch.inputs, batch.target, [method], config, mode="cascading",
                                        layers=names, threshold=threshold, seed=seed)[method]
        except GuidedBackpropUnsupported as error:
            results[method] = undetermined_entry(method, str(error), groups, batch, threshold, shared)
            continue
        results[method] = entry(result, groups, batch, time.perf_counter() - started, shared)
        logger.info("%s: ρ per step %s → %s", method, results[method]["correlations"], result.verdict)
    return results


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def card_section(records: dict[str, dict[str, Any]]) -> str:
    """The model card's randomisation-test section, from the ``saliency_sanity`` metadata alone."""
    first = next(iter(records.values()))
    steps = " → ".join(f"`{layer}`" for layer in first["layers"])
    trained = first.get("parameters_left_trained", [])
    left = f"{len(trained)} parameter tensors still trained" if trained else "every parameter random"
    lines = [
        SECTION_TITLE, "",
        f"**SYNTHETIC data** ({first['images']} held-out synthetic images: {first.get('data')}). Cascading "
        "model-parameter randomisation test (Adebayo et al. 2018, \"Sanity checks for saliency maps\", NeurIPS): "
        f"layers are re-initialised from the output towards the input, cumulatively, in the steps {steps}; after "
        "each step the maps are compared with the trained model's by Spearman's ρ of |map| per image "
        f"(mean over images). Verdict: *model-sensitive* when the final ρ ({left}) is below "
        f"{first['threshold']}, otherwise *not model-sensitive* (the app prints that on the method's overlays). "
        f"Target: {first.get('target')}. Saliency settings (the app's): {first.get('settings')}. "
        f"Re-initialisation seed {first.get('seed')}.", "",
        "| method | ρ after each step | final rank correlation | per image (min – max) | verdict |",
        "|---|---|---|---|---|",
    ]
    for method, record in records.items():
        curve = ", ".join(_fmt(value) for value in record["correlations"]) or record.get("error", "")
        per_image = [r for r in record.get("final_per_image", []) if r is not None]
        spread = f"{min(per_image):.3f} – {max(per_image):.3f}" if per_image else "n/a"
        lines.append(f"| {method} | {curve} | {_fmt(record['statistic'])} | {spread} | {record['verdict']} |")
    lines += ["", f"Wall time {first.get('wall_seconds')} s on CPU. Command: `{first.get('command')}`", ""]
    return "\n".join(lines)


def replace_section(card: str, section: str) -> str:
    """``card`` with its randomisation section replaced by ``section`` (inserted before Limitations if absent)."""
    lines = card.splitlines()
    if SECTION_TITLE in lines:
        start = lines.index(SECTION_TITLE)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    else:
        start = end = next((i for i, line in enumerate(lines) if line.startswith("## Limitations")), len(lines))
    before = "\n".join(lines[:start]).rstrip()
    after = "\n".join(lines[end:]).strip()
    parts = [part for part in (before, section.strip(), after) if part]
    return "\n\n".join(parts) + "\n"


def write_results(model_dir: Path, records: dict[str, dict[str, Any]]) -> None:
    """Replace ``saliency_sanity`` in ``configs/metadata.json`` and the section of ``docs/README.md``."""
    metadata_path = model_dir / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    metadata["saliency_sanity"] = records
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    card = model_dir / "docs" / "README.md"
    card.parent.mkdir(parents=True, exist_ok=True)
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {metadata['name']} {metadata['version']}\n"
    card.write_text(replace_section(text, card_section(records)), encoding="utf-8")


def _groups(args: argparse.Namespace, network: nn.Module) -> tuple[list[tuple[str, ...]], list[str]]:
    """The cascade steps (``--layers`` or the default) and the parameters they leave trained."""
    groups = [tuple(g.split("+")) for g in args.layers] if args.layers else default_cascade(network)
    untouched = untouched_parameters(network, groups)  # AttributeError names a module that does not exist
    if untouched:
        logger.warning("the cascade leaves %d parameter tensors trained, e.g. %s", len(untouched), untouched[:3])
    return groups, untouched


def sanity(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Run the test described by the CLI arguments and write the results; returns the records."""
    started = time.perf_counter()
    if args.images < 1:
        raise ValueError(f"--images must be ≥ 1, got {args.images}")
    bundle = load_bundle(args.model)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    groups, untouched = _groups(args, bundle.network)
    image_seed = args.image_seed if args.image_seed is not None else TASK_DATA.get(bundle.task, ("", 0))[1]
    batch = held_out_batch(bundle, args.images, image_seed, (args.mc_samples, args.mc_seed), args.crop)
    config = app_config(bundle)
    shared = {
        "data": batch.keys, "target": batch.description, "seed": args.seed, "parameters_left_trained": untouched,
        "settings": f"IG {config.ig_steps} steps ({config.ig_method}, baseline {config.ig_baseline}); SmoothGrad "
                    f"{config.smoothgrad_samples} copies, σ = {config.noise_fraction} × {config.noise_range}; "
                    f"Grad-CAM layer {bundle.metadata.get('gradcam_layer') or 'the last spatial convolution'}",
        "command": "python -m training.saliency_sanity " + " ".join(shlex.quote(a) for a in args.argv),
    }
    records = run_sanity(bundle.network, groups, batch, config, methods, args.threshold, args.seed, shared)
    wall = round(time.perf_counter() - started, 1)
    for record in records.values():
        record["wall_seconds"] = wall
    write_results(Path(args.model), records)
    for method, record in records.items():
        logger.info("%-32s final ρ %s → %s", method, _fmt(record["statistic"]), record["verdict"])
    return records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.saliency_sanity", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. models/chest_findings)")
    parser.add_argument("--images", type=int, default=8, help="held-out synthetic images with something to explain")
    parser.add_argument("--layers", nargs="+", default=None,
                        help="cascade steps, output end first; a step is module names joined by '+' "
                             "(default: DEFAULT_CASCADES for the network class)")
    parser.add_argument("--threshold", type=float, default=0.5, help="final ρ at or above this fails the method")
    parser.add_argument("--seed", type=int, default=0, help="seed of the re-initialised weights")
    parser.add_argument("--image-seed", type=int, default=None, help="evaluation-set seed (default: the task's)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated saliency methods")
    parser.add_argument("--crop", type=int, default=0, help="centre crop of the network input in pixels (0: none)")
    parser.add_argument("--mc-samples", type=int, default=Settings().mc_samples, help="MC passes for the target")
    parser.add_argument("--mc-seed", type=int, default=0, help="dropout seed of image k is mc_seed + k")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_cli(sanity, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
