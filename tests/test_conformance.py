"""Conformance of every object Candor writes, on every supported source kind.

One parametrisation, source kind × writer (:data:`CASES`): the SEG, SC and SR
builders on each synthetic source of :mod:`candor.dicom.synthetic_sources`, the
Parametric Map builder on the sources with a Frame of Reference (SM, one tile or
tiled), plus the app end to end (``python -m app``, tiny untrained models of the
three tasks) on every kind: each task's SEG, SR, uncertainty overlays, Parametric
Map and saliency overlays. Four gates per case:

1. ``dciodvfy``: no error in any output, and no warning outside
   :data:`KNOWN_WARNINGS` (each a reported, understood deviation);
2. ``dcentvfy``: the outputs agree with their source on patient and study;
3. highdicom reads every output back, with the content that was written;
4. Orthanc accepts the source and every output over DICOM C-STORE (status
   0x0000) and serves them over DICOMweb: :func:`test_orthanc_accepts`,
   marked ``integration`` because it starts Orthanc (the app cases are
   ``integration`` throughout: they run the app as a subprocess).

Outputs are built once per module and shared by both test functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from studies import tiny_bundle, tiny_chest_bundle, tiny_nuclei_bundle

from candor.dicom import codes as candor_codes
from candor.dicom.pm import ValueMapping, build_parametric_map, stored_to_real_world
from candor.dicom.sc import build_overlay_sc
from candor.dicom.seg import build_binary_seg
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report
from candor.dicom.source import image_shape, is_multi_tile
from candor.dicom.synthetic_sources import SOURCE_KINDS, TILED_SOURCE_KINDS, write_source
from candor.dicom.uids import derived_uid
from candor.dicom.validate import run_dcentvfy, run_dciodvfy
from candor.imaging.decode import decode_image
from candor.render import render_overlay

ROOT = Path(__file__).resolve().parents[1]
WRITERS = ("seg", "sc", "sr")
ALL_KINDS = SOURCE_KINDS + TILED_SOURCE_KINDS
#: Source kinds with a Frame of Reference: the only ones a Parametric Map may be written for.
PM_KINDS = tuple(kind for kind in ALL_KINDS if kind.startswith("sm"))
#: Every source kind goes through ``python -m app`` too (fundus, chest and nuclei tasks).
APP_KINDS = ALL_KINDS
CASES = [pytest.param(kind, writer, id=f"{kind}-{writer}") for kind in ALL_KINDS for writer in WRITERS]
CASES += [pytest.param(kind, "pm", id=f"{kind}-pm") for kind in PM_KINDS]
# the app runs as a subprocess: an integration test by pytest.ini's definition
CASES += [pytest.param(kind, "app", id=f"{kind}-app", marks=pytest.mark.integration) for kind in APP_KINDS]

#: What the app writes for each source kind's task (saliency overlays come on top, at least one).
APP_OUTPUTS = {
    "op": {"seg", "epistemic", "aleatoric", "sr"},
    "cr": {"sr"},
    "dx": {"sr"},
    "vl": {"seg", "sr", "instances", "epistemic"},
    "sm": {"seg", "sr", "instances", "epistemic", "epistemic-map"},
}

#: dciodvfy warnings accepted on outputs, each with why. Anything else fails the test.
KNOWN_WARNINGS = {
    # sc.py writes an empty General Series Laterality whenever the source has no R/L laterality; for an
    # unpaired body part (chest) or a slide it should be absent. A warning, not an error: reported for a fix.
    r"</Laterality\(0020,0060\)> - is only permitted to be empty when actually unknown": "SC Laterality on unpaired",
    # Candor's private concepts (candor.dicom.codes) use the scheme 99CANDOR, which PS3.16 §8 allows (prefix 99)
    # and the SR declares in its Coding Scheme Identification Sequence; dciodvfy cannot know the term.
    r"CodingSchemeDesignator\(0008,0102\)\[1\]> - Unrecognized defined term = <99CANDOR>": "private scheme",
}

#: Finding / segment codes per kind: (category, segmented property, finding).
_CODES: dict[str, tuple[Code, Code, Code]] = {
    "op": (codes.SCT.Tissue, codes.SCT.BloodVessel, codes.SCT.BloodVessel),
    "cr": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule, codes.SCT.Nodule),
    "dx": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule, codes.SCT.Nodule),
    "vl": (codes.SCT.AnatomicalStructure, codes.SCT.Nucleus, codes.SCT.Nucleus),
    "sm": (codes.SCT.AnatomicalStructure, codes.SCT.Nucleus, codes.SCT.Nucleus),
}
PROBABILITY, PROBABILITY_STD = 0.83, 0.07

#: Cost settings for the app runs (fewer MC and saliency samples); every output kind is still written.
FAST_APP_ENV = {"CANDOR_MC_SAMPLES": "3", "CANDOR_SALIENCY_IG_STEPS": "2", "CANDOR_SALIENCY_SMOOTHGRAD_SAMPLES": "1"}


@dataclass
class Written:
    """A source and the objects written from it; ``expected`` holds what each output must read back as."""

    source: Path
    outputs: dict[str, Path]
    expected: dict[str, object] = field(default_factory=dict)


def _uids(source: pydicom.Dataset, writer: str) -> dict[str, str]:
    return {"series_instance_uid": derived_uid(source.SOPInstanceUID, "conformance", writer, "series"),
            "sop_instance_uid": derived_uid(source.SOPInstanceUID, "conformance", writer)}


def _write(kind: str, writer: str, source_path: Path, folder: Path) -> Written:
    """Run one builder on the decoded source, as the app's writers do, and save the result."""
    source, image = decode_image(source_path)  # header without pixels; display-ready uint8 (MONOCHROME1 inverted)
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    category, segmented, finding = _CODES[kind[:2]]
    if writer == "seg":
        brightness = rgb.mean(axis=2)
        expected: object = brightness < np.percentile(brightness, 25)  # the darkest quarter: structure, not noise
        dataset = build_binary_seg(source, expected, segment_label="Conformance segment", property_category=category,
                                   property_type=segmented, anatomic_region=None, algorithm_name="conformance",
                                   algorithm_version="1", series_number=901,
                                   series_description="Conformance SEG", **_uids(source, writer))
    elif writer == "pm":
        rows, columns = image_shape(source)
        expected = np.linspace(0.0, 0.5, rows * columns, dtype=np.float32).reshape(rows, columns)
        mapping = ValueMapping(quantity=candor_codes.EPISTEMIC_UNCERTAINTY, unit=candor_codes.NATS,
                               lut_label="EPIUNC", explanation="Epistemic uncertainty (mutual information)",
                               value_range=(0.0, 1.0))
        dataset = build_parametric_map(source, expected, mapping=mapping, window=(0.0, 0.5), content_label="EPISTEMIC",
                                       content_description="Conformance map", algorithm_name="conformance",
                                       algorithm_version="1", series_number=906,
                                       series_description="Conformance map", **_uids(source, writer))
    elif writer == "sc":
        ramp = np.broadcast_to(np.linspace(0.0, 1.0, rgb.shape[1], dtype=np.float32), rgb.shape[:2])
        expected = render_overlay(rgb, ramp, title="Conformance overlay", vmin=0.0, vmax=1.0, units="1")
        dataset = build_overlay_sc(source, expected, series_number=902, series_description="Conformance overlay",
                                   **_uids(source, writer))
    else:
        rows, columns = image_shape(source)
        region = box_polyline(10, 20, 0.6 * columns, 0.7 * rows)
        spec = FindingSpec(finding_type=finding, tracking_label="Conformance finding", region_xy=region,
                           measurements=[MeasurementSpec(codes.DCM.Probability, PROBABILITY, codes.UCUM.NoUnits,
                                                         label="p"),
                                         MeasurementSpec(codes.DCM.Probability, PROBABILITY_STD, codes.UCUM.NoUnits,
                                                         derivation=codes.SCT.StandardDeviation)])
        expected = region
        dataset = build_measurement_report(source, [spec], algorithm_name="conformance", algorithm_version="1",
                                           series_number=904, series_description="Conformance SR",
                                           **_uids(source, writer))
    path = folder / f"{writer}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return Written(source_path, {writer: path}, {writer: expected})


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {kind: write_source(kind, root / kind) for kind in ALL_KINDS}


