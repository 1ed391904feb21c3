"""Chest classifier: a 2-step training run gives a loadable bundle, evaluation writes metrics and card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from candor.bundle import load_bundle
from candor.uncertainty import dropout_modules
from training.chest import evaluate as chest_evaluate
from training.chest import train as chest_train
from training.chest.evaluate import multilabel_uncertainty, pointing_summary
from training.synth.chest import FINDINGS


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chest")
    out = root / "chest_findings"
    chest_train.main(["--out", str(out), "--steps", "2", "--batch", "2", "--size", "64", "--pool", "3",
                      "--no-cache", "--checkpoint-dir", str(root / "checkpoints"), "--seed", "1"])
    return out


def test_two_step_run_writes_a_loadable_bundle(tiny_model):
    bundle = load_bundle(tiny_model)
    meta = bundle.metadata
    assert bundle.name == "candor-chest-findings" and bundle.version == "0.1.0" and bundle.task == "chest_findings"
    assert bundle.labels == dict(enumerate(FINDINGS))
    assert meta["output"] == "multilabel_sigmoid"
    assert meta["preprocessing"] == {"working_size": 64, "size_multiple": 16, "channels": "MONOCHROME"}
    assert meta["training"]["steps"] == 2 and meta["training"]["data"] == "synthetic"
    assert isinstance(bundle.network.get_submodule(meta["gradcam_layer"]), torch.nn.Module)
    assert len(dropout_modules(bundle.network)) > 0
    with torch.no_grad():
        assert bundle.network(torch.rand(1, 1, 64, 64)).shape == (1, len(FINDINGS))
    assert (tiny_model / "models" / "model.pt").stat().st_size < 10 * 2**20
    assert "Not evaluated yet" in (tiny_model / "docs" / "README.md").read_text(encoding="utf-8")
    assert (tiny_model.parent / "checkpoints" / "step_000002.pt").is_file()


def test_resume_refuses_other_settings(tiny_model):
    checkpoint = tiny_model.parent / "checkpoints" / "step_000002.pt"
    args = chest_train.parse_args(["--out", str(tiny_model.parent / "other"), "--steps", "2", "--batch", "4",
                                   "--size", "64", "--pool", "3", "--no-cache", "--seed", "1",
                                   "--resume", str(checkpoint)])
    with pytest.raises(ValueError, match="--batch 2"):
        chest_train.train(args)


def test_warm_start_records_its_origin_and_refuses_another_network(tiny_model, tmp_path):
    common = ["--steps", "1", "--batch", "2", "--size", "64", "--pool", "3", "--no-cache", "--seed", "2",
              "--checkpoint-dir", str(tmp_path / "checkpoints"), "--init-from", str(tiny_model)]
    chest_train.main(["--out", str(tmp_path / "warm"), *common])
    warm = load_bundle(tmp_path / "warm").metadata["training"]["warm_start"]
    assert warm["from"] == str(tiny_model) and warm["training"]["steps"] == 2
    assert "Warm-started from" in (tmp_path / "warm" / "docs" / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="differs"):
        chest_train.main(["--out", str(tmp_path / "other"), *common, "--dropout", "0.3"])


def test_chestxray14_root_trains_and_evaluates_without_masks(tmp_path):
    root = tmp_path / "cxr14"
    (root / "images").mkdir(parents=True)
    rows = [("00000001_000.png", "Effusion|Atelectasis"), ("00000002_000.png", "No Finding"),
            ("00000003_000.png", "Nodule")]
    header = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position"
    (root / "Data_Entry_2017.csv").write_text(
        "\n".join([header] + [f"{n},{labels},0,{i},50,F,PA" for i, (n, labels) in enumerate(rows)]) + "\n")
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000002_000.png\n")
    (root / "test_list.txt").write_text("00000003_000.png\n")
    for index, (name, _labels) in enumerate(rows):
        Image.fromarray(np.full((80, 96), 40 * (index + 1), np.uint8)).save(root / "images" / name)
    out = tmp_path / "real"
    chest_train.main(["--out", str(out), "--data", str(root), "--steps", "1", "--batch", "2", "--size", "64",
                      "--checkpoint-dir", str(tmp_path / "checkpoints")])
    training = load_bundle(out).metadata["training"]
    assert training["images"] == 2 and training["prevalence"]["pleural_effusion"] == 0.5
    chest_evaluate.main(["--model", str(out), "--data", str(root), "--images", "1", "--mc-samples", "2"])
    metrics = json.loads((out / "docs" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"].startswith("ChestX-ray14") and metrics["pointing_game"] is None
    assert metrics["findings"]["nodule"]["positives"] == 1 and metrics["findings"]["nodule"]["auroc"] is None
    assert "ChestX-ray14 test subset" in (out / "docs" / "README.md").read_text(encoding="utf-8")


def test_augmented_batch_has_the_working_size_and_labels():
    pool = chest_train.Pool(np.full((2, 64, 64), 128, np.uint8), np.eye(2, 4, dtype=np.float32), None, 64)
    images, labels = chest_train.sample_batch(pool, np.random.default_rng(0), 3)
    assert images.shape == (3, 1, 64, 64) and labels.shape == (3, 4)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert not torch.allclose(images[0], images[1])  # each image gets its own augmentation


def test_evaluate_on_two_images_writes_metrics_and_card(tiny_model):
    chest_evaluate.main(["--model", str(tiny_model), "--images", "2", "--seed", "5000", "--mc-samples", "2",
                         "--methods", "gradcam", "--costly-pairs", "0"])
    metrics = json.loads((tiny_model / "docs" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["images"] == 2 and metrics["mc_samples"] == 2 and len(metrics["per_image"]) == 2
    assert set(metrics["findings"]) == set(FINDINGS)
    for finding in metrics["findings"].values():
        assert 0.0 <= finding["ece"] <= 1.0 and finding["images"] == 2
    # held-out images 0 and 1 of seed 5000 carry 2 + 3 findings: five (image, finding) pairs
    assert set(metrics["pointing_game"]) == {"gradcam"} and metrics["pointing_game"]["gradcam"]["all"]["pairs"] == 5
    assert all((tiny_model / "docs" / name).is_file() for name in metrics["figures"]) and metrics["figures"]
    card = (tiny_model / "docs" / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in card and "No ChestX-ray14" in card and "--data /path/to/CXR14" in card
    assert json.loads((tiny_model / "configs" / "metadata.json").read_text())["evaluation"]["images"] == 2


def test_multilabel_uncertainty_separates_disagreement_from_noise():
    agree = torch.full((4, 2), 0.5)
    disagree = torch.tensor([[0.02, 0.5], [0.98, 0.5], [0.02, 0.5], [0.98, 0.5]])
    calm, torn = multilabel_uncertainty(agree), multilabel_uncertainty(disagree)
    assert calm["epistemic"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert calm["total"] == pytest.approx([np.log(2)] * 2, abs=1e-6)
    assert torn["mean"][0] == pytest.approx(0.5) and torn["std"][0] == pytest.approx(0.48, abs=1e-6)
    assert torn["epistemic"][0] > 0.5 and torn["epistemic"][1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="expected"):
        multilabel_uncertainty(torch.rand(3, 2, 2))


def test_pointing_summary_averages_per_method_and_finding():
    rows = [{"method": "gradcam", "finding": "nodule", "hit": 1.0, "hit_tolerance": 1.0, "mass_inside": 0.2,
             "chance": 0.01, "chance_tolerance": 0.05, "seconds": 0.1},
            {"method": "gradcam", "finding": "cardiomegaly", "hit": 0.0, "hit_tolerance": 1.0, "mass_inside": 0.4,
             "chance": 0.2, "chance_tolerance": 0.3, "seconds": 0.3}]
    summary = pointing_summary(rows)
    assert summary["gradcam"]["all"]["hit"] == pytest.approx(0.5) and summary["gradcam"]["all"]["pairs"] == 2
    assert summary["gradcam"]["nodule"]["hit"] == 1.0 and "pneumothorax" not in summary["gradcam"]
