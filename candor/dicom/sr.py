"""TID 1500 Measurement Report in a Comprehensive 3D SR, for findings with uncertainty.

Builds a *Comprehensive 3D SR* (PS3.3 A.35.13, SOP Class
1.2.840.10008.5.1.4.1.1.88.34) whose content is TID 1500 "Measurement Report"
(PS3.16). Each :class:`FindingSpec` becomes one measurement group:

* with a region, TID 1410 "Planar ROI Measurements and Qualitative Evaluations"
  whose Image Region is a closed POLYLINE SCOORD on the source (OHIF draws
  the group only when it has such a region). On a VL Whole Slide Microscopy
  source (A.32.8), tiled or not, the SCOORD carries Pixel Origin
  Interpretation ``VOLUME`` (0048,0301; PS3.3 C.18.6.1) and no Referenced Frame
  Number: its (column, row) coordinates are in the Total Pixel Matrix
  (C.8.12.4.1), so one region may span tiles. highdicom sets this for an SM
  reference and dciodvfy accepts it. (The alternatives are worse: ``FRAME``
  coordinates are confined to one tile, and a SCOORD3D in slide coordinates
  would need the slide geometry to be converted and is not what OHIF or SLIM
  draw on a 2D level.)
* without one, TID 1501 "Measurement and Qualitative Evaluation Group",
  image-level (valid, but OHIF shows nothing).

Every group carries a tracking identifier (TID 4108) whose text lists the
labelled values, e.g. ``"Pneumothorax: p 0.83 ±0.07"``, because OHIF shows
that text but not the Derivation (121401) of a NUM that marks a standard
deviation. Concepts without a standard code come from
:mod:`candor.dicom.codes` (scheme ``99CANDOR``), which is then declared in the
Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from candor.dicom.codes import CANDOR_SCHEME, coding_scheme_identification
from candor.dicom.equipment import CANDOR_EQUIPMENT, Equipment, research_series_description
from candor.dicom.source import copy_patient_study, image_shape, require_referenceable_image, stripped_source
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasurementSpec:
    """One numeric measurement (TID 300 "Measurement") of a finding.

    Attributes
    ----------
    name
        Concept name, e.g. ``codes.DCM.Probability`` or :data:`candor.dicom.codes.EPISTEMIC_UNCERTAINTY`.
    value
        The finite value.
    unit
        UCUM unit, e.g. ``codes.UCUM.NoUnits`` or :data:`candor.dicom.codes.NATS`.
    derivation
        How the value was derived from samples (CID 3488), e.g.
        ``codes.SCT.Mean`` or ``codes.SCT.StandardDeviation`` for the MC std.
    label
        Short display name in the tracking identifier text, e.g. ``"p"`` or
        ``"mean epistemic"``; empty keeps the value out of that text. A
        standard deviation (derivation SCT 386136009) that follows a
        measurement of the same concept is shown as ``±value`` after it,
        whatever its label.
    """

    name: Code
    value: float
    unit: Code
    derivation: Code | None = None
    label: str = ""

    def __post_init__(self) -> None:
        for attribute in ("name", "unit"):
            if not isinstance(getattr(self, attribute), Code):
                raise TypeError(f"MeasurementSpec.{attribute} must be a pydicom Code")
        if self.derivation is not None and not isinstance(self.derivation, Code):
            raise TypeError("MeasurementSpec.derivation must be a pydicom Code or None")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.floating, np.integer)):
            raise TypeError(f"MeasurementSpec.value must be a number, got {type(self.value).__name__}")
        if not math.isfinite(float(self.value)):
            raise ValueError(f"MeasurementSpec {self.name.meaning!r}: value must be finite, got {self.value}")

    def value_text(self) -> str:
        """The value as shown to readers: whole numbers in full (``1234``), others to three significant digits."""
        value = float(self.value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.3g}"

    def is_standard_deviation(self) -> bool:
        return self.derivation is not None and _same_code(self.derivation, codes.SCT.StandardDeviation)


@dataclass(frozen=True, eq=False)
class FindingSpec:
    """One measurement group: what was found, where, and its measurements.

    Attributes
    ----------
    finding_type
        Finding (DCM 121071) code, e.g. ``codes.SCT.Pneumothorax`` or ``codes.SCT.BloodVessel``.
    tracking_label
        Start of the tracking identifier text (e.g. ``"Retinal vessels"``).
    region_xy
        Closed polyline (N ≥ 4 points, first == last) as (column, row) pixel
        coordinates of the source (of its Total Pixel Matrix when it is a tiled
        slide), origin at the top-left corner of the top-left pixel (PS3.3
        C.18.6.1.1); None for an image-level group.
    measurements
        At least one measurement.
    finding_site
        Optional anatomic location (TID 1419 Finding Site), e.g. ``codes.SCT.Retina``.
    """

    finding_type: Code
    tracking_label: str
    region_xy: np.ndarray | None
    measurements: list[MeasurementSpec]
    finding_site: Code | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.finding_type, Code):
            raise TypeError("FindingSpec.finding_type must be a pydicom Code")
        if not isinstance(self.tracking_label, str) or not self.tracking_label.strip():
            raise ValueError("FindingSpec.tracking_label must be a non-empty string")
        if not self.measurements:
            raise ValueError(f"finding {self.tracking_label!r} has no measurements")
        if not all(isinstance(m, MeasurementSpec) for m in self.measurements):
            raise TypeError("FindingSpec.measurements must be MeasurementSpec instances")
        if self.finding_site is not None and not isinstance(self.finding_site, Code):
            raise TypeError("FindingSpec.finding_site must be a pydicom Code or None")
        if self.region_xy is not None:
            _check_closed_polyline(self.region_xy, self.tracking_label)

    def tracking_text(self) -> str:
        """Tracking identifier text, e.g. ``"Nuclei: count 143 ±6.5, 95% low 131"``.

        The tracking label, then ``label value`` for every labelled
        measurement; a standard deviation right after a shown measurement of the
        same concept becomes ``±value`` after it.
        """
        parts: list[str] = []
        previous: MeasurementSpec | None = None
        for measurement in self.measurements:
            if measurement.is_standard_deviation() and previous is not None and _same_code(previous.name, measurement.name):
                parts[-1] += f" ±{measurement.value_text()}"
                previous = None
                continue
            previous = None
            if measurement.label:
                sign = "±" if measurement.is_standard_deviation() else ""
                parts.append(f"{measurement.label} {sign}{measurement.value_text()}")
                previous = measurement
        label = self.tracking_label.strip()
        return f"{label}: {', '.join(parts)}" if parts else label

    def codes_used(self) -> list[Code]:
        """Every code of the finding and its measurements (to declare private schemes)."""
        used = [self.finding_type] + ([self.finding_site] if self.finding_site else [])
        for m in self.measurements:
            used += [m.name, m.unit] + ([m.derivation] if m.derivation else [])
        return used


def _same_code(a: Code, b: Code) -> bool:
    return (a.value, a.scheme_designator) == (b.value, b.scheme_designator)


def _check_closed_polyline(region: np.ndarray, label: str) -> None:
    if not isinstance(region, np.ndarray) or region.ndim != 2 or region.shape[1] != 2:
        raise ValueError(f"finding {label!r}: region_xy must be an (N, 2) numpy array")
    if region.shape[0] < 4:
        raise ValueError(f"finding {label!r}: a closed polyline needs at least 4 points, got {region.shape[0]}")
    if not np.all(np.isfinite(region)):
        raise ValueError(f"finding {label!r}: region_xy contains non-finite coordinates")
    if not np.array_equal(region[0], region[-1]):
        raise ValueError(f"finding {label!r}: region_xy is not closed (first point != last point)")


def box_polyline(column_min: float, row_min: float, column_max: float, row_max: float) -> np.ndarray:
    """Closed 5-point polyline (column, row) around a box, clockwise from the top-left corner."""
    if not (column_max > column_min and row_max > row_min):
        raise ValueError(f"empty box ({column_min}, {row_min}) – ({column_max}, {row_max})")
    return np.array(
        [[column_min, row_min], [column_max, row_min], [column_max, row_max], [column_min, row_max], [column_min, row_min]],
        dtype=np.float32,
    )


def mask_bounding_box(mask: np.ndarray) -> np.ndarray:
    """Closed polyline enclosing every True pixel of ``mask`` (pixel edges, not centres).

    Raises
    ------
    ValueError
        If ``mask`` is not 2D or has no True pixel.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask has no True pixel; it has no bounding box")
    return box_polyline(float(columns[0]), float(rows[0]), float(columns[-1] + 1), float(rows[-1] + 1))


