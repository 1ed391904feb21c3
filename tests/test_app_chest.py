"""The chest task end to end, as a subprocess: CR/DX in (MONOCHROME1/2, compressed), SR + saliency overlays out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread

from candor.dicom.synthetic_sources import write_source
from candor.dicom.validate import dciodvfy_errors
from candor.imaging.decode import decode_image
from studies import tiny_chest_bundle
from test_app import run_app

FINDINGS = ("nodule", "pleural_effusion", "cardiomegaly", "pneumothorax")
SOURCES = ("cr_mono1", "cr_mono1_rle", "dx_mono2", "dx_mono2_j2k")


@pytest.fixture(scope="module")
def chest_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("chest")
    tiny_chest_bundle(root / "models")
    sources = {kind: write_source(kind, root / "in", shape=(200, 160)) for kind in SOURCES}
    result = run_app(root / "in", root / "out", root / "models", CANDOR_SALIENCY_TOP_FINDINGS="2")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((root / "out" / "candor-report.json").read_text())
    return sources, report, root / "out"


def _outputs_of(report: dict, source: Path) -> list[dict]:
    uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    return [o for o in report["outputs"] if o["source_sop_instance_uid"] == uid]


def test_every_source_kind_gets_an_sr_and_saliency_for_its_top_two_findings(chest_run):
    sources, report, _ = chest_run
    assert {Path(p["path"]).name for p in report["processed"]} == {p.name for p in sources.values()}
    assert report["rejected"] == []
    for entry in report["processed"]:
        assert entry["task"] == "chest_findings"
        assert set(entry["findings"]) == set(FINDINGS)
        ranked = sorted(FINDINGS, key=lambda f: -entry["findings"][f]["probability"])
        kinds = sorted(o["kind"] for o in _outputs_of(report, Path(entry["path"])))
        expected = ["sr"] + [f"saliency-{m}-{f}" for m in ("gradient", "gradcam") for f in ranked[:2]]
        assert kinds == sorted(expected)


def test_outputs_are_conformant_and_series_numbers_distinct(chest_run):
    _, report, out = chest_run
    for record in report["outputs"]:
        assert dciodvfy_errors(record["path"]) == [], record["path"]
    for source in chest_run[0].values():
        numbers = [int(dcmread(o["path"], stop_before_pixels=True).SeriesNumber) for o in _outputs_of(report, source)]
        assert len(numbers) == len(set(numbers))


def _groups(sr: hd.sr.ComprehensiveSR) -> list:
    content = sr.content
    return content.get_planar_roi_measurement_groups() + content.get_image_measurement_groups()


def test_sr_holds_each_findings_probability_std_uncertainty_and_region(chest_run):
    sources, report, _ = chest_run
    entry = next(e for e in report["processed"] if Path(e["path"]).name == "dx_mono2_j2k.dcm")
    sr_path = next(o["path"] for o in _outputs_of(report, sources["dx_mono2_j2k"]) if o["kind"] == "sr")
    groups = _groups(hd.sr.srread(sr_path))
    assert len(groups) == len(FINDINGS)
    rows, cols = 200, 160
    for group in groups:
        label = next(f for f in FINDINGS if str(group.tracking_identifier).lower().startswith(f.replace("_", " ")))
        expected = entry["findings"][label]
        values = {}
        for measurement in group.get_measurements():
            derivation = measurement.derivation.meaning if measurement.derivation else ""
            values[(measurement.name.meaning, derivation)] = measurement.value
        assert values[("Probability", "Mean")] == pytest.approx(expected["probability"], rel=1e-5)
        assert values[("Probability", "Standard Deviation")] == pytest.approx(expected["std"], rel=1e-5, abs=1e-9)
        assert values[("Epistemic uncertainty (mutual information)", "")] == pytest.approx(expected["epistemic"],
                                                                                          rel=1e-4, abs=1e-9)
        assert 0.0 <= expected["aleatoric"] <= np.log(2) + 1e-6
        assert f"p {float(expected['probability']):.3g}" in str(group.tracking_identifier)
        assert isinstance(group, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations), label  # OHIF needs a region
        region = np.asarray(group.roi.value)
        assert region.shape == (5, 2)
        assert region[:, 0].min() >= 0 and region[:, 0].max() <= cols
        assert region[:, 1].min() >= 0 and region[:, 1].max() <= rows
        assert tuple(region[0]) == pytest.approx(tuple(expected["box_xy"][:2]), abs=0.1)


def test_monochrome1_and_monochrome2_of_the_same_scene_give_the_same_findings(chest_run):
    _, report, _ = chest_run
    by_name = {Path(e["path"]).name: e["findings"] for e in report["processed"]}
    for finding in FINDINGS:  # the CR stores 4095 − the DX's values as MONOCHROME1: the same displayed image
        assert by_name["cr_mono1.dcm"][finding]["probability"] == pytest.approx(
            by_name["dx_mono2.dcm"][finding]["probability"], abs=0.02)


def test_overlays_of_a_monochrome1_source_show_it_as_displayed(chest_run):
    sources, report, _ = chest_run
    _, displayed = decode_image(sources["cr_mono1"])  # MONOCHROME1 inverted: bone bright
    stored = dcmread(sources["cr_mono1"]).pixel_array.astype(np.float64)  # raw: bone dark
    overlay = next(o["path"] for o in _outputs_of(report, sources["cr_mono1"]) if o["kind"].startswith("saliency-"))
    rgb = dcmread(overlay).pixel_array.astype(np.float64)
    band = slice(40, 160)  # away from the burned-in title, banner and legend
    grey = rgb[band].mean(axis=2).ravel()
    assert np.corrcoef(grey, displayed[band].astype(np.float64).ravel())[0, 1] > 0.5
    assert np.corrcoef(grey, stored[band].ravel())[0, 1] < -0.5
