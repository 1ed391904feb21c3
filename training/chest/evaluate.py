"""Evaluate a chest-findings model folder on held-out synthetic radiographs and write its model card.

Usage::

    python -m training.chest.evaluate --model models/chest_findings --images 200 --seed 5000 --mc-samples 20

Image k is ``generate_chest(working_size, synthetic_rng(EVAL_STREAM, seed, k))``; training
images use ``TRAIN_STREAM`` keys, so the sets never share a generator key. Each image goes
through :func:`candor.preprocess.to_network_input` and T Monte-Carlo dropout passes
(:func:`candor.uncertainty.mc_sample` with a sigmoid), as the app does. Per finding it
measures the ROC AUC of the MC mean probability p̄, the binary ECE of p̄ (15 equal-width
bins), the Brier score, and the mean MC standard deviation and epistemic uncertainty
(mutual information of the two-class (1 − p, p) decomposition) on positive and negative
images. On every positive (image, finding) it plays the pointing game (Zhang et al.,
ECCV 2016): does the maximum of a saliency map of that finding's logit fall inside the
finding's known mask? Grad-CAM (Selvaraju et al., ICCV 2017) on the bundle's
``gradcam_layer`` and the cheap gradient methods run on all positives; integrated gradients
(16 steps) on the first ``--costly-pairs``. Results go to ``docs/metrics.json``,
``configs/metadata.json`` (``evaluation``) and ``docs/README.md``. ``--data CXR14_ROOT``
scores a seeded random subset of ChestX-ray14's official test list instead (no masks, so no
pointing game). Every synthetic figure is labelled SYNTHETIC. ``--localisation-only --methods M1,M2``
adds only the pointing game of those methods (on the first ``--costly-pairs`` positive pairs) to an
existing evaluation, e.g. the SmoothGrad methods, without re-running anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from candor.bundle import ModelBundle, load_bundle
from candor.preprocess import to_network_input, to_source_grid
from candor.saliency import ClassTarget, SaliencyConfig, compute_saliency, mass_inside, pointing_game
from candor.saliency import prepare_for_guided_backprop
from candor.uncertainty import as_two_class, decompose, mc_sample
from training.data.chestxray14 import chestxray14_records, read_chestxray14
from training.chest.card import write_model_card
from training.common import record_evaluation
from training.metrics import calibration_bins, expected_calibration_error, roc_auc
from training.synth.chest import EVAL_STREAM, FINDINGS, ChestSample, generate_chest, synthetic_rng

logger = logging.getLogger("training.chest.evaluate")

ECE_BINS = 15
CHEAP_METHODS = ("gradcam", "gradient", "guided_backprop")
COSTLY_METHODS = ("integrated_gradients",)
#: Integrated gradients with 16 trapezoid steps (32 forward equivalents) rather than 50 Gauss-Legendre (100);
#: SmoothGrad as the app runs it: 8 noisy copies, σ = 15 % of the nominal [0, 1] input range.
SALIENCY = SaliencyConfig(ig_steps=16, ig_method="riemann_trapezoid", ig_internal_batch_size=16,
                          smoothgrad_samples=8, smoothgrad_batch_size=8, noise_fraction=0.15, noise_range=1.0)


def multilabel_uncertainty(samples: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-finding summaries of (T, K) sampled sigmoid probabilities, each a (K,) float32 array.

    ``mean`` p̄, ``std`` (MC standard deviation of p), and the binary entropy decomposition in
    nats (≤ ln 2): ``total`` H[p̄], ``aleatoric`` E_t H[p_t], ``epistemic`` = their difference.
    Each finding is its own two-class problem (1 − p, p), so :func:`candor.uncertainty.decompose`
    is applied to a (T, 2, K) stack.
    """
    if samples.ndim != 2:
        raise ValueError(f"expected (T, K) probabilities, got shape {tuple(samples.shape)}")
    maps = decompose(as_two_class(samples.unsqueeze(1), dim=1))
    return {"mean": maps.mean_probability[1], "std": maps.std_probability[1], "total": maps.total,
            "aleatoric": maps.aleatoric, "epistemic": maps.epistemic}


