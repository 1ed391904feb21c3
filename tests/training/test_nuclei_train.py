"""A tiny nucleus training run gives a loadable bundle; evaluating it writes metrics, metadata and card."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from candor.bundle import load_bundle
from candor.instances import PostProcessing
from candor.uncertainty import dropout_modules
from training.nuclei import evaluate as nuclei_evaluate
from training.nuclei import train as nuclei_train


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nuclei")
    out = root / "microscopy_nuclei"
    args = nuclei_train.parse_args([
        "--out", str(out), "--steps", "2", "--batch", "2", "--crop", "32", "--pool", "2",
        "--working-size", "96", "--checkpoint-dir", str(root / "checkpoints"), "--checkpoint-every", "1",
    ])
    nuclei_train.train(args)
    return out


def test_tiny_training_run_writes_a_loadable_bundle(tiny_bundle: Path):
    bundle = load_bundle(tiny_bundle)
    assert bundle.name == "candor-microscopy-nuclei" and bundle.version == "0.1.0"
    assert bundle.task == "microscopy_nuclei"
    assert bundle.labels == {0: "background", 1: "nucleus", 2: "boundary"}
    assert bundle.preprocessing.channels == "MONOCHROME" and bundle.preprocessing.working_size == 96
    assert dropout_modules(bundle.network)
    with torch.no_grad():
        assert bundle.network(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    post = bundle.metadata["postprocessing"]
    assert PostProcessing.from_metadata(post) == nuclei_train.POSTPROCESSING
    assert post["count_interval_scale"] == 1.0 and post["count_interval_calibrated"] is False
    assert bundle.metadata["training"]["steps"] == 2
    assert (tiny_bundle / "models" / "model.pt").stat().st_size < 10 * 2**20
    assert "SYNTHETIC" in (tiny_bundle / "docs" / "README.md").read_text(encoding="utf-8")


def test_resume_refuses_other_settings(tiny_bundle: Path, tmp_path: Path):
    checkpoint = max((tiny_bundle.parent / "checkpoints").glob("step_*.pt"))
    args = nuclei_train.parse_args(["--out", str(tmp_path / "m"), "--steps", "3", "--batch", "3", "--crop", "32",
                                    "--pool", "2", "--working-size", "96", "--resume", str(checkpoint)])
    with pytest.raises(ValueError, match="--batch"):
        nuclei_train.train(args)


def test_sample_batch_pads_small_images_and_keeps_targets_aligned():
    image = np.zeros((20, 24), np.uint8)
    image[5:10, 5:10] = 255
    target = (image > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    images, targets = nuclei_train.sample_batch([image], [target], rng, batch=3, crop=32)
    assert images.shape == (3, 1, 32, 32) and targets.shape == (3, 1, 32, 32)
    assert targets.dtype == torch.int64
    for b in range(3):
        assert targets[b].sum() == 25
        assert (images[b][targets[b] == 0] == 0).all() and (images[b][targets[b] == 1] > 0).all()


def test_evaluate_one_tiny_image_writes_metrics(tiny_bundle: Path):
    args = nuclei_evaluate.parse_args(["--model", str(tiny_bundle), "--images", "1", "--calibration-images", "1",
                                       "--mc-samples", "2"])
    result = nuclei_evaluate.evaluate(args)
    metrics = json.loads((tiny_bundle / "docs" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["images"] == 1 and metrics["calibration_images"] == 1 and metrics["mc_samples"] == 2
    for name in ("ap50", "abs_error", "abs_pct_error", "covered_calibrated"):
        assert metrics["metrics"][name]["n"] == 1
    assert 0.0 <= metrics["metrics"]["ap50"]["mean"] <= 1.0
    row = metrics["per_image"][0]
    assert len(row["per_sample"]) == 2 and row["abs_error"] == abs(row["count"] - row["true_count"])
    metadata = json.loads((tiny_bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["postprocessing"]["count_interval_scale"] == result["count_interval_scale"]
    assert metadata["evaluation"]["metrics"]["ap50"] == metrics["metrics"]["ap50"]
    card = (tiny_bundle / "docs" / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC held-out images" in card and "AP@0.5" in card
    for figure in metrics["figures"]:
        assert (tiny_bundle / "docs" / figure).is_file()


def test_calibration_picks_the_smallest_scale_reaching_the_level():
    rows = [{"per_sample": [10, 12, 11, 13], "true_count": true} for true in (11, 12, 15, 9, 17)]
    scale, coverage = nuclei_evaluate.calibrate_scale(rows, 0.8)
    # mean 11.5, σ 1.291; at level 0.8, z = 1.2816 and the half-width is 1.6546·s. 15 is covered once
    # ceil(11.5 + 1.6546·s) ≥ 15, i.e. s > 1.511 → 1.55 on the grid (9 needs s > 0.91, 17 would need
    # s > 2.72): four of five = 0.8
    assert scale == pytest.approx(1.55) and coverage == pytest.approx(0.8)
    # at level 0.95 (z = 1.96) all five are needed: 17 is covered once 2.5303·s > 4.5, s > 1.778 → 1.8
    assert nuclei_evaluate.calibrate_scale(rows, 0.95) == pytest.approx((1.8, 1.0))
