"""Model folders: loading, and errors that name the file at fault."""

import json

import pytest
import torch

from candor.bundle import load_bundle
from candor.errors import ModelBundleError
from studies import tiny_bundle


def test_round_trip(tmp_path):
    folder = tiny_bundle(tmp_path)
    bundle = load_bundle(folder)
    assert bundle.name == "tiny-test-vessels" and bundle.task == "fundus_vessels"
    assert bundle.labels == {0: "background", 1: "retinal vessel"}
    assert bundle.preprocessing.working_size == 64
    assert not bundle.network.training
    assert bundle.network(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_missing_folder_and_files_are_named(tmp_path):
    with pytest.raises(ModelBundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    folder = tiny_bundle(tmp_path)
    (folder / "models" / "model.pt").unlink()
    with pytest.raises(ModelBundleError, match="missing models/model.pt"):
        load_bundle(folder)
    (folder / "configs" / "metadata.json").unlink()
    with pytest.raises(ModelBundleError, match="metadata.json"):
        load_bundle(folder)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    folder = tiny_bundle(tmp_path)
    config = json.loads((folder / "configs" / "network.json").read_text())
    config["features"] = [8, 8, 16, 16, 32, 8]
    (folder / "configs" / "network.json").write_text(json.dumps(config))
    with pytest.raises(ModelBundleError, match="do not fit"):
        load_bundle(folder)


def test_only_monai_or_torch_networks_are_built(tmp_path):
    folder = tiny_bundle(tmp_path)
    (folder / "configs" / "network.json").write_text(json.dumps({"_target_": "os.system", "command": "true"}))
    with pytest.raises(ModelBundleError, match="_target_ must name"):
        load_bundle(folder)


def test_bad_metadata_field_is_named(tmp_path):
    folder = tiny_bundle(tmp_path)
    metadata = json.loads((folder / "configs" / "metadata.json").read_text())
    del metadata["preprocessing"]
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelBundleError, match="preprocessing"):
        load_bundle(folder)
