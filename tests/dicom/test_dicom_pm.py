"""Float Parametric Map builder: conformance on a one-tile SM, value round trip, no map without a Frame of Reference."""

from __future__ import annotations

import math
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from candor.dicom import codes as candor_codes
from candor.dicom.pm import ValueMapping, build_parametric_map, stored_to_real_world
from candor.dicom.synthetic_sources import write_source
from candor.dicom.uids import derived_uid
from candor.dicom.validate import dcentvfy_errors, run_dciodvfy

LN3 = math.log(3)
MAPPING = ValueMapping(candor_codes.EPISTEMIC_UNCERTAINTY, candor_codes.NATS, "EPIUNC",
                       "Epistemic uncertainty (mutual information)", (0.0, LN3))
PRIVATE_SCHEME_WARNING = r"CodingSchemeDesignator\(0008,0102\)\[1\]> - Unrecognized defined term = <99CANDOR>"


@pytest.fixture(scope="module")
def sm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source("sm", tmp_path_factory.mktemp("sm"))


@pytest.fixture
def sm(sm_path: Path) -> Dataset:
    return pydicom.dcmread(sm_path)


def _values(source: Dataset) -> np.ndarray:
    rows, cols = np.indices((int(source.Rows), int(source.Columns)))
    return (LN3 / 4 * (rows / rows.max()) * (cols / cols.max())).astype(np.float32)


def _build(source: Dataset, values: np.ndarray, **overrides) -> hd.pm.ParametricMap:
    arguments = dict(
        mapping=MAPPING, window=(LN3 / 8, LN3 / 4), content_label="EPISTEMIC",
        content_description="MC-dropout mutual information (nats)", algorithm_name="candor-test",
        algorithm_version="0.1.0", series_instance_uid=derived_uid(source.SeriesInstanceUID, "pm"),
        sop_instance_uid=derived_uid(source.SOPInstanceUID, "pm"), series_number=906,
        series_description="Epistemic uncertainty map (nats)",
    )
    arguments.update(overrides)
    return build_parametric_map(source, values, **arguments)


def test_map_on_a_slide_conforms_and_round_trips(sm: Dataset, sm_path: Path, write) -> None:
    values = _values(sm)
    path = write(_build(sm, values), "pm.dcm")
    report = run_dciodvfy(path)
    assert report.errors == []
    assert [w for w in report.warnings if not re.search(PRIVATE_SCHEME_WARNING, w)] == []
    assert dcentvfy_errors([sm_path, path]) == []
    pm = hd.pm.ParametricMap.from_dataset(pydicom.dcmread(path))
    np.testing.assert_array_equal(stored_to_real_world(pm), values)
    assert pm.FrameOfReferenceUID == sm.FrameOfReferenceUID
    assert list(pm.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "QUANTITY"]
    assert pm.ContentQualification == "RESEARCH" and pm.ContentLabel == "EPISTEMIC"
    assert "not for diagnosis" in pm.SeriesDescription
    assert pm.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99CANDOR"
    shared = pm.SharedFunctionalGroupsSequence[0]
    voi = shared.FrameVOILUTSequence[0]
    assert voi.VOILUTFunction == "LINEAR_EXACT" and float(voi.WindowWidth) == pytest.approx(LN3 / 4)
    position = pm.PerFrameFunctionalGroupsSequence[0].PlanePositionSlideSequence[0]
    tile = sm.PerFrameFunctionalGroupsSequence[0].PlanePositionSlideSequence[0]
    assert (position.RowPositionInTotalImagePixelMatrix, position.ColumnPositionInTotalImagePixelMatrix) == (1, 1)
    assert float(position.XOffsetInSlideCoordinateSystem) == float(tile.XOffsetInSlideCoordinateSystem)
    algorithm = [item for item in pm.ContributingEquipmentSequence if item.ManufacturerModelName == "candor-test"]
    assert algorithm and algorithm[0].SoftwareVersions == "0.1.0"
    assert algorithm[0].PurposeOfReferenceCodeSequence[0].CodeValue == "109102"


@pytest.mark.parametrize("kind", ["vl_microscopic", "op"])
def test_a_source_without_frame_of_reference_is_refused(kind: str, op_source: Dataset, tmp_path: Path) -> None:
    source = op_source if kind == "op" else pydicom.dcmread(write_source(kind, tmp_path))
    with pytest.raises(ValueError, match="no Frame of Reference"):
        _build(source, _values(source))


def test_values_are_checked(sm: Dataset) -> None:
    values = _values(sm)
    with pytest.raises(TypeError, match="float32"):
        _build(sm, values.astype(np.float64))
    with pytest.raises(ValueError, match="does not match"):
        _build(sm, values[1:])
    broken = values.copy()
    broken[3, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        _build(sm, broken)
    with pytest.raises(ValueError, match="outside the mapping's range"):
        _build(sm, values + np.float32(LN3))
    with pytest.raises(ValueError, match="content_label"):
        _build(sm, values, content_label="epistemic")
    with pytest.raises(ValueError, match="window"):
        _build(sm, values, window=(0.1, 0.0))


def test_value_mapping_is_validated() -> None:
    with pytest.raises(ValueError, match="LUT Label"):
        ValueMapping(candor_codes.EPISTEMIC_UNCERTAINTY, candor_codes.NATS, "A" * 17, "x", (0.0, 1.0))
    with pytest.raises(ValueError, match="first < last"):
        ValueMapping(candor_codes.EPISTEMIC_UNCERTAINTY, candor_codes.NATS, "EPIUNC", "x", (1.0, 1.0))


def test_interval_bound_codes_name_their_level() -> None:
    low, high = candor_codes.interval_bound_codes(0.9)
    assert (low.value, high.value) == ("LOW90", "UPP90") and "90%" in low.meaning and "90%" in high.meaning
    assert candor_codes.interval_bound_codes(0.95)[0] == candor_codes.INTERVAL_LOWER_BOUND_95
    with pytest.raises(ValueError, match="known levels"):
        candor_codes.interval_bound_codes(0.9001)
