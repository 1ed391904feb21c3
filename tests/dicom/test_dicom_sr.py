import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from candor.dicom import codes as candor_codes
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report, mask_bounding_box
from candor.dicom.uids import derived_uid
from candor.dicom.validate import dcentvfy_errors, dciodvfy_errors

NO_UNITS = codes.UCUM.NoUnits


def _report(source, findings):
    return build_measurement_report(
        source,
        findings,
        algorithm_name="candor-test",
        algorithm_version="0.1.0",
        series_instance_uid=derived_uid(source.SeriesInstanceUID, "0.1.0", "sr", "series"),
        sop_instance_uid=derived_uid(source.SOPInstanceUID, "0.1.0", "sr"),
        series_number=130,
        series_description="Candor measurements",
    )


def _fundus(source):
    fov = np.zeros((source.Rows, source.Columns), bool)
    fov[3:93, 19:109] = True
    return FindingSpec(
        finding_type=codes.SCT.BloodVessel,
        tracking_label="Retinal vessels",
        region_xy=mask_bounding_box(fov),
        finding_site=codes.SCT.Retina,
        measurements=[
            MeasurementSpec(candor_codes.VESSEL_AREA_FRACTION, 0.125, NO_UNITS, label="fraction"),
            MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, 0.0123, candor_codes.NATS, codes.SCT.Mean, "epistemic"),
            MeasurementSpec(candor_codes.ALEATORIC_UNCERTAINTY, 0.231, candor_codes.NATS, codes.SCT.Mean, "aleatoric"),
        ],
    )


def _chest():
    return FindingSpec(
        finding_type=codes.SCT.Pneumothorax,
        tracking_label="Pneumothorax",
        region_xy=box_polyline(10, 20, 60, 80),
        measurements=[
            MeasurementSpec(codes.DCM.Probability, 0.83, NO_UNITS, label="p"),
            MeasurementSpec(codes.DCM.Probability, 0.07, NO_UNITS, codes.SCT.StandardDeviation),
            MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, 0.02, candor_codes.NATS),
            MeasurementSpec(candor_codes.ALEATORIC_UNCERTAINTY, 0.4, candor_codes.NATS),
        ],
    )


def _nuclei(region):
    return FindingSpec(
        finding_type=codes.SCT.Nucleus,
        tracking_label="Nuclei",
        region_xy=region,
        measurements=[
            MeasurementSpec(candor_codes.COUNT, 143, codes.UCUM.Counts, label="count"),
            MeasurementSpec(candor_codes.COUNT, 6.5, codes.UCUM.Counts, codes.SCT.StandardDeviation, "std"),
            MeasurementSpec(candor_codes.COUNT, 131, codes.UCUM.Counts, candor_codes.INTERVAL_LOWER_BOUND_95, "95% low"),
            MeasurementSpec(candor_codes.COUNT, 155, codes.UCUM.Counts, candor_codes.INTERVAL_UPPER_BOUND_95, "95% high"),
        ],
    )


def _values(group):
    return {
        (m.name.value, m.derivation.value if m.derivation else None): m.value for m in group.get_measurements()
    }


def test_report_is_valid_and_consistent_with_the_source(source, source_path, write):
    path = write(_report(source, [_fundus(source), _chest(), _nuclei(None)]), "sr.dcm")
    assert dciodvfy_errors(path) == []
    assert dcentvfy_errors([source_path, path]) == []
    ds = pydicom.dcmread(path)
    for keyword in ("PatientID", "StudyInstanceUID", "AccessionNumber", "StudyDescription"):
        assert ds[keyword].value == source[keyword].value
    assert "not for diagnosis" in ds.SeriesDescription.lower()
    assert ds.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99CANDOR"


def test_highdicom_reads_back_values_regions_and_labels(op_source, write):
    path = write(_report(op_source, [_fundus(op_source), _chest(), _nuclei(None)]), "sr.dcm")
    content = hd.sr.srread(path).content
    fundus, chest = content.get_planar_roi_measurement_groups()
    assert _values(fundus) == pytest.approx({
        ("VESSAF", None): 0.125, ("EPIUNC", "373098007"): 0.0123, ("ALEUNC", "373098007"): 0.231})
    assert _values(chest) == pytest.approx({
        ("122157", None): 0.83, ("122157", "386136009"): 0.07, ("EPIUNC", None): 0.02, ("ALEUNC", None): 0.4})
    assert str(fundus.tracking_identifier) == "Retinal vessels: fraction 0.125, epistemic 0.0123, aleatoric 0.231"
    assert str(chest.tracking_identifier) == "Pneumothorax: p 0.83 ±0.07"
    np.testing.assert_array_equal(fundus.roi.value, [[19, 3], [109, 3], [109, 93], [19, 93], [19, 3]])
    assert fundus.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    selected_from = fundus.roi.ContentSequence[0]  # SELECTED FROM the source image
    assert selected_from.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == op_source.SOPInstanceUID
    (nuclei,) = content.get_image_measurement_groups()
    assert _values(nuclei)[("C25463", "LOW95")] == 131
    assert str(nuclei.tracking_identifier) == "Nuclei: count 143 ±6.5, 95% low 131, 95% high 155"


