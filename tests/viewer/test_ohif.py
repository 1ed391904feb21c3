"""OHIF (prebuilt, from npm) shows what Candor writes: the browser half of the viewer issue.

The fundus study is the real app's output on a synthetic OP; the chest study
is the app's output on a synthetic MONOCHROME1 DX (the shipped chest model).
Evidence comes from one headless-Chromium run
(``ohif_evidence``); screenshots stay in ``build/test-artifacts/viewer``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from screens import (
    changed_pixels,
    displayed_mask,
    fit_placement,
    is_annotation_colour,
    is_banner_red,
    line_coverage,
    load_rgb,
    overlay_agreement,
)

pytestmark = pytest.mark.integration


def _capture(evidence: dict[str, Any], scenario: str, label: str) -> dict[str, Any]:
    for capture in evidence[scenario]["captures"]:
        if capture["label"] == f"{scenario}-{label}":
            return capture
    raise AssertionError(f"no capture {label!r} in scenario {scenario!r}: {evidence[scenario]['error']}")


def _file(study: Any, modality: str) -> Path:
    matches = [p for p in study.files if pydicom.dcmread(p, stop_before_pixels=True).Modality == modality]
    assert len(matches) == 1, (modality, matches)
    return matches[0]


def _source_shape(study: Any) -> tuple[int, int]:
    source = pydicom.dcmread(study.source, stop_before_pixels=True)
    return int(source.Rows), int(source.Columns)


def _box_coverage(rgb: np.ndarray, polyline: np.ndarray, rows: int, columns: int,
                  offset_px: float = 0.0) -> list[float]:
    """Share of each edge of a closed image-space polyline drawn in an annotation colour (green or yellow).

    With ``offset_px`` the edges are first moved that many screen pixels
    outward (for a box): a control that must find (almost) nothing.
    """
    placement = fit_placement(rgb.shape[:2], rows, columns)
    green = is_annotation_colour(rgb)
    points = np.array([placement.to_screen(float(c), float(r)) for c, r in polyline])
    if offset_px:
        centre = points[:-1].mean(axis=0)
        points = points + np.sign(points - centre) * offset_px
    return [line_coverage(rgb, tuple(start), tuple(end), green, search_px=2) for start, end in pairwise(points)]


def _assert_region_drawn(rgb: np.ndarray, polyline: np.ndarray, rows: int, columns: int) -> None:
    """The region's four edges are drawn where the SR puts them, and not 25 screen pixels further out."""
    on_edges = _box_coverage(rgb, polyline, rows, columns)
    beside = _box_coverage(rgb, polyline, rows, columns, offset_px=25)
    assert min(on_edges) > 0.3, on_edges
    assert max(beside) < 0.15, beside


def test_probe_ran_every_step(ohif_evidence: dict[str, Any]) -> None:
    for name, scenario in ohif_evidence.items():
        assert scenario["error"] is None, f"{name}: {scenario['error']}"
    assert [c["label"] for c in ohif_evidence["fundus"]["captures"]] == [
        "fundus-op", "fundus-seg", "fundus-seg-visible", "fundus-seg-hidden", "fundus-epistemic"]
    assert [c["label"] for c in ohif_evidence["fundus-sr"]["captures"]] == ["fundus-sr-sr"]
    assert [c["label"] for c in ohif_evidence["chest"]["captures"]] == ["chest-sr"]


def test_console_shows_no_load_errors(ohif_evidence: dict[str, Any]) -> None:
    """No console error, uncaught exception, failed or >= 400 request while loading and displaying."""
    for name, scenario in ohif_evidence.items():
        assert scenario["consoleErrors"] == [], name
        assert scenario["pageErrors"] == [], name
        assert scenario["failedRequests"] == [], name


def test_every_written_series_is_listed(ohif_evidence: dict[str, Any], demo_studies: dict[str, Any]) -> None:
    """Each series of each study appears in OHIF's study browser; image series (OP, DX, SC) with a thumbnail."""
    for name, study in demo_studies.items():
        shown = {(t["modality"], t["description"]): t["hasImage"] for t in ohif_evidence[name]["thumbnails"]}
        for path in study.files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            key = (ds.Modality, ds.SeriesDescription)
            assert key in shown, f"{name}: series {key} missing from {sorted(shown)}"
            assert shown[key] == (ds.Modality not in ("SEG", "SR")), key