@pytest.fixture(scope="module")
def app_outputs(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    """One run of ``python -m app`` (tiny untrained model) over the kinds it supports; outputs by source kind."""
    root = tmp_path_factory.mktemp("app")
    models, input_dir, output_dir = root / "models", root / "in", root / "out"
    tiny_bundle(models)
    tiny_chest_bundle(models)
    tiny_nuclei_bundle(models)
    input_dir.mkdir()
    for kind in APP_KINDS:
        shutil.copy(sources[kind], input_dir / sources[kind].name)
    environ = {**os.environ, **FAST_APP_ENV, "CANDOR_SALIENCY_METHODS": "gradient,gradcam"}
    done = subprocess.run([sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir), "-m", str(models)],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((output_dir / "candor-report.json").read_text())
    assert not report["rejected"], report["rejected"]
    by_source = {str(pydicom.dcmread(sources[kind], stop_before_pixels=True).SOPInstanceUID): kind
                 for kind in APP_KINDS}
    written = {kind: Written(sources[kind], {}) for kind in APP_KINDS}
    for output in report["outputs"]:
        written[by_source[output["source_sop_instance_uid"]]].outputs[output["kind"]] = Path(output["path"])
    for kind, entry in written.items():
        saliency = {name for name in entry.outputs if name.startswith("saliency-")}
        assert set(entry.outputs) - saliency == APP_OUTPUTS[kind[:2]] and saliency, (kind, sorted(entry.outputs))
    return written


@pytest.fixture(scope="module")
def written(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Callable[[str, str], Written]:
    """``written(kind, writer)``: the source and outputs of one case, built on first use."""
    cache: dict[tuple[str, str], Written] = {}
    root = tmp_path_factory.mktemp("outputs")

    def get(kind: str, writer: str) -> Written:
        if (kind, writer) not in cache:
            if writer == "app":
                cache[kind, writer] = request.getfixturevalue("app_outputs")[kind]
            else:
                folder = root / kind
                folder.mkdir(exist_ok=True)
                cache[kind, writer] = _write(kind, writer, sources[kind], folder)
        return cache[kind, writer]

    return get


def _unexpected(warnings: list[str]) -> list[str]:
    return [w for w in warnings if not any(re.search(pattern, w) for pattern in KNOWN_WARNINGS)]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_synthetic_source_is_valid(kind: str, sources: dict[str, Path]) -> None:
    """The inputs themselves are clean, so an output's problem is the writer's."""
    report = run_dciodvfy(sources[kind])
    assert report.errors == [] and report.warnings == [], report.output


def _check_readback(output_kind: str, path: Path, source: pydicom.Dataset, expected: object | None) -> None:
    """Gate 3: highdicom reads the object back, and it holds what was written about ``source``."""
    if output_kind == "seg":
        seg = hd.seg.segread(path)
        if is_multi_tile(source):
            mask = seg.get_total_pixel_matrix(segment_numbers=[1])[..., 0].astype(bool)
        else:
            pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID],
                                                       segment_numbers=[1])
            mask = pixels[0, :, :, 0].astype(bool)
        assert mask.shape == image_shape(source)
        if expected is not None:
            np.testing.assert_array_equal(mask, expected)
        shared = seg.SharedFunctionalGroupsSequence[0]
        assert "PixelMeasuresSequence" in shared, "OHIF 3.13 cannot load a SEG without Pixel Measures"
    elif output_kind in ("pm", "epistemic-map"):
        pm = pydicom.dcmread(path)
        assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and pm.FrameOfReferenceUID == source.FrameOfReferenceUID
        values = stored_to_real_world(pm)
        assert values.shape == image_shape(source)
        if expected is not None:
            np.testing.assert_allclose(values, expected, atol=1e-6)
    elif output_kind == "sr":
        sr = hd.sr.srread(path)
        groups = sr.content.get_planar_roi_measurement_groups()
        assert len(groups) == 1 or expected is None
        region = groups[0].roi
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        if expected is not None:
            np.testing.assert_allclose(region.value, expected)
            values = [m.value for m in groups[0].get_measurements(name=codes.DCM.Probability)]
            assert values == pytest.approx([PROBABILITY, PROBABILITY_STD])
    else:  # "sc" and the app's overlays (uncertainty, nucleus confidence, saliency)
        image = hd.imread(path)
        frame = image.get_frame(1)
        assert frame.shape == image_shape(source) + (3,)
        assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        if expected is not None:
            np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize("kind, writer", CASES)
