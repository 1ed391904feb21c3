"""Training and evaluation of Candor's fluorescence nucleus segmentation and counting model.

``python -m training.nuclei.train`` writes the model folder (``models/microscopy_nuclei``);
``python -m training.nuclei.evaluate`` chooses the marker threshold and calibrates the count
interval on held-out images, measures AP, count error and interval coverage on a disjoint
test set, and rewrites the model card. The card writer lives here because both commands
write it (train: not yet evaluated; evaluate: with its figures). The runtime
post-processing lives in :mod:`candor.instances`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.saliency_sanity import card_section

#: Per-image metrics of the evaluation, with the labels the card and the log use.
METRICS = {
    "ap50": "AP@0.5 = TP/(TP+FP+FN), IoU > 0.5 (DSB2018)",
    "dsb_score": "DSB2018 score: mean AP over IoU 0.5…0.95",
    "f1_50": "detection F1 at IoU > 0.5",
    "abs_error": "count absolute error: count of the mean prediction vs true",
    "abs_pct_error": "count absolute percentage error (%)",
    "abs_error_mc_mean": "count absolute error: mean of the T per-sample counts vs true",
    "mc_std": "σ of the T per-sample counts",
    "covered_raw": "true count inside the raw 90 % interval (s = 1)",
    "covered_calibrated": "true count inside the calibrated 90 % interval",
    "width_calibrated": "width of the calibrated interval (high − low)",
    "seconds": "seconds per image (T passes + post-processing, 1 thread on a shared CPU)",
}


def num(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or "undefined"."""
    return "undefined" if value is None else f"{value:.{digits}f}"


def fmt(entry: dict[str, Any], digits: int = 3) -> str:
    """A summary entry {"mean", "std", "n"} as "mean ± std (n = …)"."""
    if entry["mean"] is None:
        return "undefined"
    std = "n/a" if entry["std"] is None else f"{entry['std']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {std} (n = {entry['n']})"


