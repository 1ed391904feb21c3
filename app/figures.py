"""``python -m app.figures``: draw the documentation figures of saliency and uncertainty from synthetic images.

Usage::

    python -m app.figures --models models --out docs/images [--seed 0] [--mc-samples 20] [--finding auto]

Writes two PNGs, computed with the app's own code paths (``candor.preprocess``,
``candor.uncertainty.mc_sample``/``decompose``, ``candor.explain.Explainer``):

* ``figure-saliency-chest.png`` — one synthetic chest radiograph (``training.synth.chest``) and the
  six seed saliency maps of one finding's logit plus Grad-CAM (:func:`candor.figures.saliency_figure`);
* ``figure-uncertainty-fundus.png`` — one synthetic fundus photograph (``training.synth.fundus``),
  its mean vessel probability and its epistemic and aleatoric maps (:func:`candor.figures.uncertainty_figure`).

Images are generated here (nothing is downloaded): key ``[EVAL_STREAM, seed, k]`` of each
generator. ``--finding NAME`` draws chest image k = 0 with NAME as its only finding and explains
NAME; ``--finding auto`` draws images k = 0, 1, … with the generator's random findings and takes
the first whose most probable finding (eval-mode forward) is present in the synthetic truth with
p ≥ the app's threshold, and explains that finding. Saliency and MC settings are the app's
(``CANDOR_*`` environment variables, see ``candor.settings``); ``--seed``/``--mc-samples`` override
them. See ``docs/figures.md``.

Exit status: 0 both figures written; 2 bad usage — a missing or unusable model folder, an invalid
setting, or no image found for ``--finding auto``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from app.logs import configure_logging
from candor.bundle import ModelBundle, load_bundle
from candor.errors import CandorError
from candor.explain import Explainer
from candor.inference import resolve_device
from candor.figures import EXTRA_METHOD, SEED_METHODS, save_figure, saliency_figure, uncertainty_figure
from candor.preprocess import to_network_input, to_source_grid
from candor.saliency import ClassTarget
from candor.settings import Settings, load_settings
from candor.uncertainty import UncertaintyMaps, as_two_class, decompose, mc_sample
from training.synth import chest, fundus

logger = logging.getLogger("candor.figures")
ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_USAGE = 0, 2
CHEST_FIGURE = "figure-saliency-chest.png"
FUNDUS_FIGURE = "figure-uncertainty-fundus.png"
#: ``--finding auto`` looks at most at this many synthetic radiographs for a detected, truly present finding.
AUTO_SEARCH_IMAGES = 32


class NoDetectedFinding(CandorError):
    """``--finding auto`` found no synthetic radiograph whose most probable finding is present and detected."""


def finding_index(bundle: ModelBundle, finding: str) -> int:
    """The output index of ``finding`` in a chest bundle; ``CandorError`` naming the labels otherwise."""
    for index, label in bundle.labels.items():
        if label == finding:
            return index
    labels = ", ".join(bundle.labels.values())
    raise CandorError(f"{bundle.path}: the model has no output {finding!r} (labels: {labels})")


def choose_chest_image(bundle: ModelBundle, seed: int, finding: str, threshold: float,
                       device: torch.device) -> tuple[chest.ChestSample, str, int]:
    """(sample, explained finding, image index k) following the ``--finding`` rule of the module docstring."""
    size = bundle.preprocessing.working_size
    if finding != "auto":
        finding_index(bundle, finding)
        return chest.generate_chest(size, chest.synthetic_rng(chest.EVAL_STREAM, seed, 0), {finding: True}), finding, 0
    for k in range(AUTO_SEARCH_IMAGES):
        sample = chest.generate_chest(size, chest.synthetic_rng(chest.EVAL_STREAM, seed, k))
        tensor, _ = to_network_input(sample.image, bundle.preprocessing)
        with torch.no_grad():
            probabilities = torch.sigmoid(bundle.network.eval()(tensor.to(device)))[0].cpu()
        best = int(probabilities.argmax())
        name = bundle.labels[best]
        if sample.labels.get(name, False) and float(probabilities[best]) >= threshold:
            logger.info("chest: image k=%d, most probable finding %s (p = %.2f, eval mode) is present", k, name,
                        float(probabilities[best]))
            return sample, name, k
    raise NoDetectedFinding(f"none of the first {AUTO_SEARCH_IMAGES} synthetic radiographs (seed {seed}) has a most "
                            f"probable finding that is present with p ≥ {threshold}; name one with --finding")


def chest_figure(bundle: ModelBundle, settings: Settings, finding: str, out: Path, device: torch.device,
                 dpi: int = 100) -> Path:
    """Generate a radiograph, run MC dropout and the seven saliency methods on one finding, draw and save."""
    started = time.perf_counter()
    sample, name, k = choose_chest_image(bundle, settings.seed, finding, settings.threshold, device)
    index = finding_index(bundle, name)
    tensor, geometry = to_network_input(sample.image, bundle.preprocessing)
    tensor = tensor.to(device)
    logger.info("chest: synthetic image k=%d (%d px) chosen in %.1f s", k, sample.image.shape[0],
                time.perf_counter() - started)

    tick = time.perf_counter()
    probabilities = mc_sample(bundle.network, tensor, settings.mc_samples, settings.seed,
                              to_probabilities=torch.sigmoid)
    maps = decompose(as_two_class(probabilities.unsqueeze(1), dim=1))  # (T, 2, F): (1 − p, p) per finding
    mean, std = float(maps.mean_probability[1, index]), float(maps.std_probability[1, index])
    logger.info("chest: %d MC-dropout passes in %.1f s; %s p̄ = %.3f ± %.3f, epistemic %.4f nats", maps.samples,
                time.perf_counter() - tick, name, mean, std, float(maps.epistemic[index]))
    if mean < settings.threshold:
        logger.warning("chest: the model does not detect %s here (p̄ = %.2f < %.2f); the maps explain a "
                       "low score", name, mean, settings.threshold)

    explained = Explainer(settings, (*SEED_METHODS, EXTRA_METHOD)).explain(bundle, tensor, ClassTarget(index))
    for item in explained:
        logger.info("chest: %s in %.1f s (%.0f forward-pass equivalents)", item.method, item.seconds,
                    item.cost_forward_equivalents)
    notes = {item.method: f"{item.seconds:.1f} s, {item.cost_forward_equivalents:.0f} passes"
             + (f", check: {item.sanity}" if item.sanity and item.sanity != "model-sensitive" else "")
             for item in explained}

    tick = time.perf_counter()
    figure = saliency_figure(
        sample.image, {item.method: to_source_grid(item.values, geometry) for item in explained},
        f"Saliency of the '{name.replace('_', ' ')}' logit — {bundle.name} {bundle.version}, "
        f"p̄ = {mean:.2f} ± {std:.2f} (T = {maps.samples})",
        outline=sample.masks[name] if sample.masks else None, notes=notes,
        caption=(f"Synthetic PA radiograph training.synth.chest key [{chest.EVAL_STREAM}, {settings.seed}, {k}]. "
                 f"Integrated gradients: {settings.saliency_ig_steps} steps, black baseline; SmoothGrad: "
                 f"{settings.saliency_smoothgrad_samples} noisy copies, σ = {settings.saliency_noise_fraction:g} × "
                 f"input range; Grad-CAM on {bundle.metadata.get('gradcam_layer') or 'the last spatial conv'}. "
                 "Panel times: wall-clock s on the machine that drew the figure (guided backprop includes the one-off "
                 "ReLU surgery); passes: forward-pass equivalents of the cost model."))
    path = save_figure(figure, out / CHEST_FIGURE, dpi=dpi)
    logger.info("chest: figure drawn and written in %.1f s: %s (%.0f KB)", time.perf_counter() - tick, path,
                path.stat().st_size / 1024)
    return path


def zoom_box(sample: fundus.FundusSample, side: int) -> tuple[int, int, int]:
    """(row, column, side) of a square crop between the optic disc and the fovea, where thin vessels branch."""
    shape = sample.image.shape[:2]
    if sample.disc_center is None or sample.fovea_center is None:
        centre = (shape[0] / 2, shape[1] / 2)
    else:
        centre = tuple((2 * d + f) / 3 for d, f in zip(sample.disc_center, sample.fovea_center))
    row = int(np.clip(round(centre[0] - side / 2), 0, shape[0] - side))
    col = int(np.clip(round(centre[1] - side / 2), 0, shape[1] - side))
    return row, col, side


def _vessel_maps(bundle: ModelBundle, settings: Settings, image: np.ndarray, device: torch.device
                 ) -> tuple[UncertaintyMaps, list[np.ndarray]]:
    tensor, geometry = to_network_input(image, bundle.preprocessing)
    maps = decompose(mc_sample(bundle.network, tensor.to(device), settings.mc_samples, settings.seed))
    grids = [to_source_grid(values, geometry) for values in (maps.mean_probability[1], maps.epistemic, maps.aleatoric)]
    return maps, grids


def fundus_figure(bundle: ModelBundle, settings: Settings, out: Path, device: torch.device, dpi: int = 100) -> Path:
    """Generate a photograph, run MC dropout as the app does, draw its uncertainty figure and save it."""
    tick = time.perf_counter()
    sample = fundus.generate_fundus(bundle.preprocessing.working_size,
                                    fundus.synthetic_rng(fundus.EVAL_STREAM, settings.seed, 0))
    logger.info("fundus: synthetic photograph (%d px) generated in %.1f s", sample.image.shape[0],
                time.perf_counter() - tick)
    tick = time.perf_counter()
    maps, (probability, epistemic, aleatoric) = _vessel_maps(bundle, settings, sample.image, device)
    predicted = probability >= settings.threshold
    dice = 2 * float((predicted & sample.vessels).sum()) / max(1, int(predicted.sum() + sample.vessels.sum()))
    logger.info("fundus: %d MC-dropout passes in %.1f s; Dice against the synthetic truth %.3f; mean epistemic "
                "%.4f, aleatoric %.4f nats in the field of view", maps.samples, time.perf_counter() - tick, dice,
                float(epistemic[sample.fov].mean()), float(aleatoric[sample.fov].mean()))
    tick = time.perf_counter()
    figure = uncertainty_figure(
        sample.image, probability, epistemic, aleatoric,
        f"Vessel segmentation and MC-dropout uncertainty — {bundle.name} {bundle.version}, T = {maps.samples}, "
        f"seed {settings.seed} (Dice vs truth {dice:.2f})",
        classes=maps.mean_probability.shape[0], threshold=settings.threshold, reference=sample.vessels,
        zoom=zoom_box(sample, max(16, sample.image.shape[0] // 4)),
        caption=(f"Synthetic fundus photograph training.synth.fundus key [{fundus.EVAL_STREAM}, {settings.seed}, 0]. "
                 "Entropies in nats (natural log); aleatoric scale [0, ln 2], epistemic scale [0, ¼ ln 2] as on "
                 "Candor's DICOM overlays."))
    path = save_figure(figure, out / FUNDUS_FIGURE, dpi=dpi)
    logger.info("fundus: figure drawn and written in %.1f s: %s (%.0f KB)", time.perf_counter() - tick, path,
                path.stat().st_size / 1024)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="model folders (default models/)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images",
                        help="output folder (default docs/images)")
    parser.add_argument("--seed", type=int, default=None, help="image key and MC/SmoothGrad seed (default: the "
                        "app's CANDOR_SEED, else 0)")
    parser.add_argument("--mc-samples", type=int, default=None, help="MC-dropout passes T (default: the app's "
                        "CANDOR_MC_SAMPLES, else 20)")
    parser.add_argument("--finding", default="auto", choices=("auto", *chest.FINDINGS),
                        help="chest finding to explain (default auto: the most probable finding that is present)")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")
    args = parser.parse_args(argv)
    if not 30 <= args.dpi <= 600:
        parser.error(f"--dpi must lie between 30 and 600, got {args.dpi}")
    configure_logging()
    started = time.perf_counter()
    try:
        settings = load_settings()
        overrides = {"seed": args.seed, "mc_samples": args.mc_samples}
        settings = replace(settings, **{key: value for key, value in overrides.items() if value is not None})
        device = resolve_device(settings.device)
        chest_bundle = load_bundle(args.models / "chest_findings", device)
        fundus_bundle = load_bundle(args.models / "fundus_vessels", device)
        logger.info("models %s, device %s, T=%d, seed %d, IG steps %d, SmoothGrad samples %d", args.models, device,
                    settings.mc_samples, settings.seed, settings.saliency_ig_steps,
                    settings.saliency_smoothgrad_samples)
        written = [chest_figure(chest_bundle, settings, args.finding, args.out, device, args.dpi),
                   fundus_figure(fundus_bundle, settings, args.out, device, args.dpi)]
    except CandorError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    logger.info("wrote %s in %.1f s", ", ".join(str(path) for path in written), time.perf_counter() - started)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
