"""The app end to end, as a subprocess: outputs, bad input, exit statuses, re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from candor.dicom.validate import dciodvfy_errors
from studies import tiny_bundle

ROOT = Path(__file__).resolve().parents[1]


def run_app(input_dir: Path, output_dir: Path, models: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "CANDOR_MC_SAMPLES": "3", "CANDOR_SALIENCY_METHODS": "gradient,gradcam", **env}
    return subprocess.run([sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir),
                           "-m", str(models)], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    tiny_bundle(folder)
    return folder


def test_every_good_series_is_processed_and_every_bad_file_named(mixed_study, models, tmp_path):
    folder, good, bad = mixed_study
    result = run_app(folder, tmp_path / "out", models)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = json.loads((tmp_path / "out" / "candor-report.json").read_text())
    assert {Path(p["path"]).name for p in report["processed"]} == {p.name for p in good}
    rejected = {Path(r["path"]).name: r["reason"] for r in report["rejected"]}
    assert set(rejected) == {p.name for p in bad.values()}
    assert "inconsistent image" in rejected["inconsistent.dcm"]
    for path in bad.values():
        assert sum(str(path) in line for line in result.stderr.splitlines()) == 1, path
    kinds = sorted(o["kind"] for o in report["outputs"])
    assert kinds == sorted(["seg", "epistemic", "aleatoric", "sr", "saliency-gradient", "saliency-gradcam"] * 2)
    assert "PID-7731-SECRET" not in json.dumps(report) and "Zyxwv" not in json.dumps(report)


def test_outputs_are_valid_dicom_in_the_source_study(mixed_study, models, tmp_path):
    folder, good, _ = mixed_study
    out = tmp_path / "out"
    assert run_app(folder, out, models).returncode == 0
    source = hd.imread(good[0])
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 12
    for path in files:
        assert dciodvfy_errors(path) == [], path.name
        instance = hd.imread(path) if not path.name.startswith(("seg", "sr")) else None
        if path.name.startswith("seg"):
            instance = hd.seg.segread(path)
        elif path.name.startswith("sr"):
            instance = hd.sr.srread(path)
        assert instance.StudyInstanceUID == source.StudyInstanceUID
        assert instance.PatientID == source.PatientID


def test_a_rerun_replaces_rather_than_duplicates(mixed_study, models, tmp_path):
    folder, _, _ = mixed_study
    out = tmp_path / "out"
    assert run_app(folder, out, models).returncode == 0
    first = {p.name: dcmread(p) for p in out.glob("*.dcm")}
    assert run_app(folder, out, models).returncode == 0
    second = {p.name: dcmread(p) for p in out.glob("*.dcm")}
    assert first.keys() == second.keys()  # same deterministic UIDs, so the same files, no duplicates
    for name, dataset in first.items():
        assert second[name].SeriesInstanceUID == dataset.SeriesInstanceUID
        if "PixelData" in dataset:  # the same seed gives the same maps, so the same pixels
            assert second[name].PixelData == dataset.PixelData, name


def test_a_folder_without_eligible_series_is_a_clean_no_op(bad_files, models, tmp_path):
    folder = bad_files["empty"].parent
    result = run_app(folder, tmp_path / "out", models)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no eligible image" in result.stderr
    assert list((tmp_path / "out").glob("*.dcm")) == []
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_exits_2_with_a_message(mixed_study, models, tmp_path):
    folder, _, _ = mixed_study
    result = run_app(folder, tmp_path / "out", models, CANDOR_MC_SAMPLES="one")
    assert result.returncode == 2
    assert "CANDOR_MC_SAMPLES" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_model_folder_exits_2_naming_it(mixed_study, tmp_path):
    folder, _, _ = mixed_study
    (tmp_path / "empty-models").mkdir()
    result = run_app(folder, tmp_path / "out", tmp_path / "empty-models")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "fundus_vessels does not exist" in result.stderr


def test_outputs_can_be_turned_off(mixed_study, models, tmp_path):
    folder, _, _ = mixed_study
    out = tmp_path / "out"
    result = run_app(folder, out, models, CANDOR_WRITE_OVERLAYS="false", CANDOR_SALIENCY_METHODS="none")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name.split("-")[0] for p in out.glob("*.dcm")) == ["seg", "seg", "sr", "sr"]
