"""Evaluate a fundus vessel model folder on held-out synthetic images and write its model card.

Usage::

    python -m training.vessels.evaluate --model models/fundus_vessels --images 20 --seed 1000 --mc-samples 20

Image k is ``generate_fundus(working_size, synthetic_rng(EVAL_STREAM, seed, k), "RL"[k % 2])``;
training images use ``TRAIN_STREAM`` keys, so the two sets never share a generator key.
Each image goes through :func:`candor.preprocess.to_network_input` and T Monte-Carlo
dropout passes (:func:`candor.uncertainty.mc_sample`), exactly as the app does at
inference. Inside the FOV it measures Dice and ROC AUC of the mean vessel probability,
pixel ECE (15 equal-width bins) and the AUROC with which total, aleatoric and epistemic
uncertainty detect misclassified pixels. Mean ± std over images go to
``docs/metrics.json``, ``configs/metadata.json`` (``evaluation``) and ``docs/README.md``,
with two figures. Every figure is measured on SYNTHETIC data and labelled so.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from candor.bundle import ModelBundle, load_bundle
from candor.preprocess import to_network_input, to_source_grid
from candor.uncertainty import decompose, mc_sample
from training.common import record_evaluation, run_cli
from training.metrics import calibration_bins, dice, error_detection_auroc, expected_calibration_error, roc_auc
from training.saliency_sanity import card_section
from training.synth.fundus import EVAL_STREAM, FundusSample, generate_fundus, synthetic_rng

logger = logging.getLogger("training.vessels.evaluate")

ECE_BINS = 15
METRICS = {
    "dice": "Dice (vessel, p̄ > 0.5)",
    "roc_auc": "ROC AUC of p̄(vessel)",
    "accuracy": "pixel accuracy",
    "ece": f"pixel ECE of p̄(vessel), {ECE_BINS} equal-width bins",
    "auroc_error_total": "AUROC, total uncertainty H[p̄] → pixel errors",
    "auroc_error_aleatoric": "AUROC, aleatoric E_t H[p_t] → pixel errors",
    "auroc_error_epistemic": "AUROC, epistemic (mutual information) → pixel errors",
    "seconds": "seconds per image for T passes (CPU; indicative, shared machine)",
}


def evaluate_sample(bundle: ModelBundle, sample: FundusSample, mc_samples: int, mc_seed: int
                    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
    """MC-dropout inference on one image and its metrics inside the FOV.

    Returns the metrics (``None`` where undefined, e.g. an error AUROC on an image without
    errors; a warning is logged) and the maps on the image grid.
    """
    tick = time.perf_counter()
    tensor, geometry = to_network_input(sample.image, bundle.preprocessing)
    maps = decompose(mc_sample(bundle.network, tensor, mc_samples, mc_seed))
    stacked = np.stack([maps.mean_probability[1], maps.total, maps.aleatoric, maps.epistemic])
    probability, total, aleatoric, epistemic = to_source_grid(stacked, geometry)
    seconds = time.perf_counter() - tick
    probability = np.clip(probability, 0.0, 1.0)
    prediction = probability > 0.5
    fov, target = sample.fov, sample.vessels
    result: dict[str, float | None] = {
        "dice": dice(prediction, target, fov),
        "accuracy": float((prediction == target)[fov].mean()),
        "ece": expected_calibration_error(probability, target, fov, ECE_BINS),
        "seconds": seconds,
    }
    checks = {"roc_auc": lambda: roc_auc(probability, target, fov)}
    for name, uncertainty in (("total", total), ("aleatoric", aleatoric), ("epistemic", epistemic)):
        checks[f"auroc_error_{name}"] = lambda u=uncertainty: error_detection_auroc(u, prediction, target, fov)
    for name, compute in checks.items():
        try:
            result[name] = compute()
        except ValueError as error:
            logger.warning("%s: %s undefined (%s); left out of the mean", sample.name, name, error)
            result[name] = None
    arrays = {"probability": probability, "prediction": prediction, "total": total,
              "aleatoric": aleatoric, "epistemic": epistemic}
    return result, arrays


def summarise(per_image: list[dict[str, float | None]]) -> dict[str, dict[str, float | int | None]]:
    """Mean and sample standard deviation (ddof = 1) per metric over the images where it is defined."""
    summary: dict[str, dict[str, float | int | None]] = {}
    for name in METRICS:
        values = np.array([row[name] for row in per_image if row.get(name) is not None], dtype=np.float64)
        summary[name] = {
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std(ddof=1)) if values.size > 1 else None,
            "n": int(values.size),
        }
    return summary


def _figures(docs: Path, sample: FundusSample, arrays: dict[str, np.ndarray], reliability: np.ndarray,
             caption: str) -> list[str]:
    """Write an example panel and a pooled reliability diagram; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    errors = np.zeros((*sample.vessels.shape, 3))
    errors[arrays["prediction"] & ~sample.vessels] = (1.0, 0.2, 0.2)
    errors[~arrays["prediction"] & sample.vessels] = (0.2, 0.5, 1.0)
    panels = [("image (synthetic)", sample.image, None), ("ground truth", sample.vessels, "gray"),
              ("mean p(vessel)", arrays["probability"], "gray"), ("errors: FP red, FN blue", errors, None),
              ("epistemic (nats)", arrays["epistemic"], "magma"), ("aleatoric (nats)", arrays["aleatoric"], "magma")]
    figure, axes = plt.subplots(1, len(panels), figsize=(18, 3.6))
    for axis, (title, data, cmap) in zip(axes, panels):
        shown = axis.imshow(data, cmap=cmap)
        if cmap == "magma":
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.suptitle(f"SYNTHETIC DATA — {caption}", fontsize=11)
    figure.savefig(docs / "example_synthetic.png", dpi=72, bbox_inches="tight")
    plt.close(figure)

    counts, prob_sum, true_sum = reliability
    filled = counts > 0
    figure, axis = plt.subplots(figsize=(4.2, 4.2))
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axis.plot(prob_sum[filled] / counts[filled], true_sum[filled] / counts[filled], "o-", label="model")
    axis.set_xlabel("mean predicted p(vessel) in bin")
    axis.set_ylabel("observed vessel frequency")
    axis.set_title(f"Reliability, FOV pixels, {ECE_BINS} bins\nSYNTHETIC held-out images", fontsize=10)
    axis.legend(loc="upper left", fontsize=8)
    figure.savefig(docs / "reliability_synthetic.png", dpi=72, bbox_inches="tight")
    plt.close(figure)
    return ["example_synthetic.png", "reliability_synthetic.png"]