def test_sc_overlays_appear_as_series_and_display(ohif_evidence: dict[str, Any], demo_studies: dict[str, Any]) -> None:
    """Both uncertainty overlays are image series; the epistemic one displays with its burned-in banner."""
    thumbnails = ohif_evidence["fundus"]["thumbnails"]
    for title in ("Epistemic uncertainty overlay", "Aleatoric uncertainty overlay"):
        assert any(t["modality"] == "OT" and title in t["description"] and t["hasImage"] for t in thumbnails), title
    rows, columns = _source_shape(demo_studies["fundus"])
    banner_share = {}
    for label in ("op", "epistemic"):
        rgb = load_rgb(_capture(ohif_evidence, "fundus", label)["file"])
        x0, y0, x1, y1 = fit_placement(rgb.shape[:2], rows, columns).rect()
        top_strip = rgb[y0:y0 + max(4, (y1 - y0) // 20), x0:x1]  # the banner spans the top ~5 % of an overlay
        banner_share[label] = float(is_banner_red(top_strip).mean())
    assert banner_share["epistemic"] > 0.3, banner_share
    assert banner_share["op"] < 0.01, banner_share


def test_seg_overlay_renders_on_the_fundus_image(ohif_evidence: dict[str, Any], demo_studies: dict[str, Any]) -> None:
    """The SEG loads as a segmentation of the OP, lists its segment, and its overlay covers the SEG's pixels.

    With the segmentation panel open, the viewport is captured with the segment
    visible and hidden; the pixels that change must be the SEG mask drawn over
    the image (precision and recall against the mask mapped onto the screen).
    """
    study = demo_studies["fundus"]
    visible = _capture(ohif_evidence, "fundus", "seg-visible")
    assert "Retinal vessels" in visible["segmentRows"], visible["segmentRows"]
    assert any("Retinal vessels (AI)" in s for s in visible["segmentations"]), visible["segmentations"]

    shown = load_rgb(visible["file"])
    hidden = load_rgb(_capture(ohif_evidence, "fundus", "seg-hidden")["file"])
    seg = hd.seg.segread(_file(study, "SEG"))
    source_uid = pydicom.dcmread(study.source, stop_before_pixels=True).SOPInstanceUID
    mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source_uid], segment_numbers=[1])[0, :, :, 0]
    placement = fit_placement(shown.shape[:2], *mask.shape)
    expected = displayed_mask(mask.astype(bool), placement, shown.shape[:2])
    changed = changed_pixels(shown, hidden)
    agreement = overlay_agreement(changed, expected)
    print(f"SEG overlay vs mask ({mask.mean():.3f} of the image): {agreement}")
    assert agreement.changed > 0.05 * expected.sum(), agreement
    assert agreement.precision > 0.9, agreement
    assert agreement.recall > 0.8, agreement
    # negative control: the same screenshots must disagree with the mask mirrored left to right
    mirrored = overlay_agreement(changed, displayed_mask(mask[:, ::-1].astype(bool), placement, shown.shape[:2]))
    print(f"mirrored mask: {mirrored}")
    if 0.02 < mask.mean() < 0.5:  # a structured mask (trained model); a near-full one mirrors onto itself
        assert mirrored.precision < agreement.precision - 0.2, (agreement, mirrored)


def test_fundus_sr_region_renders(ohif_evidence: dict[str, Any], demo_studies: dict[str, Any]) -> None:
    """The app's SR draws its field-of-view box with the measurement labels."""
    study = demo_studies["fundus"]
    capture = _capture(ohif_evidence, "fundus-sr", "sr")
    assert any("Retinal vessel area fraction" in text for text in capture["svgTexts"]), capture["svgTexts"]
    group = hd.sr.srread(_file(study, "SR")).content.get_planar_roi_measurement_groups()[0]
    _assert_region_drawn(load_rgb(capture["file"]), group.roi.value, *_source_shape(study))


def test_chest_sr_region_and_probability_label_render(ohif_evidence: dict[str, Any],
                                                      demo_studies: dict[str, Any]) -> None:
    """The app's chest SR: the top finding's box is drawn, labelled with its probability."""
    study = demo_studies["chest"]
    capture = _capture(ohif_evidence, "chest", "sr")
    groups = hd.sr.srread(_file(study, "SR")).content.get_planar_roi_measurement_groups()

    def probability(group: Any) -> float:
        return next(m.value for m in group.get_measurements()
                    if m.name.meaning == "Probability" and m.derivation is not None and m.derivation.meaning == "Mean")

    top = max(groups, key=probability)
    assert any(f"Probability: {probability(top):.2f}" in text for text in capture["svgTexts"]), capture["svgTexts"]
    _assert_region_drawn(load_rgb(capture["file"]), top.roi.value, *_source_shape(study))