def finding_metrics(probability: np.ndarray, std: np.ndarray, epistemic: np.ndarray,
                    labels: np.ndarray) -> dict[str, dict[str, float | int | None]]:
    """Per-finding metrics over images from (N, K) arrays; AUROC is None when a class is missing."""
    result = {}
    for k, name in enumerate(FINDINGS):
        p, y = probability[:, k].astype(np.float64), labels[:, k].astype(bool)
        try:
            auroc: float | None = roc_auc(p, y)
        except ValueError as error:
            logger.warning("%s: AUROC undefined (%s)", name, error)
            auroc = None
        result[name] = {
            "auroc": auroc,
            "ece": expected_calibration_error(np.clip(p, 0.0, 1.0), y, bins=ECE_BINS),
            "brier": float(np.mean((p - y) ** 2)),
            "accuracy_at_0.5": float(np.mean((p > 0.5) == y)),
            "mean_std_positive": float(std[y, k].mean()) if y.any() else None,
            "mean_std_negative": float(std[~y, k].mean()) if (~y).any() else None,
            "mean_epistemic_positive": float(epistemic[y, k].mean()) if y.any() else None,
            "mean_epistemic_negative": float(epistemic[~y, k].mean()) if (~y).any() else None,
            "positives": int(y.sum()), "images": int(y.size),
        }
    return result


def _saliency_rows(bundle: ModelBundle, gbp_model: list, sample: ChestSample, tensor: torch.Tensor, geometry: Any,
                   methods: tuple[str, ...], layer: str, tolerance: int) -> list[dict[str, Any]]:
    """Pointing game and mass inside for each positive finding of ``sample`` and each method."""
    rows = []
    for k, name in enumerate(FINDINGS):
        mask = sample.masks[name] if sample.masks is not None else None
        if mask is None or not mask.any():
            continue
        grid = np.arange(-tolerance, tolerance + 1)
        disk = grid[:, None] ** 2 + grid[None, :] ** 2 <= tolerance**2  # as pointing_game dilates
        dilated = ndimage.binary_dilation(mask, structure=disk)
        body = sample.body if sample.body is not None else np.ones_like(mask)
        for method in methods:
            model = bundle.network
            if "guided" in method:
                if not gbp_model:
                    gbp_model.append(prepare_for_guided_backprop(bundle.network, tensor))
                model = gbp_model[0]
            config = dataclasses.replace(SALIENCY, gradcam_layer=layer)
            result = compute_saliency(model, tensor, ClassTarget(k), method, config)
            heat = to_source_grid(result.maps, geometry)[0]
            rows.append({
                "finding": name, "method": method,
                "hit": float(pointing_game(heat, mask)[0]),
                "hit_tolerance": float(pointing_game(heat, mask, tolerance_px=tolerance)[0]),
                "mass_inside": float(mass_inside(heat, mask)[0]),
                "chance": float((mask & body).sum() / body.sum()),
                "chance_tolerance": float((dilated & body).sum() / body.sum()),
                "seconds": result.seconds,
            })
    return rows


