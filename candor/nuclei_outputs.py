"""The DICOM objects Candor writes for one microscopy image of the nuclei (instances) task.

For every source image (VL Microscopic, modality GM; VL Whole Slide Microscopy, SM):

* ``seg`` — a BINARY SEG (PS3.3 A.51) of all nuclei of the MC-mean prediction;
* ``sr`` — a TID 1500 Measurement Report: one image-level group "Nuclei" with the count
  and its MC-dropout distribution, and optionally one group per nucleus;
* ``instances`` — an RGB Secondary Capture (A.8.1) with every nucleus filled by the
  colour of its detection confidence and outlined;
* ``epistemic`` — an RGB Secondary Capture of the epistemic uncertainty (mutual information);
* ``epistemic-map`` — a float Parametric Map (A.75, C.8.32) of the same map, only where the
  source has a Frame of Reference (SM): PS3.3 makes Frame of Reference and the plane
  macros mandatory in a Parametric Map, and a VL Microscopic image has neither.

Everything is computed on the network's working grid (:class:`candor.preprocess.Geometry`)
and brought to the source grid here: label maps by nearest neighbour
(:func:`candor.instances.labels_to_source_grid`), float maps bilinearly
(:func:`candor.preprocess.to_source_grid`), boxes and areas by the ratio of the source to
the resized size. Counts stay those of the working grid, where the nuclei were found.
UIDs come from :func:`candor.outputs.output_uids`, so a re-run replaces its objects.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes

from candor.dicom import codes as candor_codes
from candor.dicom.pm import ValueMapping, build_parametric_map
from candor.dicom.sc import build_overlay_sc
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report
from candor.instances import CountEstimate, InstanceAnalysis, NucleusStats, count_instances, labels_to_source_grid
from candor.outputs import SERIES_NUMBERS, OutputObject, base_rgb, output_uids, segmentation, uncertainty_overlays
from candor.preprocess import Geometry, to_source_grid
from candor.records import InferredImage
from candor.render_instances import render_instance_values

LOGGER = logging.getLogger(__name__)

#: Slack (nats) for float32 rounding when a map is checked against its bounds [0, ln C].
_BOUND_TOLERANCE = 1e-5


def instance_analysis(inferred: InferredImage) -> InstanceAnalysis:
    """The nuclei of ``inferred``; raises ValueError when the image was not run by an instance task."""
    if inferred.decoded.task.kind != "instances" or inferred.instances is None:
        raise ValueError(f"{inferred.decoded.path}: task {inferred.decoded.task.name} produced no nucleus instances")
    rows, cols = inferred.geometry.resized_shape
    labels = inferred.instances.labels
    if labels.ndim != 2 or labels.shape[0] < rows or labels.shape[1] < cols:
        raise ValueError(f"instance labels {labels.shape} do not cover the working grid {rows}×{cols}")
    return inferred.instances


def source_labels(inferred: InferredImage) -> np.ndarray:
    """The instance map of the MC-mean prediction on the source grid (int32, 0 = background)."""
    geometry = inferred.geometry
    return labels_to_source_grid(instance_analysis(inferred).labels, geometry.resized_shape, geometry.source_shape)


def point_count(analysis: InstanceAnalysis) -> int:
    """Number of nuclei of the mean prediction (what the SEG and the overlay show).

    Raises
    ------
    ValueError
        If the count estimate disagrees with the label map it was made from.
    """
    count = count_instances(analysis.labels)
    if analysis.count.count_of_mean is not None and analysis.count.count_of_mean != count:
        raise ValueError(f"count of the mean prediction {analysis.count.count_of_mean} differs from its "
                         f"label map ({count} nuclei)")
    return count


def source_scale(geometry: Geometry) -> tuple[float, float]:
    """(row, column) factors from the resized working grid to the source grid."""
    return (geometry.source_shape[0] / geometry.resized_shape[0], geometry.source_shape[1] / geometry.resized_shape[1])


def source_pixel_spacing_mm(source: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: Pixel Spacing, else the shared Pixel Measures (SM, C.8.12.4); None if unknown."""
    value = source.get("PixelSpacing")
    if value is None and "SharedFunctionalGroupsSequence" in source:
        measures = source.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence")
        value = measures[0].get("PixelSpacing") if measures else None
    if value is None or len(value) != 2 or not all(float(v) > 0 for v in value):
        return None
    return float(value[0]), float(value[1])


def _whole_image_mean(values: np.ndarray, geometry: Geometry) -> float:
    rows, cols = geometry.resized_shape
    return float(np.mean(values[:rows, :cols], dtype=np.float64))


# -- SEG -------------------------------------------------------------------------------------------------------
def nuclei_segmentation(inferred: InferredImage) -> OutputObject:
    """BINARY SEG of every nucleus (labels > 0 on the source grid), segment "Nuclei" (PS3.3 A.51, C.8.20.2).

    The segment is coded with the task's property (Anatomical Structure / Nucleus, SCT
    84640000); the model is its Segmentation Algorithm Identification.
    """
    return segmentation(inferred, source_labels(inferred) > 0)


