import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from candor.dicom.sc import build_overlay_sc
from candor.dicom.uids import derived_uid
from candor.dicom.validate import dcentvfy_errors, dciodvfy_errors
from candor.render import render_overlay


def _sc(source, rgb, **kwargs):
    return build_overlay_sc(
        source,
        rgb,
        series_instance_uid=derived_uid(source.SeriesInstanceUID, "0.1.0", "epistemic-sc", "series"),
        sop_instance_uid=derived_uid(source.SOPInstanceUID, "0.1.0", "epistemic-sc"),
        series_number=120,
        series_description="Epistemic uncertainty",
        **kwargs,
    )


def _base_rgb(source):
    pixels = source.pixel_array
    if pixels.ndim == 2:
        pixels = np.repeat((pixels >> max(0, int(source.BitsStored) - 8)).astype(np.uint8)[..., None], 3, axis=2)
    return pixels


def test_rendered_overlay_sc_is_valid_and_round_trips(source, source_path, write):
    value = np.linspace(0, 0.7, source.Rows * source.Columns, dtype=np.float32).reshape(source.Rows, source.Columns)
    rgb = render_overlay(_base_rgb(source), value, title="Epistemic uncertainty", vmin=0.0, vmax=0.693)
    path = write(_sc(source, rgb), "sc.dcm")
    assert dciodvfy_errors(path) == []
    assert dcentvfy_errors([source_path, path]) == []
    image = hd.imread(path)
    np.testing.assert_array_equal(image.get_frame(1), rgb)


def test_sc_attributes(source, write):
    rgb = np.full((source.Rows, source.Columns, 3), 7, np.uint8)
    ds = pydicom.dcmread(write(_sc(source, rgb), "sc.dcm"))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.BitsAllocated) == ("RGB", 3, 8)
    assert ds.BurnedInAnnotation == "YES"
    assert "not for diagnosis" in ds.SeriesDescription.lower()
    for keyword in ("PatientID", "StudyInstanceUID", "StudyDescription"):
        assert ds[keyword].value == source[keyword].value
    reference = ds.SourceImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    assert len(ds.PatientOrientation) == 2
    expected_laterality = source.get("ImageLaterality") if source.get("ImageLaterality") in ("R", "L") else ""
    assert (ds.Laterality or "") == expected_laterality


def test_op_laterality_and_frontal_orientation(op_source):
    sc = _sc(op_source, np.zeros((op_source.Rows, op_source.Columns, 3), np.uint8))
    assert sc.Laterality == "R"
    assert list(sc.PatientOrientation) == ["L", "F"]
    assert [float(v) for v in sc.PixelSpacing] == [float(v) for v in op_source.PixelSpacing]


def test_explicit_orientation_wins_and_other_size_drops_spacing(op_source):
    sc = _sc(op_source, np.zeros((10, 20, 3), np.uint8), patient_orientation=("R", "F"))
    assert list(sc.PatientOrientation) == ["R", "F"]
    assert "PixelSpacing" not in sc


def test_compound_source_orientation_is_kept(op_source, write):
    op_source.PatientOrientation = ["A", "FR"]
    path = write(_sc(op_source, np.zeros((op_source.Rows, op_source.Columns, 3), np.uint8)), "sc.dcm")
    assert list(pydicom.dcmread(path).PatientOrientation) == ["A", "FR"]
    assert dciodvfy_errors(path) == []


def test_malformed_source_orientation_is_rejected(op_source):
    op_source.PatientOrientation = ["X", "F"]
    with pytest.raises(ValueError, match="Patient Orientation"):
        _sc(op_source, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize(
    "rgb, error",
    [(np.zeros((8, 8, 3), np.float32), TypeError), (np.zeros((8, 8), np.uint8), ValueError)],
)
def test_bad_pixels_are_rejected(op_source, rgb, error):
    with pytest.raises(error):
        _sc(op_source, rgb)


def test_too_long_description_is_rejected(op_source):
    with pytest.raises(ValueError, match="64"):
        build_overlay_sc(
            op_source,
            np.zeros((4, 4, 3), np.uint8),
            series_instance_uid=derived_uid("s"),
            sop_instance_uid=derived_uid("i"),
            series_number=1,
            series_description="x" * 40,
        )
