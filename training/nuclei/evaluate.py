"""Calibrate the count interval and evaluate a nucleus model folder; write its model card.

Usage::

    python -m training.nuclei.evaluate --model models/microscopy_nuclei --calibration-images 40 --images 60

Two disjoint held-out sets are drawn: *calibration* image k is
``generate_nuclei(working_size, synthetic_rng(CALIBRATION_STREAM, seed, k))`` and *test*
image k uses ``TEST_STREAM``; training used ``TRAIN_STREAM``, so no two sets share a
generator key. (With ``--data ROOT`` the validation and test splits of a DSB2018/BBBC039
copy are used instead.) Each image goes through :func:`candor.preprocess.to_network_input`,
T MC-dropout passes (:func:`candor.uncertainty.mc_sample`) and
:func:`candor.instances.analyse_instances`, as the app does.

On the calibration set, first the interior threshold of the watershed markers is chosen
among ``--interior-thresholds`` by mean AP@0.5, then the count interval ``mean ± z·s·σ``
of the T per-sample counts gets the smallest scale s (grid step 0.05) whose coverage
reaches the nominal level. Both go to ``configs/metadata.json`` → ``postprocessing``;
AP, count error and coverage (raw s = 1 and calibrated) are then reported on the *test*
set only. AP follows the DSB2018 definition, TP / (TP + FP + FN) with a match at IoU > 0.5
(Caicedo et al., Nat. Methods 2019). Every figure is measured on SYNTHETIC data unless ``--data`` says otherwise, and labelled so.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from candor.bundle import ModelBundle, load_bundle
from candor.instances import (
    PostProcessing,
    analyse_instances,
    count_statistics,
    detection_counts,
    dsb_score,
    match_instances,
)
from candor.preprocess import to_network_input
from candor.uncertainty import decompose, mc_sample
from training.common import record_evaluation, run_cli
from training.data.bbbc import load_nuclei_dataset, resize_nuclei_sample
from training.metrics import roc_auc
from training.nuclei import METRICS, fmt, write_model_card
from training.synth.nuclei import CALIBRATION_STREAM, TEST_STREAM, NucleiSample, generate_nuclei, synthetic_rng

logger = logging.getLogger("training.nuclei.evaluate")

SCALE_GRID = np.round(np.arange(0.5, 20.0001, 0.05), 2)


def evaluate_sample(bundle: ModelBundle, sample: NucleiSample, candidates: Sequence[PostProcessing],
                    mc_samples: int, mc_seed: int, level: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """MC-dropout inference on one image (working grid), then instances, counts and scores per candidate.

    The T passes run once; each post-processing candidate gives one (scores, arrays) pair.
    """
    tick = time.perf_counter()
    sample = resize_nuclei_sample(sample, bundle.preprocessing.working_size)
    tensor, geometry = to_network_input(sample.image, bundle.preprocessing)
    rows, cols = geometry.resized_shape
    probs = mc_sample(bundle.network, tensor, mc_samples, mc_seed)[..., :rows, :cols]
    maps = decompose(probs)
    sampled = time.perf_counter() - tick
    truth, out = sample.instances, []
    for params in candidates:
        tick = time.perf_counter()
        analysis = analyse_instances(probs.numpy(), maps.epistemic, params, level)
        labels, count = analysis.labels, analysis.count
        matched = {pred for pred, _, _ in match_instances(labels, truth, 0.5)}
        detections = detection_counts(labels, truth, 0.5)
        result = {
            "name": sample.name, "true_count": sample.count, "count": count.count_of_mean,
            "per_sample": list(count.per_sample), "mc_mean": count.mean, "mc_std": count.std,
            "ap50": detections.average_precision, "f1_50": detections.f1, "dsb_score": dsb_score(labels, truth),
            "abs_error": abs(count.count_of_mean - sample.count),
            "abs_pct_error": 100.0 * abs(count.count_of_mean - sample.count) / max(sample.count, 1),
            "abs_error_mc_mean": abs(count.mean - sample.count), "seconds": sampled + time.perf_counter() - tick,
            "nuclei": [(n.confidence, n.mean_epistemic, n.label in matched) for n in analysis.nuclei],
        }
        out.append((result, {"sample": sample, "labels": labels, "epistemic": maps.epistemic,
                             "nuclei": analysis.nuclei}))
    return out


def _coverage(rows: list[dict[str, Any]], level: float, scale: float) -> float:
    return float(np.mean([count_statistics(r["per_sample"], level, scale).covers(r["true_count"]) for r in rows]))


def calibrate_scale(rows: list[dict[str, Any]], level: float) -> tuple[float, float]:
    """Smallest grid scale whose interval coverage on ``rows`` reaches ``level``; returns (scale, coverage).

    When even the largest scale falls short (images whose T counts all agree on a wrong
    value have σ = 0), the largest is returned and a warning says so.
    """
    for scale in SCALE_GRID:
        coverage = _coverage(rows, level, float(scale))
        if coverage >= level:
            return float(scale), coverage
    logger.warning("calibration: coverage %.3f < %.2f even at scale %.1f", coverage, level, SCALE_GRID[-1])
    return float(SCALE_GRID[-1]), coverage


def _images(args: argparse.Namespace, role: str, size: int) -> Iterator[NucleiSample]:
    """Held-out images: synthetic streams, or the validation (calibration) / test split of real data."""
    if args.data == "synthetic":
        stream, count = (CALIBRATION_STREAM, args.calibration_images) if role == "calibration" else \
            (TEST_STREAM, args.images)
        for k in range(count):
            yield generate_nuclei(size, synthetic_rng(stream, args.seed, k))
    else:
        samples = load_nuclei_dataset(args.data, "validation" if role == "calibration" else "test")
        yield from samples[: args.calibration_images if role == "calibration" else args.images]


def coverage_by_density(rows: list[dict[str, Any]]) -> dict[str, float | int]:
    """Calibrated coverage on images with at most / more than the median true count (errors grow with density)."""
    true = np.array([row["true_count"] for row in rows], np.float64)
    covered = np.array([row["covered_calibrated"] for row in rows], np.float64)
    median = float(np.median(true))
    sparse, dense = true <= median, true > median
    return {"median_true_count": median, "n_sparse": int(sparse.sum()), "n_dense": int(dense.sum()),
            "sparse": float(covered[sparse].mean()) if sparse.any() else float("nan"),
            "dense": float(covered[dense].mean()) if dense.any() else float("nan")}


def summarise(rows: list[dict[str, Any]], scale: float, level: float) -> dict[str, dict[str, float | int | None]]:
    """Mean and sample standard deviation (ddof = 1) of each metric over images."""
    for row in rows:
        estimate = count_statistics(row["per_sample"], level, scale)
        row["covered_raw"] = float(count_statistics(row["per_sample"], level, 1.0).covers(row["true_count"]))
        row["covered_calibrated"] = float(estimate.covers(row["true_count"]))
        row["width_calibrated"] = float(estimate.high - estimate.low)
    summary: dict[str, dict[str, float | int | None]] = {}
    for name in METRICS:
        values = np.array([row[name] for row in rows], dtype=np.float64)
        summary[name] = {"mean": float(values.mean()) if values.size else None,
                         "std": float(values.std(ddof=1)) if values.size > 1 else None, "n": int(values.size)}
    summary["coverage_by_density"] = coverage_by_density(rows)
    nuclei = [n for row in rows for n in row["nuclei"]]
    confidence = np.array([n[0] for n in nuclei])
    correct = np.array([n[2] for n in nuclei], bool)
    summary["nucleus_confidence"] = {
        "mean_tp": float(confidence[correct].mean()) if correct.any() else None,
        "mean_fp": float(confidence[~correct].mean()) if (~correct).any() else None,
        "auroc_tp_vs_fp": roc_auc(confidence, correct) if correct.any() and (~correct).any() else None,
        "n_tp": int(correct.sum()), "n_fp": int((~correct).sum()),
    }
    return summary


def _figures(docs: Path, example: dict[str, Any], rows: list[dict[str, Any]], scale: float, level: float,
             data_label: str) -> list[str]:
    """An example panel and a true-vs-predicted count plot with the calibrated intervals; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from skimage.segmentation import find_boundaries

    sample = example["sample"]
    grey = np.repeat(sample.image[..., None] / 255.0, 3, axis=-1)
    truth = grey.copy()
    truth[find_boundaries(sample.instances, mode="inner")] = (0.2, 1.0, 0.2)
    confidence = np.zeros(example["labels"].max() + 1)
    for nucleus in example["nuclei"]:
        confidence[nucleus.label] = nucleus.confidence
    predicted = grey.copy()
    edges = find_boundaries(example["labels"], mode="inner")
    predicted[edges] = plt.get_cmap("RdYlGn")(confidence[example["labels"][edges]])[:, :3]
    panels = [(f"image ({data_label})", grey, None), (f"truth: {sample.count} nuclei", truth, None),
              (f"prediction: {len(example['nuclei'])} nuclei, outline = detection confidence", predicted, None),
              ("epistemic (nats)", example["epistemic"], "magma")]
    figure, axes = plt.subplots(2, 2, figsize=(10, 10.4))
    for axis, (title, data, cmap) in zip(axes.ravel(), panels):
        shown = axis.imshow(data, cmap=cmap, interpolation="nearest")
        if cmap:
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
        axis.set_title(title, fontsize=11)
        axis.axis("off")
    figure.suptitle(f"{data_label.upper()} DATA — held-out test image 0\n(prediction outlines: green = detected in "
                    f"all MC samples, red = in few)", fontsize=12)
    figure.tight_layout()
    figure.savefig(docs / "example.png", dpi=80, bbox_inches="tight")
    plt.close(figure)

    estimates = [count_statistics(r["per_sample"], level, scale) for r in rows]
    true = np.array([r["true_count"] for r in rows])
    mean = np.array([e.mean for e in estimates])
    covered = np.array([e.covers(t) for e, t in zip(estimates, true)])
    figure, axis = plt.subplots(figsize=(5, 5))
    for flag, colour, name in ((True, "tab:blue", "covered"), (False, "tab:red", "missed")):
        pick = covered == flag
        low = mean[pick] - np.array([e.low for e, p in zip(estimates, covered) if p == flag])
        high = np.array([e.high for e, p in zip(estimates, covered) if p == flag]) - mean[pick]
        axis.errorbar(true[pick], mean[pick], yerr=[low, high], fmt="o", ms=3, color=colour, label=name, alpha=0.8)
    top = float(max(true.max(), max(e.high for e in estimates))) * 1.05
    axis.plot([0, top], [0, top], "--", color="grey")
    axis.set_xlabel("true count")
    axis.set_ylabel(f"MC mean count, calibrated {round(level * 100)} % interval")
    axis.set_title(f"Count intervals, {data_label} test set (s = {scale:.2f})\ncoverage {covered.mean():.1%}",
                   fontsize=10)
    axis.legend(loc="upper left", fontsize=8)
    figure.savefig(docs / "counts.png", dpi=72, bbox_inches="tight")
    plt.close(figure)
    return ["example.png", "counts.png"]


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the calibration and evaluation described by the CLI arguments; returns what went to metrics.json."""
    if args.images < 1:
        raise ValueError(f"--images must be ≥ 1, got {args.images}")
    started = time.perf_counter()
    bundle = load_bundle(args.model)
    post = bundle.metadata.get("postprocessing")
    if post is None:
        raise ValueError(f"{Path(args.model) / 'configs' / 'metadata.json'}: missing 'postprocessing'")
    stored, level = PostProcessing.from_metadata(post), float(post.get("count_interval_level", 0.9))
    candidates = [replace(stored, interior_threshold=t) for t in args.interior_thresholds] or [stored]
    size = bundle.preprocessing.working_size
    data_label = "synthetic" if args.data == "synthetic" else "real"
    calibration: list[list[dict[str, Any]]] = [[] for _ in candidates]
    for k, sample in enumerate(tqdm(list(_images(args, "calibration", size)), desc="calibration", unit="img")):
        for rows, (row, _) in zip(calibration, evaluate_sample(bundle, sample, candidates, args.mc_samples,
                                                                args.mc_seed + 100_000 + k, level)):
            rows.append(row)
    tuning = [{"interior_threshold": c.interior_threshold, "ap50": float(np.mean([r["ap50"] for r in rows])),
               "count_mae": float(np.mean([r["abs_error"] for r in rows]))} for c, rows in zip(candidates, calibration)
              if rows]
    if tuning:
        best = int(np.argmax([t["ap50"] for t in tuning]))
        params = candidates[best]
        scale, calibration_coverage = calibrate_scale(calibration[best], level)
        logger.info("calibration: interior threshold %.2f (AP@0.5 %.3f), interval scale %.2f (coverage %.3f)",
                    params.interior_threshold, tuning[best]["ap50"], scale, calibration_coverage)
    else:
        params, calibration_coverage = stored, None
        scale = float(post.get("count_interval_scale", 1.0))
        logger.warning("no calibration images: keeping the stored post-processing and interval scale %.2f", scale)
    test, example = [], None
    for k, sample in enumerate(tqdm(list(_images(args, "test", size)), desc="test", unit="img")):
        [(row, arrays)] = evaluate_sample(bundle, sample, [params], args.mc_samples, args.mc_seed + k, level)
        test.append(row)
        example = arrays if example is None else example
        logger.info("test %d: true %d, count %d, MC %.1f ± %.2f, AP@0.5 %.3f", k, row["true_count"], row["count"],
                    row["mc_mean"], row["mc_std"], row["ap50"])
    results = {"calibration": calibration[0] if tuning else [], "test": test}
    result = {
        "data": "synthetic (training.synth.nuclei.generate_nuclei) — not real microscopy"
        if data_label == "synthetic" else f"{args.data}: validation split (calibration), test split (test)",
        "images": len(results["test"]), "calibration_images": len(results["calibration"]),
        "image_seeds": f"test numpy.random.default_rng([{TEST_STREAM}, {args.seed}, k]); calibration "
                       f"[{CALIBRATION_STREAM}, {args.seed}, k]" if data_label == "synthetic" else None,
        "working_size": size, "mc_samples": args.mc_samples, "mc_seed": args.mc_seed, "level": level,
        "count_interval_scale": scale, "calibration_coverage": calibration_coverage,
        "postprocessing": params.to_metadata(), "threshold_tuning": tuning,
        "metrics": summarise(results["test"], scale, level),
        "per_image": [{k: v for k, v in row.items() if k != "nuclei"} for row in results["test"]],
        "command": "python -m training.nuclei.evaluate " + " ".join(shlex.quote(a) for a in args.argv),
    }
    docs = Path(args.model) / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    result["figures"] = _figures(docs, example, results["test"], scale, level, data_label)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)

    def store_calibration(metadata: dict[str, Any]) -> None:
        if results["calibration"]:
            metadata["postprocessing"].update(params.to_metadata())
            metadata["postprocessing"]["count_interval_scale"] = scale
            metadata["postprocessing"]["count_interval_calibrated"] = (f"{len(results['calibration'])} "
                                                                       f"{data_label} images")

    write_model_card(args.model, record_evaluation(args.model, result, store_calibration), result)
    for name, label in METRICS.items():
        logger.info("%-62s %s", label, fmt(result["metrics"][name]))
    logger.info("interval scale %.2f (calibration coverage %s)", scale, calibration_coverage)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.nuclei.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (e.g. models/microscopy_nuclei)")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a DSB2018/BBBC039 root")
    parser.add_argument("--images", type=int, default=60, help="number of test images")
    parser.add_argument("--calibration-images", type=int, default=40,
                        help="images to calibrate the count interval on (0: keep the stored scale)")
    parser.add_argument("--seed", type=int, default=1000, help="evaluation set seed (keys [stream, seed, k])")
    parser.add_argument("--mc-samples", type=int, default=20, help="MC-dropout passes T (≥ 2)")
    parser.add_argument("--mc-seed", type=int, default=0, help="dropout-mask seed of test image k is mc_seed + k")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: best on a shared CPU)")
    parser.add_argument("--interior-thresholds", default="0.5,0.6,0.7,0.8,0.9",
                        help="candidates chosen from by AP@0.5 on the calibration images ('' keeps the stored one)")
    args = parser.parse_args(argv)
    args.interior_thresholds = [float(v) for v in args.interior_thresholds.split(",") if v.strip()]
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_cli(evaluate, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
