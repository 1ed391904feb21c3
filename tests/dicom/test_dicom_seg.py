import copy

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes

from candor.dicom.seg import build_binary_seg
from candor.dicom.uids import derived_uid
from candor.dicom.validate import dcentvfy_errors, dciodvfy_errors

MODEL = "0.1.0"


def _seg(source, mask, kind="vessel-seg"):
    series = derived_uid(source.SeriesInstanceUID, MODEL, kind, "series")
    return build_binary_seg(
        source,
        mask,
        segment_label="Retinal vessels",
        property_category=codes.SCT.Tissue,
        property_type=codes.SCT.BloodVessel,
        anatomic_region=codes.SCT.Retina,
        algorithm_name="vessel-unet",
        algorithm_version=MODEL,
        series_instance_uid=series,
        sop_instance_uid=derived_uid(source.SOPInstanceUID, MODEL, kind),
        series_number=100,
        series_description="Vessel segmentation",
    )


def _read_mask(path, source):
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[source.SOPInstanceUID], segment_numbers=[1]
    )
    return pixels[0, :, :, 0].astype(bool)


def test_seg_is_valid_readable_and_equal_to_the_mask(source, source_path, vessel_mask, write):
    path = write(_seg(source, vessel_mask), "seg.dcm")
    assert dciodvfy_errors(path) == []
    assert dcentvfy_errors([source_path, path]) == []
    np.testing.assert_array_equal(_read_mask(path, source), vessel_mask)


def test_seg_belongs_to_the_source_study_and_says_research(source, vessel_mask, write):
    ds = pydicom.dcmread(write(_seg(source, vessel_mask), "seg.dcm"))
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber", "StudyDescription"):
        assert ds[keyword].value == source[keyword].value, keyword
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SegmentationType == "BINARY"
    assert "not for diagnosis" in ds.SeriesDescription.lower()
    family = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmFamilyCodeSequence[0]
    assert (family.CodeValue, family.CodingSchemeDesignator) == ("123110", "DCM")
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert list(shared.PlaneOrientationSequence[0].ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]
    assert "PatientOrientation" in ds


def test_empty_mask_is_still_one_readable_frame(op_source, write):
    empty = np.zeros((op_source.Rows, op_source.Columns), bool)
    path = write(_seg(op_source, empty), "seg.dcm")
    assert dciodvfy_errors(path) == []
    assert not _read_mask(path, op_source).any()


def test_rerun_gives_the_same_uids_and_another_output_kind_does_not(op_source, vessel_mask):
    first, second = _seg(op_source, vessel_mask), _seg(op_source, vessel_mask)
    other = _seg(op_source, vessel_mask, kind="disc-seg")
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (second.SOPInstanceUID, second.SeriesInstanceUID)
    assert other.SOPInstanceUID != first.SOPInstanceUID


def test_source_is_not_modified(op_source, vessel_mask):
    before = copy.deepcopy(op_source)
    _seg(op_source, vessel_mask)
    assert op_source == before and "PixelSpacing" in op_source


@pytest.mark.parametrize(
    "mask, error",
    [
        (np.zeros((96, 127), bool), ValueError),
        (np.zeros((96, 128), np.uint8), TypeError),
    ],
)
def test_bad_masks_are_rejected(op_source, mask, error):
    with pytest.raises(error):
        _seg(op_source, mask)


def test_multiframe_source_is_rejected(op_source, vessel_mask):
    op_source.NumberOfFrames = 2
    with pytest.raises(ValueError, match="frames"):
        _seg(op_source, vessel_mask)


def test_source_with_frame_of_reference_keeps_its_geometry(write):
    """CT_small ships with pydicom: a source with a Frame of Reference takes highdicom's own path."""
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    mask = np.zeros((source.Rows, source.Columns), bool)
    mask[30:60, 40:90] = True
    path = write(_seg(source, mask), "seg.dcm")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert "PixelSpacing" in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    np.testing.assert_array_equal(_read_mask(path, source), mask)
