"""A tiny training run, resume, and evaluation on one tiny image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from candor.bundle import load_bundle
from candor.uncertainty import dropout_modules
from training.synth.fundus import generate_fundus
from training.vessels import evaluate, train

TINY = ["--batch", "1", "--crop", "32", "--pool", "1", "--working-size", "64", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("vessels")
    model, checkpoints = root / "model", root / "checkpoints"
    train.main(["--out", str(model), "--steps", "2", "--checkpoint-dir", str(checkpoints), *TINY])
    return model, checkpoints


def test_tiny_run_writes_a_loadable_bundle_with_dropout(trained):
    model, checkpoints = trained
    bundle = load_bundle(model)
    assert bundle.task == "fundus_vessels" and bundle.labels == {0: "background", 1: "retinal vessel"}
    assert bundle.preprocessing.working_size == 64 and bundle.preprocessing.channels == "RGB"
    assert dropout_modules(bundle.network)
    training = bundle.metadata["training"]
    assert training["steps"] == 2 and training["data"] == "synthetic" and "DiceCELoss" in training["loss"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000001.pt", "step_000002.pt"]
    assert not (model / "checkpoints").exists()
    card = (model / "docs" / "README.md").read_text(encoding="utf-8")
    assert "Not evaluated yet" in card and "Research use only" in card


def test_resume_continues_and_refuses_other_settings(trained, tmp_path: Path):
    _, checkpoints = trained
    out = tmp_path / "resumed"
    args = ["--out", str(out), "--steps", "3", "--checkpoint-dir", str(tmp_path / "ck"), *TINY]
    train.main([*args, "--resume", str(checkpoints / "step_000002.pt")])
    assert load_bundle(out).metadata["training"]["steps"] == 3
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["step_000003.pt"]  # only step 3 was run
    with pytest.raises(ValueError, match="seed"):
        train.main([*args, "--seed", "5", "--resume", str(checkpoints / "step_000002.pt")])


def test_batches_are_scaled_like_inference_input():
    sample = generate_fundus(64, 0)
    images, labels = train.sample_batch([sample], np.random.default_rng(0), 3, 64)
    assert images.shape == (3, 3, 64, 64) and labels.shape == (3, 1, 64, 64)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    for label in labels[:, 0].numpy().astype(bool):  # whole-image crops: the mask up to flips
        assert any(np.array_equal(label, flipped) for flipped in
                   (sample.vessels, sample.vessels[::-1], sample.vessels[:, ::-1], sample.vessels[::-1, ::-1]))


def test_retrains_on_a_drive_layout_with_one_command(tmp_path: Path):
    sample = generate_fundus(64, 1)
    folder = tmp_path / "DRIVE" / "training"
    for sub in ("images", "1st_manual", "mask"):
        (folder / sub).mkdir(parents=True)
    Image.fromarray(sample.image[:, :60]).save(folder / "images" / "21_training.tif")
    Image.fromarray(sample.vessels[:, :60].astype(np.uint8) * 255).save(folder / "1st_manual" / "21_manual1.gif")
    Image.fromarray(sample.fov[:, :60].astype(np.uint8) * 255).save(folder / "mask" / "21_training_mask.gif")
    out = tmp_path / "drive_model"
    train.main(["--out", str(out), "--data", str(tmp_path / "DRIVE"), "--steps", "1", "--batch", "1", "--crop", "32",
                "--working-size", "48", "--checkpoint-dir", str(tmp_path / "ck")])
    training = load_bundle(out).metadata["training"]
    assert training["data"] == "DRIVE training split" and training["images"] == 1
    (folder / "mask" / "21_training_mask.gif").unlink()
    with pytest.raises(FileNotFoundError, match="21_training_mask.gif"):
        train.main(["--out", str(out), "--data", str(tmp_path / "DRIVE"), "--steps", "1", "--crop", "32"])


def test_crop_must_fit_the_network():
    with pytest.raises(ValueError, match="multiple of 16"):
        train.main(["--out", "unused", "--crop", "30"])
    with pytest.raises(ValueError, match="at least 32"):
        train.main(["--out", "unused", "--crop", "16"])


def test_evaluate_one_tiny_image_writes_metrics_and_card(trained):
    model, _ = trained
    evaluate.main(["--model", str(model), "--images", "1", "--mc-samples", "2", "--seed", "1000"])
    metrics = json.loads((model / "docs" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["images"] == 1 and metrics["mc_samples"] == 2 and "synthetic" in metrics["data"]
    for name in ("dice", "roc_auc", "ece", "auroc_error_total", "auroc_error_aleatoric", "auroc_error_epistemic"):
        assert name in metrics["metrics"]
    assert 0.0 <= metrics["metrics"]["dice"]["mean"] <= 1.0 and 0.0 <= metrics["metrics"]["ece"]["mean"] <= 1.0
    assert metrics["per_image"][0]["index"] == 0
    for figure in metrics["figures"]:
        assert (model / "docs" / figure).stat().st_size > 1000
    card = (model / "docs" / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in card and "python -m training.vessels.evaluate" in card and "No DRIVE" in card
    assert load_bundle(model).metadata["evaluation"]["images"] == 1
