import highdicom as hd
import highdicom.image as hd_image
import numpy as np
import pytest
from pydicom.sr.codedict import codes

from candor.dicom.compat import single_frame_sources_ok


def _segment() -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="x",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.BloodVessel,
        algorithm_type="MANUAL",
    )


def _seg_of(source):
    return hd.seg.Segmentation(
        source_images=[source],
        pixel_array=np.ones((source.Rows, source.Columns), bool),
        segmentation_type="BINARY",
        segment_descriptions=[_segment()],
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="m",
        manufacturer_model_name="m",
        software_versions="1",
        device_serial_number="1",
    )


def test_highdicom_still_needs_the_workaround(op_source):
    """When this fails, highdicom handles one-frame OP itself and compat.py can go."""
    with pytest.raises(AttributeError, match="SharedFunctionalGroupsSequence"):
        _seg_of(op_source)


def test_workaround_lets_highdicom_build_a_seg_from_an_op(op_source):
    with single_frame_sources_ok():
        seg = _seg_of(op_source)
    assert seg.SourceImageSequence[0].ReferencedSOPInstanceUID == op_source.SOPInstanceUID


def test_patch_is_scoped_and_undone_after_an_error(op_source):
    original = hd_image.is_multiframe_image
    assert original(op_source)
    with pytest.raises(RuntimeError):
        with single_frame_sources_ok():
            assert not hd_image.is_multiframe_image(op_source)
            raise RuntimeError("boom")
    assert hd_image.is_multiframe_image is original


def test_real_multiframe_instances_stay_multiframe(op_source):
    op_source.NumberOfFrames = 2
    with single_frame_sources_ok():
        assert hd_image.is_multiframe_image(op_source)