def pointing_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | int]]]:
    """Mean hit rate, mass inside and chance per method and finding (plus "all").

    A constant map points nowhere (pointing_game gives NaN): it is counted in
    ``constant_maps`` and left out of the means.
    """
    summary: dict[str, dict[str, dict[str, float | int]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        summary[method] = {}
        for name in (*FINDINGS, "all"):
            chosen = [r for r in rows if r["method"] == method and name in ("all", r["finding"])]
            if not chosen:
                continue
            defined = [r for r in chosen if not np.isnan(r["hit"])]
            summary[method][name] = {
                key: float(np.mean([r[key] for r in defined])) if defined else float("nan")
                for key in ("hit", "hit_tolerance", "mass_inside", "chance", "chance_tolerance", "seconds")
            } | {"pairs": len(chosen), "constant_maps": len(chosen) - len(defined)}
    return summary


def _figures(docs: Path, example: tuple[ChestSample, dict[str, np.ndarray], dict[str, np.ndarray]],
             reliability: np.ndarray, caption: str) -> list[str]:
    """An example with Grad-CAM per positive finding, and per-finding reliability diagrams."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    sample, summary, heats = example
    figure, axes = plt.subplots(1, 1 + len(heats), figsize=(3.4 * (1 + len(heats)), 3.8), squeeze=False)
    axes[0, 0].imshow(sample.image, cmap="gray")
    axes[0, 0].set_title("image (SYNTHETIC)", fontsize=9)
    for axis, (name, heat) in zip(axes[0, 1:], heats.items()):
        k = FINDINGS.index(name)
        axis.imshow(sample.image, cmap="gray")
        axis.imshow(heat, cmap="jet", alpha=0.4)
        axis.contour(sample.masks[name], levels=[0.5], colors="white", linewidths=0.8)
        axis.set_title(f"Grad-CAM {name}\np̄ = {summary['mean'][k]:.2f} ± {summary['std'][k]:.2f}", fontsize=9)
    for axis in axes[0]:
        axis.axis("off")
    figure.suptitle(f"SYNTHETIC DATA — {caption}; white = true mask", fontsize=10)
    figure.savefig(docs / "example_synthetic.png", dpi=72, bbox_inches="tight")
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(4.4, 4.4))
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for k, name in enumerate(FINDINGS):
        counts, prob_sum, true_sum = reliability[k]
        filled = counts > 0
        axis.plot(prob_sum[filled] / counts[filled], true_sum[filled] / counts[filled], "o-", ms=3, label=name)
    axis.set_xlabel("mean MC probability p̄ in bin")
    axis.set_ylabel("observed frequency")
    axis.set_title(f"Reliability, {ECE_BINS} bins\nSYNTHETIC held-out images", fontsize=10)
    axis.legend(loc="upper left", fontsize=7)
    figure.savefig(docs / "reliability_synthetic.png", dpi=72, bbox_inches="tight")
    plt.close(figure)
    return ["example_synthetic.png", "reliability_synthetic.png"]


def _samples(args: argparse.Namespace, size: int) -> tuple[list[Any], str, str]:
    """Loaders of the evaluation images (lazily rendered or read), the data description and key text."""
    if args.data == "synthetic":
        loaders = [lambda k=k: generate_chest(size, synthetic_rng(EVAL_STREAM, args.seed, k))
                   for k in range(args.images)]
        return (loaders, "synthetic (training.synth.chest.generate_chest) — not real radiographs",
                f"numpy.random.default_rng([{EVAL_STREAM}, {args.seed}, k]), k < {args.images}")
    records = chestxray14_records(args.data, "test")
    chosen = np.sort(np.random.default_rng(args.seed).choice(len(records), min(args.images, len(records)), False))
    loaders = [lambda r=records[i]: read_chestxray14(r) for i in chosen]
    return loaders, "ChestX-ray14 official test list (PA + AP)", f"{len(chosen)} images drawn with seed {args.seed}"


def _score_images(args: argparse.Namespace, bundle: ModelBundle, loaders: list[Any], tolerance: int
                  ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], Any, list[float]]:
    """MC-dropout summaries of every image, pointing-game rows, an example for the figure, MC seconds."""
    layer = str(bundle.metadata["gradcam_layer"])
    methods = tuple(m for m in args.methods.split(",") if m)
    columns: dict[str, list] = {key: [] for key in ("mean", "std", "epistemic", "total", "aleatoric", "labels")}
    rows: list[dict[str, Any]] = []
    gbp_model: list = []
    example, mc_seconds, pairs = None, [], 0
    for k, load in enumerate(tqdm(loaders, desc="evaluate", unit="img")):
        sample = load()
        tensor, geometry = to_network_input(sample.image, bundle.preprocessing)
        tick = time.perf_counter()
        summary = multilabel_uncertainty(mc_sample(bundle.network, tensor, args.mc_samples, args.mc_seed + k,
                                                   to_probabilities=torch.sigmoid))
        mc_seconds.append(time.perf_counter() - tick)
        for key in ("mean", "std", "epistemic", "total", "aleatoric"):
            columns[key].append(summary[key])
        columns["labels"].append(sample.label_vector())
        if sample.masks is None or not methods:
            continue
        chosen = tuple(m for m in methods if m in CHEAP_METHODS or pairs < args.costly_pairs)
        new = _saliency_rows(bundle, gbp_model, sample, tensor, geometry, chosen, layer, tolerance)
        pairs += len({r["finding"] for r in new})
        rows += [{"image": k, **r} for r in new]
        if example is None and len({r["finding"] for r in new}) >= 2 and "gradcam" in methods:
            heats = {n: to_source_grid(compute_saliency(bundle.network, tensor, ClassTarget(FINDINGS.index(n)),
                                                        "gradcam", SaliencyConfig(gradcam_layer=layer)).maps,
                                       geometry)[0] for n in FINDINGS if sample.labels[n]}
            example = (sample, summary, heats)
    return {key: np.stack(value) for key, value in columns.items()}, rows, example, mc_seconds


def settings_text(method: str) -> str:
    """How ``method`` was run in the pointing game (from :data:`SALIENCY`), for the card."""
    parts = []
    if "integrated_gradients" in method:
        parts.append(f"IG {SALIENCY.ig_steps} steps, {SALIENCY.ig_method}, baseline {SALIENCY.ig_baseline}")
    if method.startswith("smoothgrad_"):
        parts.append(f"SmoothGrad {SALIENCY.smoothgrad_samples} noisy copies, σ = {SALIENCY.noise_fraction} × "
                     f"{SALIENCY.noise_range} (the app's settings)")
    return "; ".join(parts) or "no settings"


def localise(args: argparse.Namespace) -> dict[str, Any]:
    """Add the pointing game of ``--methods`` to an evaluated model folder; every other figure stays as it is.

    The methods run on the first ``--costly-pairs`` positive (image, finding) pairs of the evaluation's
    images, taking whole images as the evaluation does for its costly methods, so the pairs are those of
    its integrated-gradients row; the tolerance is the evaluation's. Only
    ``evaluation.pointing_game[method]`` in ``configs/metadata.json`` and the model card are rewritten.
    """
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    metadata_path = Path(args.model) / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    evaluation = metadata.get("evaluation") or {}
    keys = f"[{EVAL_STREAM}, {args.seed}, k]"
    if not evaluation.get("pointing_game") or keys not in str(evaluation.get("image_seeds")):
        raise ValueError(f"{args.model}: no synthetic evaluation with keys {keys}; run the full evaluation first")
    methods = tuple(m for m in args.methods.split(",") if m)
    layer, tolerance = str(bundle.metadata["gradcam_layer"]), int(evaluation["pointing_tolerance_px"])
    rows: list[dict[str, Any]] = []
    gbp_model: list = []
    pairs = k = 0
    with tqdm(total=args.costly_pairs, desc="localisation", unit="pair") as progress:
        while pairs < args.costly_pairs and k < args.images:
            sample = generate_chest(bundle.preprocessing.working_size, synthetic_rng(EVAL_STREAM, args.seed, k))
            tensor, geometry = to_network_input(sample.image, bundle.preprocessing)
            new = _saliency_rows(bundle, gbp_model, sample, tensor, geometry, methods, layer, tolerance)
            rows += [{"image": k, **r} for r in new]
            pairs += len({r["finding"] for r in new})
            progress.update(len({r["finding"] for r in new}))
            k += 1
    summary = pointing_summary(rows)
    for method, by_finding in summary.items():
        for stats in by_finding.values():
            stats["settings"] = f"first {pairs} positive pairs (images k < {k}); {settings_text(method)}"
            stats["run"] = "python -m training.chest.evaluate " + " ".join(shlex.quote(a) for a in args.argv)
            stats["run_seconds"] = round(time.perf_counter() - started, 1)
    evaluation["pointing_game"].update(summary)
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    write_model_card(args.model, metadata, evaluation)
    for method, by_finding in summary.items():
        logger.info("%-32s hit %.3f (tol. %.3f) mass inside %.3f chance %.3f over %d pairs", method,
                    *(by_finding["all"][key] for key in ("hit", "hit_tolerance", "mass_inside", "chance", "pairs")))
    return summary


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by the CLI arguments; returns what was written to metrics.json."""
    if args.images < 1:
        raise ValueError(f"--images must be ≥ 1, got {args.images}")
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.model)
    if bundle.metadata.get("output") != "multilabel_sigmoid" or list(bundle.labels.values()) != list(FINDINGS):
        raise ValueError(f"{args.model}: not a chest-findings bundle (output multilabel_sigmoid, labels {FINDINGS})")
    size = bundle.preprocessing.working_size
    loaders, data_text, keys_text = _samples(args, size)
    tolerance = max(1, round(args.tolerance * size))
    arrays, rows, example, mc_seconds = _score_images(args, bundle, loaders, tolerance)
    reliability = np.zeros((len(FINDINGS), 3, ECE_BINS))
    for k in range(len(FINDINGS)):
        reliability[k] = np.nan_to_num(np.stack(calibration_bins(np.clip(arrays["mean"][:, k], 0, 1),
                                                                 arrays["labels"][:, k].astype(bool), bins=ECE_BINS)))
        reliability[k, 1:] *= reliability[k, 0]
    findings = finding_metrics(arrays["mean"], arrays["std"], arrays["epistemic"], arrays["labels"])
    aurocs = [m["auroc"] for m in findings.values() if m["auroc"] is not None]
    result: dict[str, Any] = {
        "data": data_text, "images": len(loaders), "image_seeds": keys_text, "working_size": size,
        "mc_samples": args.mc_samples, "mc_seed": args.mc_seed, "ece_bins": ECE_BINS,
        "ece_kind": "binary (class-wise) ECE of the MC mean probability, 15 equal-width bins",
        "findings": findings, "mean_auroc": float(np.mean(aurocs)) if aurocs else None,
        "mc_seconds_per_image": float(np.mean(mc_seconds)),
        "pointing_game": pointing_summary(rows) if rows else None,
        "pointing_tolerance_px": tolerance, "gradcam_layer": bundle.metadata["gradcam_layer"],
        "saliency_settings": {"cheap_methods_on": "every positive (image, finding)",
                              "costly_methods_on": f"first {args.costly_pairs} positive pairs",
                              "integrated_gradients": f"{SALIENCY.ig_steps} steps, {SALIENCY.ig_method}, baseline 0",
                              "smoothgrad": settings_text("smoothgrad_gradient")},
        "per_image": [{"index": k, "labels": arrays["labels"][k].tolist(), "mean": arrays["mean"][k].round(4).tolist(),
                       "std": arrays["std"][k].round(4).tolist()} for k in range(len(loaders))],
        "command": "python -m training.chest.evaluate " + " ".join(shlex.quote(a) for a in args.argv),
    }
    docs = Path(args.model) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    result["figures"] = (_figures(docs, example, reliability, f"held-out image, T = {args.mc_samples}, "
                                  f"{bundle.name} {bundle.version}") if example is not None else [])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_model_card(args.model, record_evaluation(args.model, result), result)
    for name, m in findings.items():
        logger.info("%-17s AUROC %s ECE %.3f std+ %s std- %s", name, m["auroc"], m["ece"], m["mean_std_positive"],
                    m["mean_std_negative"])
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.chest.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. models/chest_findings)")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a ChestX-ray14 root (test list)")
    parser.add_argument("--images", type=int, default=200, help="number of evaluation images")
    parser.add_argument("--seed", type=int, default=5000, help="evaluation set seed (keys [12, seed, k])")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout passes T (≥ 2)")
    parser.add_argument("--mc-seed", type=int, default=0, help="dropout-mask seed of image k is mc_seed + k")
    parser.add_argument("--methods", default=",".join(CHEAP_METHODS + COSTLY_METHODS),
                        help="saliency methods for the pointing game (comma-separated; '' for none)")
    parser.add_argument("--costly-pairs", type=int, default=40,
                        help="positive (image, finding) pairs on which methods other than "
                             f"{'/'.join(CHEAP_METHODS)} run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (see training.chest.train)")
    parser.add_argument("--localisation-only", action="store_true",
                        help="only add the pointing game of --methods on the first --costly-pairs positive pairs "
                             "to the existing evaluation (see localise)")
    parser.add_argument("--tolerance", type=float, default=0.04,
                        help="pointing-game tolerance as a fraction of the working size (also reported: none)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.localisation_only:
        localise(args)
    else:
        evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