def build_measurement_report(
    source: Dataset,
    findings: list[FindingSpec],
    *,
    algorithm_name: str,
    algorithm_version: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int = 1,
    procedure_reported: Code = codes.SCT.ImagingProcedure,
    equipment: Equipment = CANDOR_EQUIPMENT,
) -> hd.sr.Comprehensive3DSR:
    """Build a TID 1500 Measurement Report about ``source`` with one group per finding.

    Parameters
    ----------
    source
        The image the findings are about (the SR's evidence): single-frame, or
        tiled (regions are then in its Total Pixel Matrix).
    findings
        At least one finding; regions must lie within the image
        (:func:`candor.dicom.source.image_shape`).
    algorithm_name, algorithm_version
        Algorithm Identification (TID 4019) of every group, and the device
        observer (TID 1004) of the observation context.
    series_instance_uid, sop_instance_uid, series_number, instance_number
        Identity of the new instance; tracking UIDs are derived from
        ``sop_instance_uid`` so a re-run repeats them.
    series_description
        Series Description; the research-use suffix is added when missing.
    procedure_reported
        Procedure Reported (121058) of TID 1500 (CID 100).

    Raises
    ------
    ValueError
        If ``findings`` is empty, a region leaves the image, or the source is
        multi-frame and not a tiled image of one focal plane and optical path.
    """
    require_referenceable_image(source)
    if not findings:
        raise ValueError("a measurement report needs at least one finding")
    if not all(isinstance(f, FindingSpec) for f in findings):
        raise TypeError("findings must be FindingSpec instances")
    description = research_series_description(series_description)
    rows, columns = image_shape(source)
    for finding in findings:
        region = finding.region_xy
        if region is not None and (region.min() < 0 or region[:, 0].max() > columns or region[:, 1].max() > rows):
            raise ValueError(f"finding {finding.tracking_label!r}: region leaves the {columns}×{rows} image")

    reference = stripped_source(source)
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device-observer", algorithm_name, algorithm_version),
            name=algorithm_name,
            manufacturer_name=equipment.manufacturer,
            model_name=equipment.manufacturer_model_name,
        ),
    )
    groups = [_group(reference, finding, index, sop_instance_uid, algorithm) for index, finding in enumerate(findings, 1)]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure_reported,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[reference],
        content=report[0],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=equipment.manufacturer,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.SeriesDescription = description
    copy_patient_study(source, sr)
    if any(code.scheme_designator == CANDOR_SCHEME for f in findings for code in f.codes_used()):
        sr.CodingSchemeIdentificationSequence = coding_scheme_identification()
    LOGGER.debug("built SR %s over %s with %d finding(s)", sop_instance_uid, source.SOPInstanceUID, len(findings))
    return sr


def _group(
    reference: Dataset,
    finding: FindingSpec,
    index: int,
    sop_instance_uid: str,
    algorithm: hd.sr.AlgorithmIdentification,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations:
    """One TID 1410 (with region) or TID 1501 (image-level) group for ``finding``."""
    tracking = hd.sr.TrackingIdentifier(
        uid=derived_uid(sop_instance_uid, "tracking", str(index)),
        identifier=finding.tracking_text(),
    )
    measurements = [
        hd.sr.Measurement(name=m.name, value=float(m.value), unit=m.unit, derivation=m.derivation)
        for m in finding.measurements
    ]
    sites = [hd.sr.FindingSite(anatomic_location=finding.finding_site)] if finding.finding_site else None
    common = dict(
        tracking_identifier=tracking,
        finding_type=finding.finding_type,
        algorithm_id=algorithm,
        finding_sites=sites,
        measurements=measurements,
    )
    if finding.region_xy is None:
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(reference)], **common
        )
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.asarray(finding.region_xy, dtype=np.float32),
        source_image=hd.sr.SourceImageForRegion.from_source_image(reference),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)
