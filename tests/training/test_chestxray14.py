"""ChestX-ray14 loader on a tiny folder in the NIH layout that the test builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.chestxray14 import (
    NIH_TO_CANDOR,
    chestxray14_records,
    label_prevalence,
    parse_finding_labels,
    read_chestxray14,
)
from training.synth.chest import FINDINGS

_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
           "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
_ROWS = [
    ("00000001_000.png", "Cardiomegaly|Effusion", "1", "PA"),
    ("00000001_001.png", "Atelectasis", "1", "PA"),
    ("00000002_000.png", "No Finding", "2", "AP"),
    ("00000003_000.png", "Nodule|Pneumothorax|Mass", "3", "PA"),
]


def _build(root: Path, rows=_ROWS, train=("00000001_000.png", "00000001_001.png", "00000002_000.png"),
           test=("00000003_000.png",)) -> Path:
    (root / "images").mkdir(parents=True)
    lines = [_HEADER] + [f"{name},{labels},0,{patient},58,M,{view},96,80,0.143,0.143," for name, labels, patient, view
                         in rows]
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "train_val_list.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (root / "test_list.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    rng = np.random.default_rng(0)
    for index, (name, *_rest) in enumerate(rows):
        pixels = rng.integers(0, 256, (80, 96), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if index == 3:  # some NIH PNGs are RGBA
            image = image.convert("RGBA")
        image.save(root / "images" / name)
    return root


def test_records_map_nih_labels_to_candor_findings(tmp_path):
    root = _build(tmp_path / "cxr14")
    records = chestxray14_records(root, "train_val")
    assert [r.image_index for r in records] == ["00000001_000.png", "00000001_001.png", "00000002_000.png"]
    first, atelectasis, normal = records
    assert first.labels == {"nodule": False, "pleural_effusion": True, "cardiomegaly": True, "pneumothorax": False}
    assert atelectasis.labels == {name: False for name in FINDINGS} and atelectasis.nih_labels == ("Atelectasis",)
    assert normal.labels == {name: False for name in FINDINGS} and normal.nih_labels == ()
    assert first.patient_id == "1" and normal.view_position == "AP"
    (test,) = chestxray14_records(root, "test")
    assert test.labels == {"nodule": True, "pleural_effusion": False, "cardiomegaly": False, "pneumothorax": True}
    assert set(NIH_TO_CANDOR.values()) == set(FINDINGS)
    assert label_prevalence(records)["cardiomegaly"] == pytest.approx(1 / 3)


def test_view_filter_drops_ap_images(tmp_path):
    root = _build(tmp_path / "cxr14")
    assert [r.view_position for r in chestxray14_records(root, "train_val", views=("PA",))] == ["PA", "PA"]


def test_read_gives_grey_uint8_resized_like_inference(tmp_path):
    root = _build(tmp_path / "cxr14")
    (record,) = chestxray14_records(root, "test")
    sample = read_chestxray14(record)
    assert sample.image.dtype == np.uint8 and sample.image.shape == (80, 96)
    assert sample.masks is None and sample.labels == record.labels and "00000003_000.png" in sample.name
    small = read_chestxray14(record, size=48)
    assert small.image.shape == (40, 48)


def test_missing_image_is_named(tmp_path):
    root = _build(tmp_path / "cxr14")
    (root / "images" / "00000001_001.png").unlink()
    with pytest.raises(FileNotFoundError, match="00000001_001.png"):
        chestxray14_records(root, "train_val")


@pytest.mark.parametrize("missing", ["Data_Entry_2017.csv", "train_val_list.txt", "images"])
def test_missing_layout_parts_are_named(tmp_path, missing):
    root = _build(tmp_path / "cxr14")
    target = root / missing
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        chestxray14_records(root, "train_val")


def test_unknown_label_names_file_and_line(tmp_path):
    rows = [*_ROWS[:2], ("00000002_000.png", "Cardiomegaly|Pneumonitis", "2", "AP"), _ROWS[3]]
    root = _build(tmp_path / "cxr14", rows=rows)
    with pytest.raises(ValueError, match=r"Data_Entry_2017\.csv, line 4: unknown label"):
        chestxray14_records(root, "train_val")


def test_split_entry_absent_from_csv_is_an_error(tmp_path):
    root = _build(tmp_path / "cxr14", train=("00000001_000.png", "99999999_000.png"))
    with pytest.raises(ValueError, match="99999999_000.png is not listed"):
        chestxray14_records(root, "train_val")


def test_parse_rejects_no_finding_with_findings_and_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="combined"):
        parse_finding_labels("No Finding|Nodule")
    with pytest.raises(ValueError, match="split must be one of"):
        chestxray14_records(_build(tmp_path / "cxr14"), "validation")
