"""The documentation figures: panel layout of the drawing functions, and the ``python -m app.figures`` CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from app import figures as cli
from candor.bundle import ModelBundle, Preprocessing, build_network, save_bundle
from candor.figures import (EXTRA_METHOD, SEED_METHODS, SYNTHETIC_NOTICE, saliency_figure, save_figure,
                            uncertainty_figure)
from candor.outputs import SALIENCY_TITLES
from studies import tiny_bundle
from training.synth import chest

CHEST_LABELS = {"0": "nodule", "1": "pleural_effusion", "2": "cardiomegaly", "3": "pneumothorax"}


def _maps(shape: tuple[int, int], methods: tuple[str, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.normal(size=shape).astype(np.float32) for name in methods}


def _titles(figure) -> list[str]:
    return [axis.get_title() for axis in figure.axes]


def _colour_bar_labels(figure) -> list[str]:
    return [axis.get_ylabel() for axis in figure.axes if axis.get_ylabel()]


@pytest.mark.parametrize("methods", [SEED_METHODS, (*SEED_METHODS, EXTRA_METHOD)])
def test_saliency_figure_has_the_input_every_map_and_one_colour_bar(methods):
    image = np.random.default_rng(1).integers(0, 256, (40, 48), dtype=np.uint8)
    outline = np.zeros((40, 48), bool)
    outline[10:20, 10:30] = True
    figure = saliency_figure(image, _maps((40, 48), methods), "test", outline=outline, notes={"gradient": "1.0 s"})
    assert len(figure.axes) == 1 + len(methods) + 1  # input, maps, shared colour bar
    titles = _titles(figure)
    assert titles[0].startswith("Input")
    for name in methods:
        assert any(title.startswith(SALIENCY_TITLES[name]) for title in titles), name
    assert "Vanilla gradient\n1.0 s" in titles
    assert SYNTHETIC_NOTICE in figure.get_suptitle() and "SYNTHETIC" in SYNTHETIC_NOTICE
    assert len(_colour_bar_labels(figure)) == 1


def test_saliency_figure_refuses_missing_unknown_or_misshapen_maps():
    image = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="missing"):
        saliency_figure(image, _maps((16, 16), SEED_METHODS[:5]), "t")
    with pytest.raises(ValueError, match="unknown"):
        saliency_figure(image, _maps((16, 16), (*SEED_METHODS, "occlusion")), "t")
    with pytest.raises(ValueError, match="shape"):
        saliency_figure(image, _maps((16, 17), SEED_METHODS), "t")


def test_saliency_figure_says_when_a_map_is_zero():
    maps = _maps((16, 16), SEED_METHODS)
    maps["guided_backprop"] = np.zeros((16, 16), np.float32)
    titles = _titles(saliency_figure(np.zeros((16, 16), np.uint8), maps, "t"))
    assert "Guided backprop\n(zero almost everywhere)" in titles
    assert "Vanilla gradient" in titles


@pytest.mark.parametrize("with_extras", [False, True])
def test_uncertainty_figure_panels_colour_bars_and_units(with_extras):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    probability, epistemic, aleatoric = (rng.random((64, 64), dtype=np.float32) * s for s in (1.0, 0.3, 0.69))
    extras = {"reference": probability > 0.5, "zoom": (8, 16, 32)} if with_extras else {}
    figure = uncertainty_figure(image, probability, epistemic, aleatoric, "test", **extras)
    columns = 5 if with_extras else 4
    rows = 2 if with_extras else 1
    assert len(figure.axes) == columns * rows + 3  # panels + colour bars of p̄, epistemic, aleatoric
    titles = _titles(figure)
    assert titles[0] == "Input"
    assert any(title.startswith("Epistemic: mutual information") for title in titles)
    assert any(title.startswith("Aleatoric: expected entropy") for title in titles)
    assert sorted(_colour_bar_labels(figure)) == ["nats", "nats", "probability"]
    assert titles.count("zoom ×2") == (columns if with_extras else 0)
    assert SYNTHETIC_NOTICE in figure.get_suptitle()


def test_uncertainty_figure_refuses_a_zoom_outside_the_image():
    maps = [np.zeros((32, 32), np.float32)] * 3
    with pytest.raises(ValueError, match="zoom box"):
        uncertainty_figure(np.zeros((32, 32), np.uint8), *maps, "t", zoom=(20, 0, 16))


def test_save_figure_writes_a_palette_png(tmp_path):
    figure = uncertainty_figure(np.zeros((32, 32), np.uint8), *[np.zeros((32, 32), np.float32)] * 3, "t")
    path = save_figure(figure, tmp_path / "sub" / "figure.png", dpi=40)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "P"
        assert SYNTHETIC_NOTICE in image.info["Description"]
    with pytest.raises(ValueError, match="PNG"):
        save_figure(figure, tmp_path / "figure.jpg")


def tiny_chest_bundle(models: Path, working_size: int = 64) -> Path:
    """An untrained, tiny four-finding DenseNet model folder (MONOCHROME input, sigmoid outputs)."""
    torch.manual_seed(0)
    config = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
              "init_features": 4, "growth_rate": 4, "block_config": [1, 1], "bn_size": 2, "dropout_prob": 0.2}
    metadata = {"name": "tiny-test-chest", "version": "0.0.1", "task": "chest_findings", "labels": CHEST_LABELS,
                "output": "multilabel_sigmoid", "gradcam_layer": "features.denseblock2",
                "preprocessing": {"working_size": working_size, "size_multiple": 16, "channels": "MONOCHROME"}}
    return save_bundle(models / "chest_findings", build_network(config), config, metadata)


@pytest.fixture
def quick_settings(monkeypatch):
    """The app's settings from a clean environment, with cheap saliency (also exercises the CANDOR_* path)."""
    for name in ("CANDOR_CONFIG", "HOLOSCAN_CONFIG_PATH", "CANDOR_SEED", "CANDOR_MC_SAMPLES", "CANDOR_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CANDOR_SALIENCY_IG_STEPS", "3")
    monkeypatch.setenv("CANDOR_SALIENCY_SMOOTHGRAD_SAMPLES", "2")
    monkeypatch.setenv("CANDOR_DEVICE", "cpu")