# -- SR --------------------------------------------------------------------------------------------------------
def count_tracking_text(label: str, point: int, count: CountEstimate, mean_epistemic: float) -> str:
    """Tracking identifier of the count group, e.g.
    ``"Nuclei: count 143, MC mean 141 ±6.5, 90% interval 131–155, epistemic 0.0123"``."""
    def shown(value: float) -> str:
        return MeasurementSpec(candor_codes.COUNT, value, codes.UCUM.Counts).value_text()

    return (f"{label}: count {point}, MC mean {shown(count.mean)} ±{shown(count.std)}, "
            f"{count.level:.0%} interval {count.low}–{count.high}, epistemic {shown(mean_epistemic)}")


def count_finding(inferred: InferredImage) -> FindingSpec:
    """Image-level group (TID 1410 on the whole-image box, so OHIF draws it) with the count distribution.

    Count (NCIt C25463) five times, told apart by their Derivation (121401): none for the
    point count of the mean prediction, Mean and Standard Deviation for the MC-dropout
    distribution of the per-sample counts, LOWnn / UPPnn (:func:`candor.dicom.codes.interval_bound_codes`)
    for the bounds of the interval at the bundle's level (widened by its calibrated
    ``count_interval_scale``); then the mean epistemic uncertainty over the image (nats).
    """
    analysis = instance_analysis(inferred)
    count, task = analysis.count, inferred.decoded.task
    rows, columns = inferred.geometry.source_shape  # the total pixel matrix of a tiled SM, not one tile
    low_code, high_code = candor_codes.interval_bound_codes(count.level)
    point = point_count(analysis)
    mean_epistemic = _whole_image_mean(inferred.maps.epistemic, inferred.geometry)
    unit = codes.UCUM.Counts
    measurements = [
        MeasurementSpec(candor_codes.COUNT, point, unit),
        MeasurementSpec(candor_codes.COUNT, count.mean, unit, codes.SCT.Mean),
        MeasurementSpec(candor_codes.COUNT, count.std, unit, codes.SCT.StandardDeviation),
        MeasurementSpec(candor_codes.COUNT, count.low, unit, low_code),
        MeasurementSpec(candor_codes.COUNT, count.high, unit, high_code),
        MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, mean_epistemic, candor_codes.NATS, codes.SCT.Mean),
    ]
    # no measurement is labelled: the tracking text is written whole, to show the interval as "low–high"
    return FindingSpec(
        finding_type=task.property_type,
        tracking_label=count_tracking_text(task.segment_label, point, count, mean_epistemic),
        region_xy=box_polyline(0.0, 0.0, float(columns), float(rows)),
        measurements=measurements,
    )


def nucleus_finding(nucleus: NucleusStats, inferred: InferredImage,
                    spacing_mm: tuple[float, float] | None) -> FindingSpec:
    """One group per nucleus: its bounding box on the source, area, detection confidence and mean epistemic.

    The box is the working-grid box (pixel edges) scaled to the source; the area is the
    working-grid pixel count times the area of a working pixel on the source, in µm²
    when the source's pixel spacing is known, else in source pixels.
    """
    row_scale, col_scale = source_scale(inferred.geometry)
    rows, cols = inferred.geometry.source_shape
    r0, c0, r1, c1 = nucleus.bbox
    region = box_polyline(c0 * col_scale, r0 * row_scale, min(c1 * col_scale, cols), min(r1 * row_scale, rows))
    area_pixels = nucleus.area * row_scale * col_scale
    if spacing_mm is None:
        area = MeasurementSpec(codes.SCT.Area, area_pixels, candor_codes.PIXELS, label="area")
    else:
        area_um2 = area_pixels * spacing_mm[0] * spacing_mm[1] * 1e6
        area = MeasurementSpec(codes.SCT.Area, area_um2, codes.UCUM.SquareMicrometer, label="area")
    return FindingSpec(
        finding_type=inferred.decoded.task.property_type,
        tracking_label=f"Nucleus {nucleus.label}",
        region_xy=region,
        measurements=[
            area,
            MeasurementSpec(candor_codes.DETECTION_CONFIDENCE, nucleus.confidence, codes.UCUM.NoUnits,
                            label="confidence"),
            MeasurementSpec(candor_codes.EPISTEMIC_UNCERTAINTY, nucleus.mean_epistemic, candor_codes.NATS,
                            codes.SCT.Mean, label="epistemic"),
        ],
    )


def nuclei_measurement_report(inferred: InferredImage, per_nucleus: bool) -> OutputObject:
    """TID 1500 SR: the count group, then (``per_nucleus``) one group per nucleus in label order."""
    task = inferred.decoded.task
    findings = [count_finding(inferred)]
    if per_nucleus:
        spacing = source_pixel_spacing_mm(inferred.decoded.source)
        nuclei = sorted(instance_analysis(inferred).nuclei, key=lambda n: n.label)
        findings += [nucleus_finding(nucleus, inferred, spacing) for nucleus in nuclei]
    series_uid, sop_uid = output_uids(inferred, "sr")
    sr = build_measurement_report(
        inferred.decoded.source, findings,
        algorithm_name=inferred.bundle.name, algorithm_version=inferred.bundle.version,
        series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=SERIES_NUMBERS["sr"],
        series_description=f"{task.segment_label} measurements (AI)",
    )
    LOGGER.debug("nuclei SR %s: %d group(s)", sop_uid, len(findings))
    return OutputObject("sr", sr)


