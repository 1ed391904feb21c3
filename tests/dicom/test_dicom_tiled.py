"""Every writer on a tiled VL Whole Slide Microscopy source (TILED_FULL, 2 × 3 tiles of 128 px over 200 × 300).

The source is the registry's ``sm_tiled`` kind; each output must pass dciodvfy (no
error; warnings only the known, reported ones), agree with the source in dcentvfy, and
read back through highdicom as the Total Pixel Matrix that was written.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.sr.codedict import codes

from candor.dicom import codes as candor_codes
from candor.dicom.pm import ValueMapping, build_parametric_map, stored_to_real_world
from candor.dicom.sc import build_overlay_sc
from candor.dicom.seg import build_binary_seg
from candor.dicom.source import image_shape, is_multi_tile, require_referenceable_image
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report
from candor.dicom.synthetic_sources import (
    SOURCE_KINDS,
    TILE_SIZE,
    TILED_SHAPE,
    TILED_SOURCE_KINDS,
    build_source,
    build_tiled_sm_image,
    identity_for,
    synthetic_cells,
    tile_total_pixel_matrix,
    write_source,
)
from candor.dicom.uids import derived_uid
from candor.dicom.validate import dcentvfy_errors, run_dciodvfy
from candor.imaging.decode import decode_image

#: dciodvfy warnings accepted here, as in tests/test_conformance.py: the SC's empty Laterality, and the
#: private 99CANDOR scheme of the PM's quantity and unit.
KNOWN_WARNINGS = (
    r"</Laterality\(0020,0060\)> - is only permitted to be empty when actually unknown",
    r"CodingSchemeDesignator\(0008,0102\)\[1\]> - Unrecognized defined term = <99CANDOR>",
)
LN3 = math.log(3)


@pytest.fixture(scope="module")
def tiled_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source("sm_tiled", tmp_path_factory.mktemp("sm_tiled"))


@pytest.fixture(scope="module")
def decoded(tiled_path: Path) -> tuple[Dataset, np.ndarray]:
    """The source as the app holds it: header without pixel data, and the Total Pixel Matrix."""
    return decode_image(tiled_path)


def _uids(source: Dataset, writer: str) -> dict[str, str]:
    return {"series_instance_uid": derived_uid(source.SOPInstanceUID, "tiled", writer, "series"),
            "sop_instance_uid": derived_uid(source.SOPInstanceUID, "tiled", writer)}


def _assert_conformant(path: Path, source_path: Path) -> None:
    report = run_dciodvfy(path)
    assert report.errors == [], report.output
    assert [w for w in report.warnings if not any(re.search(k, w) for k in KNOWN_WARNINGS)] == [], report.output
    assert dcentvfy_errors([source_path, path]) == []


def _seg(source: Dataset, mask: np.ndarray) -> hd.seg.Segmentation:
    return build_binary_seg(source, mask, segment_label="Nuclei", property_category=codes.SCT.AnatomicalStructure,
                            property_type=codes.SCT.Nucleus, anatomic_region=None, algorithm_name="tiled-test",
                            algorithm_version="1", series_number=901, series_description="Nuclei",
                            **_uids(source, "seg"))


def test_tiled_kinds_are_registered_and_tiled() -> None:
    assert TILED_SOURCE_KINDS == ("sm_tiled",) and not set(TILED_SOURCE_KINDS) & set(SOURCE_KINDS)
    assert all(is_multi_tile(build_source(kind)) for kind in TILED_SOURCE_KINDS)


def test_tiled_source_is_valid_tiled_full_and_holds_the_array(tiled_path: Path) -> None:
    report = run_dciodvfy(tiled_path)
    assert report.errors == [] and report.warnings == [], report.output
    ds = pydicom.dcmread(tiled_path)
    assert ds.DimensionOrganizationType == "TILED_FULL" and ds.NumberOfFrames == 6
    assert (ds.Rows, ds.Columns) == (TILE_SIZE, TILE_SIZE)
    assert (ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns) == TILED_SHAPE
    assert "PerFrameFunctionalGroupsSequence" not in ds and "DimensionIndexSequence" not in ds
    expected = synthetic_cells(*TILED_SHAPE, count=30)
    assert ds.pixel_array[5, TILED_SHAPE[0] - TILE_SIZE:, :].max() == 0  # padding of the last, partial tile
    matrix = hd.Image.from_dataset(ds).get_total_pixel_matrix(dtype=np.uint8, apply_icc_profile=False)
    np.testing.assert_array_equal(matrix, expected)


def test_tiles_are_row_major_and_padded() -> None:
    pixels = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    tiles = tile_total_pixel_matrix(pixels, 3)
    assert tiles.shape == (2 * 3, 3, 3)
    np.testing.assert_array_equal(tiles[1], pixels[0:3, 3:6])
    np.testing.assert_array_equal(tiles[5][:2, :1], pixels[3:5, 6:7])
    assert tiles[5][2:, :].max() == 0 and tiles[5][:, 1:].max() == 0


def test_grey_tiled_source_is_valid(tmp_path: Path) -> None:
    grey = (np.arange(150 * 260).reshape(150, 260) % 256).astype(np.uint8)
    path = tmp_path / "grey.dcm"
    build_tiled_sm_image(grey, identity=identity_for("sm_grey"), kind="sm_grey", tile_size=64).save_as(
        path, enforce_file_format=True)
    report = run_dciodvfy(path)
    assert report.errors == [] and report.warnings == [], report.output
    assert pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames == 3 * 5


def test_source_shape_helpers(decoded: tuple[Dataset, np.ndarray]) -> None:
    source, image = decoded
    assert image_shape(source) == TILED_SHAPE == image.shape[:2]
    assert is_multi_tile(source)
    require_referenceable_image(source)
    several_planes = copy.deepcopy(source)
    several_planes.TotalPixelMatrixFocalPlanes = 2
    with pytest.raises(ValueError, match="2 focal planes"):
        require_referenceable_image(several_planes)


def test_seg_is_tiled_valid_and_round_trips(decoded, tiled_path: Path, tmp_path: Path) -> None:
    source, image = decoded
    brightness = image.mean(axis=2)
    mask = brightness > np.percentile(brightness, 80)
    mask[150:200, 250:300] = True  # reaches into the padded corner tile
    path = tmp_path / "seg.dcm"
    _seg(source, mask).save_as(path, enforce_file_format=True)
    _assert_conformant(path, tiled_path)
    seg = hd.seg.segread(path)
    assert seg.DimensionOrganizationType == "TILED_SPARSE" and seg.NumberOfFrames == 6
    assert (seg.Rows, seg.Columns) == (TILE_SIZE, TILE_SIZE)
    assert (seg.TotalPixelMatrixRows, seg.TotalPixelMatrixColumns) == TILED_SHAPE
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    back = seg.get_total_pixel_matrix(segment_numbers=[1])[..., 0].astype(bool)
    np.testing.assert_array_equal(back, mask)


def test_seg_wants_a_mask_of_the_total_pixel_matrix(decoded) -> None:
    source, _ = decoded
    with pytest.raises(ValueError, match=r"\(200, 300\)"):
        _seg(source, np.zeros((TILE_SIZE, TILE_SIZE), bool))


def test_sc_overlay_covers_the_total_pixel_matrix(decoded, tiled_path: Path, tmp_path: Path) -> None:
    source, image = decoded
    rgb = np.ascontiguousarray(255 - image)
    path = tmp_path / "sc.dcm"
    build_overlay_sc(source, rgb, series_number=902, series_description="Overlay", **_uids(source, "sc")).save_as(
        path, enforce_file_format=True)
    _assert_conformant(path, tiled_path)
    sc = hd.imread(path)
    assert sc.get("NumberOfFrames", 1) in (1, None)
    np.testing.assert_array_equal(sc.get_frame(1), rgb)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID


def _finding(region: np.ndarray) -> FindingSpec:
    return FindingSpec(finding_type=codes.SCT.Nucleus, tracking_label="Nuclei", region_xy=region,
                       measurements=[MeasurementSpec(codes.DCM.Probability, 0.83, codes.UCUM.NoUnits, label="p")])


def test_sr_region_is_in_total_pixel_matrix_coordinates(decoded, tiled_path: Path, tmp_path: Path) -> None:
    source, _ = decoded
    region = box_polyline(10.0, 20.0, 290.0, 190.0)  # spans all six tiles
    report = build_measurement_report(source, [_finding(region)], algorithm_name="tiled-test",
                                      algorithm_version="1", series_number=904, series_description="Nuclei SR",
                                      **_uids(source, "sr"))
    path = tmp_path / "sr.dcm"
    report.save_as(path, enforce_file_format=True)
    _assert_conformant(path, tiled_path)
    (group,) = hd.sr.srread(path).content.get_planar_roi_measurement_groups()
    roi = group.roi
    np.testing.assert_allclose(roi.value, region)
    assert roi.PixelOriginInterpretation == "VOLUME"
    reference = roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert "ReferencedFrameNumber" not in reference


def test_sr_region_beyond_the_total_pixel_matrix_is_refused(decoded) -> None:
    source, _ = decoded
    with pytest.raises(ValueError, match="leaves the 300×200 image"):
        build_measurement_report(source, [_finding(box_polyline(0.0, 0.0, 301.0, 100.0))],
                                 algorithm_name="tiled-test", algorithm_version="1", series_number=904,
                                 series_description="Nuclei SR", **_uids(source, "sr"))


def test_parametric_map_is_tiled_valid_and_round_trips(decoded, tiled_path: Path, tmp_path: Path) -> None:
    source, _ = decoded
    rows, columns = np.indices(TILED_SHAPE)
    values = (LN3 / 2 * (rows / rows.max()) * (columns / columns.max())).astype(np.float32)
    mapping = ValueMapping(candor_codes.EPISTEMIC_UNCERTAINTY, candor_codes.NATS, "EPIUNC",
                           "Epistemic uncertainty (mutual information)", (0.0, LN3))
    pm = build_parametric_map(source, values, mapping=mapping, window=(LN3 / 4, LN3 / 2), content_label="EPISTEMIC",
                              content_description="MC-dropout mutual information (nats)",
                              algorithm_name="tiled-test", algorithm_version="1", series_number=906,
                              series_description="Epistemic map", **_uids(source, "pm"))
    path = tmp_path / "pm.dcm"
    pm.save_as(path, enforce_file_format=True)
    _assert_conformant(path, tiled_path)
    back = pydicom.dcmread(path)
    assert back.NumberOfFrames == 6 and (back.Rows, back.Columns) == (TILE_SIZE, TILE_SIZE)
    assert back.FrameOfReferenceUID == source.FrameOfReferenceUID
    np.testing.assert_allclose(stored_to_real_world(back), values, rtol=0, atol=1e-7)
