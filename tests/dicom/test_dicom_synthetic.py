import numpy as np
import pydicom
import pytest

from candor.dicom.synthetic import (
    OP_8BIT_SOP_CLASS_UID,
    StudyIdentity,
    build_dx_image,
    build_op_image,
    synthetic_fundus,
    write_op_study,
)
from candor.dicom.validate import dcentvfy_errors, dciodvfy_errors


@pytest.mark.parametrize("spacing", [None, (0.01, 0.01)])
def test_op_image_is_valid_and_round_trips(write, spacing):
    pixels = synthetic_fundus(40, 56, seed=3)
    path = write(build_op_image(pixels, laterality="L", pixel_spacing=spacing), "op.dcm")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == OP_8BIT_SOP_CLASS_UID
    assert ds.Modality == "OP" and ds.ImageLaterality == "L"
    assert "FrameOfReferenceUID" not in ds
    np.testing.assert_array_equal(ds.pixel_array, pixels)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_dx_image_is_valid(write, photometric, dtype):
    pixels = (np.arange(31 * 17).reshape(31, 17) % 200).astype(dtype)  # odd size: pixel data gets padded
    path = write(build_dx_image(pixels, photometric_interpretation=photometric), "dx.dcm")
    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == photometric
    np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_write_op_study_writes_one_consistent_series(tmp_path):
    images = [synthetic_fundus(32, 48, seed=s) for s in range(3)]
    identity = StudyIdentity(patient_id="P-7", accession_number="A7")
    paths = write_op_study(tmp_path / "study", images, identity=identity, laterality=["R", "L", "R"])
    datasets = [pydicom.dcmread(p) for p in paths]
    assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3]
    assert [ds.ImageLaterality for ds in datasets] == ["R", "L", "R"]
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    assert len({(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID) for ds in datasets}) == 1
    assert dcentvfy_errors(paths) == []
    again = write_op_study(tmp_path / "again", images, identity=identity, laterality=["R", "L", "R"])
    assert [p.name for p in again] == [p.name for p in paths]  # UIDs are derived, not random


def test_other_identity_gives_other_study():
    a = build_op_image(synthetic_fundus(8, 8))
    b = build_op_image(synthetic_fundus(8, 8), identity=StudyIdentity(accession_number="OTHER"))
    assert a.StudyInstanceUID != b.StudyInstanceUID


@pytest.mark.parametrize(
    "pixels, kwargs, error",
    [
        (np.zeros((8, 8, 3), np.float32), {}, TypeError),
        (np.zeros((8, 8), np.uint8), {}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"laterality": "U"}, ValueError),
        (np.zeros((8, 8, 3), np.uint8), {"pixel_spacing": (0.0, 1.0)}, ValueError),
    ],
)
def test_op_rejects_bad_input(pixels, kwargs, error):
    with pytest.raises(error):
        build_op_image(pixels, **kwargs)


def test_write_op_study_rejects_mismatched_lateralities(tmp_path):
    with pytest.raises(ValueError, match="lateralities"):
        write_op_study(tmp_path, [synthetic_fundus(8, 8)] * 2, laterality=["R"])