# -- overlays --------------------------------------------------------------------------------------------------
def _overlay(inferred: InferredImage, kind: str, rgb: np.ndarray, description: str) -> OutputObject:
    """An RGB SC of ``rgb`` (:func:`candor.dicom.sc.build_overlay_sc`).

    Its General Series Laterality (Type 2C, C.7.3.1) stays empty: dciodvfy warns that a
    slide is not of unknown laterality, but cannot tell that a slide is unpaired and
    reports a missing Laterality as an error, so the empty value is the lesser evil.
    """
    series_uid, sop_uid = output_uids(inferred, kind)
    sc = build_overlay_sc(inferred.decoded.source, rgb, series_instance_uid=series_uid, sop_instance_uid=sop_uid,
                          series_number=SERIES_NUMBERS[kind], series_description=description)
    return OutputObject(kind, sc)


def confidence_overlay(inferred: InferredImage) -> OutputObject:
    """Kind ``instances``: each nucleus filled by its detection confidence (0..1) and outlined."""
    analysis = instance_analysis(inferred)
    count = analysis.count
    title = (f"Detection confidence of {point_count(analysis)} nuclei (T={inferred.maps.samples}; "
             f"{count.level:.0%} interval {count.low}–{count.high})")
    rgb = render_instance_values(base_rgb(inferred.decoded.image), source_labels(inferred),
                                 {n.label: n.confidence for n in analysis.nuclei},
                                 title=title, units="detection confidence", vmin=0.0, vmax=1.0)
    return _overlay(inferred, "instances", rgb, "Nuclei: detection confidence")


def nuclei_overlays(inferred: InferredImage) -> Iterator[OutputObject]:
    """The ``instances`` and ``epistemic`` overlays, one at a time (each is a source-sized RGB image); the
    epistemic one is drawn as for the fundus task, on the fixed scale [0, ¼ ln C] nats."""
    yield confidence_overlay(inferred)
    yield from uncertainty_overlays(inferred, kinds=("epistemic",))


# -- Parametric Map --------------------------------------------------------------------------------------------
def epistemic_parametric_map(inferred: InferredImage) -> OutputObject | None:
    """Kind ``epistemic-map``: float32 Parametric Map of the mutual information (nats) on the source grid.

    Only for a source with a Frame of Reference (SM); for any other (VL Microscopic)
    returns None — the ``epistemic`` overlay carries the map there (PS3.3 A.75).
    """
    source = inferred.decoded.source
    if "FrameOfReferenceUID" not in source:
        LOGGER.info("%s: no Frame of Reference (SOP class %s); no Parametric Map, the epistemic overlay stands in",
                    inferred.decoded.path.name, source.SOPClassUID)
        return None
    maps = inferred.maps
    upper = maps.max_entropy
    values = _within_bounds(to_source_grid(maps.epistemic, inferred.geometry), upper)
    mapping = ValueMapping(
        quantity=candor_codes.EPISTEMIC_UNCERTAINTY, unit=candor_codes.NATS, lut_label="EPIUNC",
        explanation=candor_codes.EPISTEMIC_UNCERTAINTY.meaning, value_range=(0.0, upper),
    )
    series_uid, sop_uid = output_uids(inferred, "epistemic-map")
    pm = build_parametric_map(
        source, values, mapping=mapping, window=(upper / 8, upper / 4),  # the overlay's [0, ¼ ln C]
        content_label="EPISTEMIC",
        content_description=f"MC-dropout mutual information (nats), T={maps.samples}, seed {inferred.seed}",
        algorithm_name=inferred.bundle.name, algorithm_version=inferred.bundle.version,
        series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=SERIES_NUMBERS["epistemic-map"],
        series_description="Epistemic uncertainty map (nats)",
    )
    return OutputObject("epistemic-map", pm)


def _within_bounds(values: np.ndarray, upper: float) -> np.ndarray:
    """``values`` clipped to [0, ``upper``] after checking they leave it by float rounding only."""
    low, high = float(values.min()), float(values.max())
    if low < -_BOUND_TOLERANCE or high > upper + _BOUND_TOLERANCE or not math.isfinite(low + high):
        raise ValueError(f"epistemic map spans [{low:.6g}, {high:.6g}] nats, outside [0, ln C = {upper:.6g}]")
    top = np.float32(upper)
    if float(top) > upper:  # the float32 nearest to ln C may lie above it, outside the mapping's range
        top = np.nextafter(top, np.float32(0.0))
    return np.clip(values.astype(np.float32, copy=False), np.float32(0.0), top)
