"""Intake: every file ends in a series or in a rejection that names it and says why."""

import logging

from candor.intake import scan_folder

EXPECTED_REASONS = {
    "empty": "empty file",
    "not_dicom": "not a DICOM Part-10 file",
    "truncated_header": "missing required attribute(s) SOPInstanceUID",
    "non_image": "not an image object",
    "unsupported_modality": "unsupported modality CT",
    "unsupported_photometric": "photometric interpretation MONOCHROME2 is not supported",
}


def test_good_series_are_kept_and_each_bad_file_is_named_once(mixed_study, caplog):
    folder, good, bad = mixed_study
    with caplog.at_level(logging.WARNING, logger="candor.intake"):
        intake = scan_folder(folder)
    series = [s for study in intake.studies for s in study.get_all_series()]
    kept = {inst.get_native_sop_instance().filename for s in series for inst in s.get_sop_instances()}
    assert {str(p) for p in good} <= kept
    # headers are fine; the decoder rejects their pixel data (see test_decode)
    assert {str(bad["inconsistent"]), str(bad["truncated"])} <= kept
    reasons = {r.path: r.reason for r in intake.rejected}
    for kind, text in EXPECTED_REASONS.items():
        assert text in reasons[str(bad[kind])], (kind, reasons[str(bad[kind])])
    for kind in EXPECTED_REASONS:
        lines = [rec for rec in caplog.records if str(bad[kind]) in rec.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
    assert intake.files_seen == len(good) + len(bad)


def test_empty_folder_is_a_clean_no_op(tmp_path):
    intake = scan_folder(tmp_path)
    assert intake.studies == [] and intake.rejected == [] and intake.files_seen == 0


def test_duplicate_instances_are_reported(tmp_path):
    from studies import op_file

    first = op_file(tmp_path, "a.dcm", seed=1)
    (tmp_path / "copy.dcm").write_bytes(first.read_bytes())
    intake = scan_folder(tmp_path)
    assert intake.eligible_instances() == 1
    assert "duplicate SOP instance" in intake.rejected[0].reason


def test_tiled_slide_is_accepted_and_an_oversized_one_rejected_from_its_header(tmp_path, caplog):
    import numpy as np

    from candor.dicom.synthetic_sources import build_tiled_sm_image, identity_for, write_source

    tiled = write_source("sm_tiled", tmp_path)
    big = tmp_path / "big.dcm"
    build_tiled_sm_image(np.zeros((64, 9000), np.uint8), identity=identity_for("sm_big"), kind="sm_big",
                         tile_size=128).save_as(big, enforce_file_format=True)
    with caplog.at_level(logging.WARNING, logger="candor.intake"):
        intake = scan_folder(tmp_path)
    kept = [inst.get_native_sop_instance().filename for study in intake.studies for s in study.get_all_series()
            for inst in s.get_sop_instances()]
    assert kept == [str(tiled)]
    assert [r.path for r in intake.rejected] == [str(big)]
    assert "Total Pixel Matrix 64×9000" in intake.rejected[0].reason and "8192×8192" in intake.rejected[0].reason
    assert sum(str(big) in rec.getMessage() for rec in caplog.records) == 1