def test_tracking_uids_repeat_on_rerun(op_source):
    def tracking_uids(sr):
        groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_planar_roi_measurement_groups()
        return [str(group.tracking_uid) for group in groups]

    first = _report(op_source, [_chest()])
    second = _report(op_source, [_chest()])
    assert first.SOPInstanceUID == second.SOPInstanceUID
    assert tracking_uids(first) == tracking_uids(second) != []


def test_standard_codes_only_need_no_private_scheme(op_source):
    finding = FindingSpec(codes.SCT.Nodule, "Nodule", box_polyline(0, 0, 10, 10),
                          [MeasurementSpec(codes.DCM.Probability, 0.5, NO_UNITS)])
    assert "CodingSchemeIdentificationSequence" not in _report(op_source, [finding])


@pytest.mark.parametrize("value, text", [(1234, "1234"), (0.83124, "0.831"), (6.5, "6.5"), (-0.0001234, "-0.000123")])
def test_values_are_shown_readably(value, text):
    assert MeasurementSpec(candor_codes.COUNT, value, codes.UCUM.Counts).value_text() == text


def test_tracking_text_rules():
    p = MeasurementSpec(codes.DCM.Probability, 0.5, NO_UNITS, label="p")
    sd = MeasurementSpec(codes.DCM.Probability, 0.1, NO_UNITS, codes.SCT.StandardDeviation)
    sd_labelled = MeasurementSpec(codes.DCM.Probability, 0.1, NO_UNITS, codes.SCT.StandardDeviation, "p sd")
    epi = MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, 0.2, candor_codes.NATS, label="epistemic")
    unlabelled = MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, 0.2, candor_codes.NATS)

    def text(*measurements):
        return FindingSpec(codes.SCT.Nodule, "Nodule", None, list(measurements)).tracking_text()

    assert text(p, sd, epi) == "Nodule: p 0.5 ±0.1, epistemic 0.2"
    assert text(epi, sd) == "Nodule: epistemic 0.2"  # an unlabelled std of another concept is not shown
    assert text(epi, sd_labelled) == "Nodule: epistemic 0.2, p sd ±0.1"
    assert text(unlabelled) == "Nodule"


def test_mask_bounding_box_encloses_pixel_edges():
    mask = np.zeros((10, 12), bool)
    mask[2, 3] = mask[5, 7] = True
    np.testing.assert_array_equal(mask_bounding_box(mask), [[3, 2], [8, 2], [8, 6], [3, 6], [3, 2]])
    with pytest.raises(ValueError):
        mask_bounding_box(np.zeros((4, 4), bool))


def test_region_outside_the_image_is_rejected(op_source):
    finding = FindingSpec(codes.SCT.Nodule, "Nodule", box_polyline(0, 0, op_source.Columns + 1, 10),
                          [MeasurementSpec(codes.DCM.Probability, 0.5, NO_UNITS)])
    with pytest.raises(ValueError, match="leaves"):
        _report(op_source, [finding])


@pytest.mark.parametrize(
    "build, error",
    [
        (lambda: MeasurementSpec(codes.DCM.Probability, float("nan"), NO_UNITS), ValueError),
        (lambda: MeasurementSpec(codes.DCM.Probability, "0.5", NO_UNITS), TypeError),
        (lambda: MeasurementSpec("Probability", 0.5, NO_UNITS), TypeError),
        (lambda: FindingSpec(codes.SCT.Nodule, "Nodule", None, []), ValueError),
        (lambda: FindingSpec(codes.SCT.Nodule, "", None, [MeasurementSpec(codes.DCM.Probability, 0.5, NO_UNITS)]), ValueError),
        (lambda: FindingSpec(codes.SCT.Nodule, "Nodule", box_polyline(0, 0, 5, 5)[:-1],
                             [MeasurementSpec(codes.DCM.Probability, 0.5, NO_UNITS)]), ValueError),
        (lambda: box_polyline(5, 0, 5, 10), ValueError),
    ],
)
def test_bad_specs_are_rejected(build, error):
    with pytest.raises(error):
        build()


def test_report_needs_findings(op_source):
    with pytest.raises(ValueError):
        _report(op_source, [])