def test_writer_output_conforms(kind: str, writer: str, written: Callable[[str, str], Written]) -> None:
    """Gates 1–3 for one source kind and writer."""
    case = written(kind, writer)
    source = pydicom.dcmread(case.source, stop_before_pixels=True)
    problems = {}
    for output_kind, path in case.outputs.items():
        report = run_dciodvfy(path)
        if report.errors or _unexpected(report.warnings):
            problems[output_kind] = report.errors + _unexpected(report.warnings)
    assert problems == {}, problems
    entities = run_dcentvfy([case.source, *case.outputs.values()])
    assert entities.errors == [], entities.output
    for output_kind, path in case.outputs.items():
        _check_readback(output_kind, path, source, case.expected.get(output_kind))
        derived = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber"):
            assert derived[keyword].value == source[keyword].value, (output_kind, keyword)
        assert derived.SeriesInstanceUID != source.SeriesInstanceUID


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from viewer.orthanc import OrthancServer

    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.mark.integration
@pytest.mark.parametrize("kind, writer", CASES)
def test_orthanc_accepts(kind: str, writer: str, written: Callable[[str, str], Written], orthanc) -> None:
    """Gate 4: C-STORE of the source and every output answers 0x0000, and DICOMweb serves each one back."""
    case = written(kind, writer)
    files = [case.source, *case.outputs.values()]
    statuses = orthanc.c_store(files)
    assert {path.name: status for path, status in statuses.items()} == {path.name: 0 for path in files}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        metadata = json.loads(orthanc.request(
            "GET", f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                   f"/instances/{ds.SOPInstanceUID}/metadata", headers={"Accept": "application/dicom+json"}))
        assert metadata[0]["00080016"]["Value"] == [str(ds.SOPClassUID)]