def _fmt(entry: dict[str, Any], digits: int = 3) -> str:
    if entry["mean"] is None:
        return "undefined"
    std = "n/a" if entry["std"] is None else f"{entry['std']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {std} (n = {entry['n']})"


def write_model_card(model_dir: str | Path, metadata: dict[str, Any], evaluation: dict[str, Any] | None) -> Path:
    """(Re)write ``docs/README.md`` from the bundle metadata and, if given, the evaluation summary."""
    docs = Path(model_dir) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    training, prep = metadata.get("training", {}), metadata["preprocessing"]
    network = json.loads((Path(model_dir) / "configs" / "network.json").read_text(encoding="utf-8"))
    lines = [
        f"# {metadata['name']} {metadata['version']} — retinal vessel segmentation with MC-dropout uncertainty",
        "",
        "**Research use only. Not for diagnosis or any clinical decision.**",
        "",
        "## What it is",
        f"A small 2D U-Net (MONAI `BasicUNet`, features {tuple(network.get('features', ()))}, "
        f"dropout p = {network.get('dropout')} in every conv block (conv → {network.get('norm', 'instance')} norm → "
        "`nn.Dropout` → LeakyReLU; batch norm is frozen during MC sampling), weights in `models/model.pt`, definition in `configs/network.json`) that labels each pixel of a colour "
        "fundus photograph as background or retinal vessel. Run with dropout on for T passes "
        "(`candor.uncertainty.mc_sample`), it yields the mean vessel probability and total, aleatoric "
        "(expected entropy) and epistemic (mutual information) uncertainty maps, in nats.",
        "",
        "## Intended use",
        "Research and demonstration of uncertainty and saliency reporting in Candor. Not validated on patients; "
        "its outputs must not inform care.",
        "",
        "## Input and preprocessing",
        f"8-bit RGB fundus photograph, any size: resized so the long side is {prep['working_size']} px "
        f"(Lanczos), scaled to [0, 1] (uint8 / 255), channel-first, zero-padded to a multiple of "
        f"{prep['size_multiple']}; maps are resized back to the source grid (`candor.preprocess`).",
        "",
        "## Training data",
        f"**{str(training.get('data', 'unknown')).upper()}.** " + (
            "Synthetic fundus photographs from `training.synth.fundus.generate_fundus` (FOV disc, choroidal "
            "texture, optic disc, macula, branching tapering arcades, vignetting, blur, noise) with exact vessel "
            f"masks; {training.get('images')} images, keys `{training.get('image_seeds')}`, vessel fraction in "
            f"the FOV {training.get('vessel_fraction_in_fov')}. No patient data."
            if training.get("data") == "synthetic" else "See `configs/metadata.json` → `training`."),
        "",
        "## Training procedure",
        f"- Loss: `{training.get('loss')}`; optimizer: {training.get('optimizer')}.",
        f"- {training.get('steps')} steps, batch {training.get('batch')}, random {training.get('crop')} px crops, "
        f"seed {training.get('seed')}; augmentation: {training.get('augmentation')}.",
        f"- Final training loss (mean of last 50 steps): {training.get('final_loss')}; "
        f"{training.get('train_seconds')} s of training steps on CPU (torch {training.get('torch')}, "
        f"MONAI {training.get('monai')}).",
        f"- Command: `{training.get('command')}`",
        "",
        "## Measured figures (SYNTHETIC held-out images — not real fundus photographs)",
    ]
    if evaluation is None:
        lines += ["Not evaluated yet: run `python -m training.vessels.evaluate --model <this folder>`.", ""]
    else:
        lines += [
            f"{evaluation['images']} held-out synthetic images at {evaluation['working_size']} px, keys "
            f"`{evaluation['image_seeds']}`; T = {evaluation['mc_samples']} MC-dropout passes "
            f"(seed {evaluation['mc_seed']} + k); all pixels inside the FOV; mean ± sample std over images.",
            "",
            "| metric (synthetic data) | value |",
            "|---|---|",
        ]
        lines += [f"| {label} | {_fmt(evaluation['metrics'][name], 2 if name == 'seconds' else 3)} |"
                  for name, label in METRICS.items()]
        lines += [
            "",
            f"Command: `{evaluation['command']}` ({evaluation.get('threads', '?')} torch CPU thread(s)).",
            "",
            "How to read these: the synthetic images come from the same generator as the training images, so "
            "these figures measure the pipeline and the uncertainty maps on an easy, in-distribution task. They "
            "are not an accuracy claim: on real photographs (DRIVE) published U-Nets reach Dice ≈ 0.82 and a "
            "second human observer 0.79, and this model has not been measured there. Uncertainty → error AUROC "
            "ranks pixels within an image (errors sit on vessel borders and thin vessels, where every uncertainty "
            "map is high); it says nothing about detecting out-of-distribution images.",
            "",
        ]
        lines += [f"![{name} (synthetic data)]({name})" for name in evaluation.get("figures", [])]
        lines += [""]
    lines += [
        "## Limitations",
        "- **Synthetic domain gap.** Trained and measured only on synthetic images; real photographs differ in "
        "vessel appearance, pathology (haemorrhages, exudates, drusen), camera, compression and artefacts. "
        "Expect lower accuracy and higher epistemic uncertainty on real data.",
        "- **No DRIVE (or other real data) figures were measured here.** Published U-Nets reach Dice ≈ 0.81–0.83 "
        "on DRIVE; nothing here shows this model does.",
        "- Uncertainty is MC dropout (same p in every block): an approximation whose calibration is reported above "
        "only for synthetic data; aleatoric here is the expected entropy, not a learned noise model.",
        "- Scale: the network expects a DRIVE-like field of view (~45°) at the working size; other FOVs need "
        "retraining or a matching working size.",
        "",
        "## Retrain on DRIVE",
        "Download DRIVE (https://drive.grand-challenge.org/, registration required) and keep its layout "
        "(`training/images/21_training.tif`, `training/1st_manual/21_manual1.gif`, "
        "`training/mask/21_training_mask.gif`, same under `test/`). Then:",
        "",
        "```",
        "python -m training.vessels.train --out models/fundus_vessels --data /path/to/DRIVE --steps 2000",
        "python -m training.vessels.evaluate --model models/fundus_vessels --images 20 --seed 1000",
        "```",
        "",
        "The evaluate command measures synthetic images only; score the DRIVE test split with "
        "`training.data.drive.load_drive(root, 'test')` and `training.metrics` before quoting real-data figures.",
        "",
    ]
    if metadata.get("saliency_sanity"):  # measured by python -m training.saliency_sanity: kept on a rewrite
        lines += [card_section(metadata["saliency_sanity"]), ""]
    path = docs / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by the CLI arguments; returns what was written to metrics.json."""
    if args.images < 1:
        raise ValueError(f"--images must be ≥ 1, got {args.images}")
    started = time.perf_counter()
    bundle = load_bundle(args.model)
    size = bundle.preprocessing.working_size
    per_image, example = [], None
    reliability = np.zeros((3, ECE_BINS))
    for k in tqdm(range(args.images), desc="evaluate", unit="img"):
        sample = generate_fundus(size, synthetic_rng(EVAL_STREAM, args.seed, k), "RL"[k % 2])
        metrics, arrays = evaluate_sample(bundle, sample, args.mc_samples, args.mc_seed + k)
        per_image.append({"index": k, **metrics})
        counts, mean_prob, frequency = calibration_bins(arrays["probability"], sample.vessels, sample.fov, ECE_BINS)
        reliability += np.stack([counts, np.nan_to_num(mean_prob) * counts, np.nan_to_num(frequency) * counts])
        if example is None:
            example = (sample, arrays)
        logger.info("image %d: dice %.3f auc %s ece %.4f", k, metrics["dice"], metrics["roc_auc"], metrics["ece"])
    result = {
        "data": "synthetic (training.synth.fundus.generate_fundus) — not real fundus photographs",
        "images": args.images,
        "image_seeds": f"numpy.random.default_rng([{EVAL_STREAM}, {args.seed}, k]), k < {args.images}",
        "working_size": size,
        "mc_samples": args.mc_samples,
        "mc_seed": args.mc_seed,
        "threads": torch.get_num_threads(),
        "threshold": 0.5,
        "ece_bins": ECE_BINS,
        "region": "inside the field-of-view mask",
        "metrics": summarise(per_image),
        "per_image": per_image,
        "command": "python -m training.vessels.evaluate " + " ".join(shlex.quote(a) for a in args.argv),
    }
    docs = Path(args.model) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    sample, arrays = example
    result["figures"] = _figures(docs, sample, arrays, reliability,
                                 f"held-out image 0, T = {args.mc_samples}, {bundle.name} {bundle.version}")
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_model_card(args.model, record_evaluation(args.model, result), result)
    for name, label in METRICS.items():
        logger.info("%-60s %s", label, _fmt(result["metrics"][name]))
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.vessels.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. models/fundus_vessels)")
    parser.add_argument("--images", type=int, default=20, help="number of held-out synthetic images")
    parser.add_argument("--seed", type=int, default=1000, help="evaluation set seed (keys [2, seed, k])")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout passes T (≥ 2)")
    parser.add_argument("--mc-seed", type=int, default=0, help="dropout-mask seed of image k is mc_seed + k")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, for a shared CPU)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_cli(evaluate, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