def test_cli_writes_both_figures_from_tiny_bundles(tmp_path, quick_settings, capsys):
    models = tmp_path / "models"
    tiny_chest_bundle(models)
    tiny_bundle(models)
    out = tmp_path / "images"
    status = cli.main(["--models", str(models), "--out", str(out), "--seed", "1", "--mc-samples", "2",
                       "--finding", "pneumothorax", "--dpi", "50"])
    assert status == cli.EXIT_OK
    for name in (cli.CHEST_FIGURE, cli.FUNDUS_FIGURE):
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 150
            grey = np.asarray(image.convert("L"), dtype=np.float32)
        assert grey.std() > 10, f"{name} is (nearly) uniform"
    log = capsys.readouterr().err
    assert "smoothgrad_integrated_gradients" in log and "MC-dropout passes" in log and cli.FUNDUS_FIGURE in log


def test_cli_exits_2_naming_a_missing_model_folder(tmp_path, quick_settings, capsys):
    tiny_chest_bundle(tmp_path / "models")
    status = cli.main(["--models", str(tmp_path / "models"), "--out", str(tmp_path / "images")])
    assert status == cli.EXIT_USAGE
    assert "fundus_vessels does not exist" in capsys.readouterr().err
    assert not (tmp_path / "images").exists()


class _FixedLogits(nn.Module):
    """A stand-in classifier whose logits do not depend on the image."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.register_buffer("logits", torch.tensor([logits]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def _stub_bundle(logits: list[float]) -> ModelBundle:
    return ModelBundle(path=Path("stub"), name="stub", version="0", task="chest_findings",
                       labels={int(k): v for k, v in CHEST_LABELS.items()},
                       preprocessing=Preprocessing(64, 16, "MONOCHROME"), network=_FixedLogits(logits), metadata={})


def test_auto_takes_the_first_image_whose_most_probable_finding_is_present():
    sample, finding, k = cli.choose_chest_image(_stub_bundle([-3.0, -3.0, 4.0, 0.0]), 0, "auto", 0.5,
                                                torch.device("cpu"))
    assert finding == "cardiomegaly" and sample.labels["cardiomegaly"] and sample.masks["cardiomegaly"].any()
    earlier = [chest.generate_chest(64, chest.synthetic_rng(chest.EVAL_STREAM, 0, j)) for j in range(k)]
    assert not any(s.labels["cardiomegaly"] for s in earlier)


def test_auto_refuses_when_nothing_is_detected_and_a_named_finding_is_the_only_one():
    with pytest.raises(cli.NoDetectedFinding, match="--finding"):
        cli.choose_chest_image(_stub_bundle([-3.0, -3.0, -3.0, -3.0]), 0, "auto", 0.5, torch.device("cpu"))
    sample, finding, k = cli.choose_chest_image(_stub_bundle([0.0] * 4), 0, "nodule", 0.5, torch.device("cpu"))
    assert (finding, k) == ("nodule", 0) and [n for n, v in sample.labels.items() if v] == ["nodule"]