def write_model_card(model_dir: str | Path, metadata: dict[str, Any], evaluation: dict[str, Any] | None) -> Path:
    """(Re)write ``docs/README.md`` from the bundle metadata and, if given, the evaluation summary."""
    docs = Path(model_dir) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    training, prep, post = metadata.get("training", {}), metadata["preprocessing"], metadata["postprocessing"]
    synthetic = training.get("data") == "synthetic"
    lines = [
        f"# {metadata['name']} {metadata['version']} — fluorescence nucleus segmentation and counting "
        "with MC-dropout uncertainty",
        "", "**Research use only. Not for diagnosis or any clinical decision.**", "",
        "## What it is",
        "A small 2D U-Net (MONAI `BasicUNet`, features (8, 16, 32, 64, 128, 8), ~0.49 M parameters, `nn.Dropout(p)` "
        f"after every convolution, p = {training.get('dropout')}) that labels each pixel of a fluorescence nucleus "
        "image (DNA stain, e.g. Hoechst/DAPI) as background, nucleus interior or nucleus boundary. "
        "`candor.instances.analyse_instances` turns T MC-dropout samples (`candor.uncertainty.mc_sample`) into: "
        "nucleus instances of the mean prediction (marker-controlled watershed: markers = interior regions, "
        "flooding the foreground), the count with a 90 % interval from the counts of the T samples, and per "
        "nucleus a detection confidence (fraction of samples with a matching instance, IoU > 0.5) and its mean "
        "epistemic uncertainty (mutual information, nats).",
        "", "## Intended use",
        "Research and demonstration of counting with uncertainty in Candor. Not validated on real microscopy; "
        "its outputs must not inform care.",
        "", "## Input, preprocessing and post-processing",
        "8-bit greyscale image (higher = brighter; a colour source is read by its "
        f"{'brightest channel, where a fluorescence stain shows' if prep.get('colour_to_grey') == 'max' else 'luminance'}"
        f"), any size: resized so the long side is {prep['working_size']} "
        f"px (Lanczos), scaled to [0, 1], zero-padded to a multiple of {prep['size_multiple']}. Post-processing "
        f"(`configs/metadata.json` → `postprocessing`, {post.get('units')}): interior threshold "
        f"{post['interior_threshold']}, foreground threshold {post['foreground_threshold']}, smallest marker "
        f"{post['min_marker_area']} px, smallest nucleus {post['min_area']} px; interval level "
        f"{post.get('count_interval_level')}, spread scale {post.get('count_interval_scale')} "
        f"(calibrated: {post.get('count_interval_calibrated')}). Counts are taken on the working grid.",
        "", "## Training data",
        f"**{'SYNTHETIC' if synthetic else str(training.get('data'))}.** " + (
            "Images from `training.synth.nuclei.generate_nuclei`: touching and partly overlapping nuclei of varying "
            "size, shape, brightness and texture, uneven illumination, Gaussian blur, Poisson + Gaussian noise, exact "
            f"instance masks; {training.get('images')} images of {prep['working_size']} px with "
            f"{training.get('nuclei')} nuclei, keys `{training.get('image_seeds')}`. No real microscopy."
            if synthetic else "See `configs/metadata.json` → `training`."),
        "", "## Training procedure",
        f"- Target: `{training.get('target')}`; loss `{training.get('loss')}`; optimizer {training.get('optimizer')}.",
        f"- {training.get('steps')} steps, batch {training.get('batch')}, random {training.get('crop')} px crops, "
        f"seed {training.get('seed')}; augmentation: {training.get('augmentation')}.",
        f"- Final training loss (mean of last 50 steps) {training.get('final_loss')}; {training.get('train_seconds')} s "
        f"of training steps on a shared CPU (torch {training.get('torch')}, MONAI {training.get('monai')}).",
        f"- Command: `{training.get('command')}`",
        "", f"## Measured figures ({'SYNTHETIC held-out images — not real microscopy' if synthetic else 'see below'})",
    ]
    if evaluation is None:
        lines += ["Not evaluated yet: run `python -m training.nuclei.evaluate --model <this folder>`.", ""]
    else:
        conf, density = evaluation["metrics"]["nucleus_confidence"], evaluation["metrics"]["coverage_by_density"]
        lines += [
            f"Data: {evaluation['data']}. Test set: {evaluation['images']} images (keys `{evaluation['image_seeds']}`); "
            f"the interior threshold ({evaluation['postprocessing']['interior_threshold']}, best AP@0.5 of "
            f"{[t['interior_threshold'] for t in evaluation['threshold_tuning']]}) and the interval scale s = "
            f"{evaluation['count_interval_scale']} were chosen on {evaluation['calibration_images']} separate "
            f"calibration images (coverage there {num(evaluation['calibration_coverage'], 2)}). T = "
            f"{evaluation['mc_samples']} MC-dropout passes; mean ± sample std over test images.",
            "", "| metric (test set) | value |", "|---|---|",
        ]
        lines += [f"| {label} | {fmt(evaluation['metrics'][name], 2 if name == 'seconds' else 3)} |"
                  for name, label in METRICS.items()]
        lines += [
            f"| mean detection confidence, matched (TP) / unmatched (FP) nuclei | {num(conf['mean_tp'])} / "
            f"{num(conf['mean_fp'])} (n = {conf['n_tp']} / {conf['n_fp']}) |",
            f"| AUROC of detection confidence, TP vs FP nuclei | {num(conf['auroc_tp_vs_fp'])} |",
            f"| calibrated coverage, images with ≤ / > {density['median_true_count']:g} nuclei (median) | "
            f"{density['sparse']:.2f} / {density['dense']:.2f} (n = {density['n_sparse']} / {density['n_dense']}) |",
            "", "Count MAE = mean `abs_error`; MAPE = mean `abs_pct_error`; coverage = mean `covered_*`. "
            "Interval: mean ± z₀.₉₅·s·σ of the T per-sample counts, rounded outward to integers.",
            "", f"Command: `{evaluation['command']}`", "",
        ]
        lines += [f"![{name} ({'synthetic data' if synthetic else 'real data'})]({name})"
                  for name in evaluation.get("figures", [])] + [""]
    lines += [
        "## Limitations",
        "- **Synthetic domain gap.** Trained and measured only on synthetic images; real nuclei differ in texture, "
        "shape, clumping, debris, mitoses, out-of-focus light and annotation style. No DSB2018 or BBBC039 figure was "
        "measured here. For scale only (different data, not comparable): on DSB2018 stage 2 the winning ensemble scored "
        "0.63 and the CellProfiler reference 0.53 on the same mean-AP metric (Caicedo et al. 2019).",
        "- **Scale.** The network sees images at a long side of the working size; training nuclei had radii of "
        "~3–17 px (mostly 5–12 px) after that resizing; much smaller or larger nuclei are outside what it learnt.",
        "- **Count interval.** " + (
            f"On the test set the raw MC-dropout interval (s = 1) covered "
            f"{evaluation['metrics']['covered_raw']['mean']:.0%} of true counts and the calibrated one "
            f"{evaluation['metrics']['covered_calibrated']['mean']:.0%}. " if evaluation else "") +
        "The spread is scaled globally, while count errors grow with density (merged touching nuclei bias counts "
        "downward): misses concentrate on crowded images (`counts.png`). The scale was calibrated on synthetic "
        "images; re-calibrate it on real data (`--data`) before trusting it there. Coverage is a frequency over "
        "images, not a guarantee for any one image.",
        "- Heavily overlapping nuclei (more than ~30 % hidden) are not in the training data; each pixel belongs to "
        "one nucleus at most.",
        "", "## Retrain and re-evaluate on DSB2018 or BBBC039",
        "DSB2018 `stage1_train` (https://bbbc.broadinstitute.org/BBBC038; `<id>/images/<id>.png`, `<id>/masks/*.png`; "
        "fluorescence images are selected by a heuristic, split 70/10/20 by a hash of the id) or BBBC039 "
        "(https://bbbc.broadinstitute.org/BBBC039; `images/*.tif`, `masks/*.png`, `metadata/{training,validation,"
        "test}.txt`):",
        "", "```",
        "python -m training.nuclei.train --out models/microscopy_nuclei --data DSB2018_ROOT --steps 3000",
        "python -m training.nuclei.evaluate --model models/microscopy_nuclei --data DSB2018_ROOT "
        "--calibration-images 100 --images 200",
        "```", "",
        "With `--data`, evaluation calibrates on the validation split and reports the test split.", "",
    ]
    if metadata.get("saliency_sanity"):  # measured by python -m training.saliency_sanity: kept on a rewrite
        lines += [card_section(metadata["saliency_sanity"]), ""]
    path = docs / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
