"""The microscopy task end to end, as a subprocess: VL Microscopic and SM in; SEG, SR, overlays, PM out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread

from candor.dicom.synthetic_sources import write_source
from candor.dicom.validate import dciodvfy_errors
from studies import tiny_nuclei_bundle
from test_app import run_app


@pytest.fixture(scope="module")
def microscopy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("microscopy")
    tiny_nuclei_bundle(root / "models")
    sources = {kind: write_source(kind, root / "in", shape=(192, 256)) for kind in ("vl_microscopic", "sm")}
    result = run_app(root / "in", root / "out", root / "models", CANDOR_REPORT_EACH_NUCLEUS="true")
    assert result.returncode == 0, result.stderr[-3000:]
    return sources, json.loads((root / "out" / "candor-report.json").read_text()), result.stderr


def _outputs(report: dict, source: Path) -> dict[str, str]:
    uid = str(dcmread(source, stop_before_pixels=True).SOPInstanceUID)
    return {o["kind"]: o["path"] for o in report["outputs"] if o["source_sop_instance_uid"] == uid}


def test_both_microscopy_sources_are_processed_by_the_nuclei_task(microscopy_run):
    sources, report, _ = microscopy_run
    assert report["rejected"] == []
    assert {Path(p["path"]).name for p in report["processed"]} == {p.name for p in sources.values()}
    common = {"seg", "sr", "instances", "epistemic", "saliency-gradient", "saliency-gradcam"}
    assert set(_outputs(report, sources["vl_microscopic"])) == common
    assert set(_outputs(report, sources["sm"])) == common | {"epistemic-map"}  # SM has a Frame of Reference


def test_every_object_is_conformant(microscopy_run):
    _, report, _ = microscopy_run
    for record in report["outputs"]:
        assert dciodvfy_errors(record["path"]) == [], record["path"]


def test_the_sr_count_and_interval_match_the_run_report(microscopy_run):
    sources, report, stderr = microscopy_run
    for kind, source in sources.items():
        entry = next(e for e in report["processed"] if Path(e["path"]) == source)
        count = entry["count"]
        assert count["interval_low"] <= count["mc_mean"] <= count["interval_high"]
        assert f"{source.name}: {count['count']} nuclei" in stderr
        sr = hd.sr.srread(_outputs(report, source)["sr"])
        groups = sr.content.get_planar_roi_measurement_groups()
        text = [str(g.tracking_identifier) for g in groups]
        summary = next(t for t in text if t.startswith("Nuclei:"))
        assert f"count {count['count']}" in summary
        assert f"90% interval {count['interval_low']}–{count['interval_high']}" in summary
        assert len(groups) == 1 + count["count"]  # per-nucleus groups were enabled


def test_the_seg_reads_back_with_one_nuclei_segment(microscopy_run):
    sources, report, _ = microscopy_run
    seg = hd.seg.segread(_outputs(report, sources["sm"])["seg"])
    assert seg.number_of_segments == 1
    assert seg.get_segment_description(1).segment_label == "Nuclei"
