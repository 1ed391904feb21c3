"""DRIVE loader on a tiny folder in the official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.drive import drive_records, load_drive, resize_sample

SHAPE = (40, 36)  # rows, columns (DRIVE itself is 584 × 565)


def _case(root: Path, split: str, number: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder = root / split
    for sub in ("images", "1st_manual", "mask"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    manual = rng.random(SHAPE) < 0.2
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    mask = np.hypot(rows - SHAPE[0] / 2, cols - SHAPE[1] / 2) < 16
    Image.fromarray(image).save(folder / "images" / f"{number}_{split}.tif")
    Image.fromarray(manual.astype(np.uint8) * 255).save(folder / "1st_manual" / f"{number}_manual1.gif")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "mask" / f"{number}_{split}_mask.gif")
    return {"image": image, "manual": manual, "mask": mask}


@pytest.fixture()
def drive_root(tmp_path: Path) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    cases = {f"training/{n}": _case(tmp_path, "training", n, rng) for n in ("21", "22")}
    cases["test/01"] = _case(tmp_path, "test", "01", rng)
    return tmp_path, cases


def test_loads_both_splits_as_fundus_samples(drive_root):
    root, cases = drive_root
    training = load_drive(root, "training")
    assert [s.name for s in training] == ["DRIVE training 21", "DRIVE training 22"]
    for sample, key in zip(training, ("training/21", "training/22")):
        expected = cases[key]
        assert sample.image.dtype == np.uint8 and np.array_equal(sample.image, expected["image"])
        assert np.array_equal(sample.fov, expected["mask"])
        assert np.array_equal(sample.vessels, expected["manual"] & expected["mask"])
        assert sample.laterality is None and sample.disc_center is None
    (test,) = load_drive(root, "test")
    assert np.array_equal(test.image, cases["test/01"]["image"])


def test_missing_mask_is_named(drive_root):
    root, _ = drive_root
    missing = root / "training" / "mask" / "22_training_mask.gif"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="22_training_mask.gif"):
        drive_records(root, "training")


def test_missing_annotation_and_folder_are_named(drive_root, tmp_path: Path):
    root, _ = drive_root
    (root / "test" / "1st_manual" / "01_manual1.gif").unlink()
    with pytest.raises(FileNotFoundError, match="01_manual1.gif"):
        load_drive(root, "test")
    with pytest.raises(FileNotFoundError, match="images"):
        drive_records(tmp_path / "nowhere", "training")
    with pytest.raises(ValueError, match="split"):
        drive_records(root, "validation")


def test_unreadable_file_is_named(drive_root):
    root, _ = drive_root
    broken = root / "training" / "images" / "21_training.tif"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="21_training.tif"):
        load_drive(root, "training")


def test_resize_to_working_size_keeps_labels_inside_fov(drive_root):
    root, _ = drive_root
    sample = load_drive(root, "training")[0]
    resized = resize_sample(sample, 20)
    assert resized.image.shape == (20, 18, 3)  # long side 20, aspect kept: round(36 · 20 / 40) = 18
    assert resized.vessels.shape == resized.fov.shape == (20, 18)
    assert not (resized.vessels & ~resized.fov).any()
    assert resize_sample(sample, 40) is sample
