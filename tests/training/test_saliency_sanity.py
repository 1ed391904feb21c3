"""The saliency sanity command (Adebayo et al. 2018 randomisation test) on tiny model folders."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

from candor.bundle import build_network
from candor.saliency import METHODS, SaliencyConfig, SegmentationTarget
from studies import tiny_bundle
from training import saliency_sanity as sanity

VERDICTS = {"model-sensitive", "not model-sensitive", "undetermined"}


MODELS = Path(__file__).resolve().parents[2] / "models"
#: Two cascade steps keep the test fast: the output convolution, then every other block of the BasicUNet.
LAYERS = ["final_conv", "upcat_1+upcat_2+upcat_3+upcat_4+down_4+down_3+down_2+down_1+conv_0"]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """captum's guided-backprop hook notice muted (the command itself restores torch's thread count)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        yield


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BasicUNet vessel folder with a card, after one sanity run of all methods."""
    model = tiny_bundle(tmp_path_factory.mktemp("models"))
    (model / "docs").mkdir()
    (model / "docs" / "README.md").write_text("# tiny\n\n## What it is\nA test.\n\n## Limitations\n- tiny\n")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        assert sanity.main(["--model", str(model), "--images", "2", "--crop", "32", "--mc-samples", "2",
                            "--layers", *LAYERS]) == 0
    return model


def _metadata(model: Path) -> dict:
    return json.loads((model / "configs" / "metadata.json").read_text())


def test_every_method_gets_a_verdict(tiny_model: Path) -> None:
    records = _metadata(tiny_model)["saliency_sanity"]
    assert list(records) == list(METHODS)
    for method, record in records.items():
        assert record["verdict"] in VERDICTS, method
        assert record["mode"] == "cascading" and record["threshold"] == 0.5 and record["images"] == 2
        assert record["layers"] == LAYERS and len(record["correlations"]) == len(LAYERS)
        assert record["command"].startswith("python -m training.saliency_sanity --model")
    # Can fail: the randomised copies must really differ from the trained (here: initial) weights.
    assert records["gradient"]["statistic"] < 0.99
    assert records["gradient"]["verdict"] == ("model-sensitive" if records["gradient"]["statistic"] < 0.5
                                              else "not model-sensitive")


def test_rerun_replaces_the_card_section(tiny_model: Path) -> None:
    assert sanity.main(["--model", str(tiny_model), "--images", "1", "--crop", "32", "--mc-samples", "2",
                        "--layers", *LAYERS, "--methods", "gradient,gradcam"]) == 0
    card = (tiny_model / "docs" / "README.md").read_text()
    assert card.count(sanity.SECTION_TITLE) == 1 and "SYNTHETIC" in card
    assert card.index("## What it is") < card.index(sanity.SECTION_TITLE) < card.index("## Limitations")
    assert "| gradient |" in card and "| guided_backprop |" not in card  # the old table is gone
    assert set(_metadata(tiny_model)["saliency_sanity"]) == {"gradient", "gradcam"}


def test_a_map_that_ignores_the_weights_fails() -> None:
    """Negative control: on a 1×1 convolution the gradient map is max_c |w_c| on the target region and 0
    elsewhere, so its ranks do not depend on the weights; guided backprop has no rectifier to guide."""
    torch.manual_seed(0)
    network = nn.Conv2d(3, 2, kernel_size=1)
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[:, :4] = True
    batch = sanity.HeldOut(torch.rand(2, 3, 8, 8), SegmentationTarget(1, region), "random", "test")
    records = sanity.run_sanity(network, [("",)], batch, SaliencyConfig(), ["gradient", "guided_backprop"],
                                threshold=0.5, seed=0, shared={})
    assert records["gradient"]["statistic"] == pytest.approx(1.0)
    assert records["gradient"]["verdict"] == "not model-sensitive"
    assert records["guided_backprop"]["verdict"] == "undetermined" and "ReLU" in records["guided_backprop"]["error"]


@pytest.mark.parametrize("folder", ["chest_findings", "fundus_vessels", "microscopy_nuclei"])
def test_default_cascades_randomise_every_parameter(folder: str) -> None:
    config = json.loads((MODELS / folder / "configs" / "network.json").read_text())
    network = build_network(config)
    assert sanity.untouched_parameters(network, sanity.default_cascade(network)) == []


def test_replace_section_is_idempotent() -> None:
    card = "# m\n\n## Measured figures\nx\n\n## Limitations\n- y\n"
    once = sanity.replace_section(card, f"{sanity.SECTION_TITLE}\n\nfirst\n")
    twice = sanity.replace_section(once, f"{sanity.SECTION_TITLE}\n\nsecond\n")
    assert once.count(sanity.SECTION_TITLE) == twice.count(sanity.SECTION_TITLE) == 1
    assert "first" not in twice and "second" in twice and twice.endswith("## Limitations\n- y\n")


def test_chest_sanity_and_localisation_keep_one_card_section(tmp_path: Path) -> None:
    """Chest: finding-logit targets; the SmoothGrad pointing game is added without touching other figures,
    and the card writer keeps the sanity section (once) when it rewrites the card."""
    from training.chest import evaluate as chest_evaluate
    from training.chest import train as chest_train

    model = tmp_path / "chest_findings"
    chest_train.main(["--out", str(model), "--steps", "1", "--batch", "2", "--size", "64", "--pool", "3",
                      "--no-cache", "--checkpoint-dir", str(tmp_path / "checkpoints"), "--seed", "1"])
    chest_evaluate.main(["--model", str(model), "--images", "2", "--mc-samples", "2", "--methods", "gradcam",
                         "--costly-pairs", "0"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        sanity.main(["--model", str(model), "--images", "1", "--mc-samples", "2", "--methods", "gradient,gradcam"])
    before = _metadata(model)["evaluation"]
    chest_evaluate.main(["--model", str(model), "--localisation-only", "--methods", "smoothgrad_gradient",
                         "--costly-pairs", "1"])
    after = _metadata(model)
    game = after["evaluation"].pop("pointing_game")
    assert after["evaluation"] == {k: v for k, v in before.items() if k != "pointing_game"}
    assert game["gradcam"] == before["pointing_game"]["gradcam"]
    assert game["smoothgrad_gradient"]["all"]["pairs"] == 2  # image 0 of seed 5000 has two findings
    assert "localisation-only" in game["smoothgrad_gradient"]["all"]["run"]
    assert "chest" in after["saliency_sanity"]["gradient"]["data"]
    card = (model / "docs" / "README.md").read_text()
    assert card.count(sanity.SECTION_TITLE) == 1 and "Measured separately by" in card
