"""The TID 1500 report of a classification (chest radiograph findings), at the source's resolution.

One measurement group per finding of the model: the MC-mean probability and its MC
standard deviation (Gal & Ghahramani 2016), and the epistemic (mutual information) and
aleatoric (expected entropy) uncertainty of the finding's two-class distribution
(1 − p, p) in nats. Every finding is reported, present or not, so a reader sees a low
probability stated rather than a silent omission. Every group carries the box around the
finding's saliency peak (:func:`candor.saliency.peak_region`) as its Image Region (TID 1410):
OHIF 3.13 leaves the whole SR undisplayed when a group has no region (an image-level
TID 1501 group), so an absent finding's box is drawn too, labelled with its low probability. Saliency overlays of the most
probable findings are written by :func:`candor.outputs.saliency_overlays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.sr.codedict import codes

from candor.dicom import codes as candor_codes
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report
from candor.outputs import SERIES_NUMBERS, OutputObject, finding_name, output_uids
from candor.preprocess import Geometry
from candor.records import ExplainedImage


@dataclass(frozen=True)
class FindingResult:
    """One finding of one image: MC-dropout figures and its region on the source grid."""

    label: str
    probability: float
    std: float
    epistemic: float
    aleatoric: float
    box: tuple[float, float, float, float] | None
    """(column_min, row_min, column_max, row_max) in source pixel coordinates, or None."""


def to_source_box(box: tuple[int, int, int, int], geometry: Geometry) -> tuple[float, float, float, float]:
    """A working-grid box (row_start, col_start, row_stop, col_stop) as source (x0, y0, x1, y1) coordinates.

    Pixel (r, c) of the working grid covers source [c·sx, (c+1)·sx) × [r·sy, (r+1)·sy), so the box's
    edges scale directly (PS3.3 C.18.6.1.1: (0, 0) is the top-left corner of the top-left pixel).
    """
    row0, col0, row1, col1 = box
    rows, cols = geometry.resized_shape
    sy, sx = geometry.source_shape[0] / rows, geometry.source_shape[1] / cols
    return col0 * sx, row0 * sy, col1 * sx, row1 * sy


def finding_results(explained: ExplainedImage) -> list[FindingResult]:
    """Every finding of the model, in model output order."""
    inferred = explained.inferred
    maps = inferred.maps
    results = []
    for index, label in sorted(inferred.bundle.labels.items()):
        region = explained.regions.get(label)
        results.append(FindingResult(
            label=label,
            probability=float(maps.mean_probability[1][index]),
            std=float(maps.std_probability[1][index]),
            epistemic=float(maps.epistemic[index]),
            aleatoric=float(maps.aleatoric[index]),
            box=to_source_box(region, inferred.geometry) if region is not None else None,
        ))
    return results


def _finding_spec(result: FindingResult, explained: ExplainedImage) -> FindingSpec:
    task = explained.inferred.decoded.task
    measurements = [
        MeasurementSpec(name=codes.DCM.Probability, value=result.probability, unit=codes.UCUM.NoUnits,
                        derivation=codes.SCT.Mean, label="p"),
        MeasurementSpec(name=codes.DCM.Probability, value=result.std, unit=codes.UCUM.NoUnits,
                        derivation=codes.SCT.StandardDeviation),
        MeasurementSpec(name=candor_codes.EPISTEMIC_UNCERTAINTY, value=result.epistemic, unit=candor_codes.NATS,
                        label="epistemic"),
        MeasurementSpec(name=candor_codes.ALEATORIC_UNCERTAINTY, value=result.aleatoric, unit=candor_codes.NATS,
                        label="aleatoric"),
    ]
    return FindingSpec(
        finding_type=task.finding_code(result.label),
        tracking_label=finding_name(result.label).capitalize(),
        region_xy=box_polyline(*result.box) if result.box is not None else None,
        measurements=measurements,
        finding_site=task.anatomic_region,
    )


def findings_report(explained: ExplainedImage) -> OutputObject:
    """TID 1500 SR with one group per finding (probability ± MC std, epistemic, aleatoric, saliency-peak region)."""
    inferred = explained.inferred
    specs = [_finding_spec(result, explained) for result in finding_results(explained)]
    series_uid, sop_uid = output_uids(inferred, "sr")
    sr = build_measurement_report(
        inferred.decoded.source, specs,
        algorithm_name=inferred.bundle.name, algorithm_version=inferred.bundle.version,
        series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=SERIES_NUMBERS["sr"],
        series_description=f"{inferred.decoded.task.segment_label} (AI)",
    )
    return OutputObject("sr", sr)


def findings_summary(explained: ExplainedImage) -> dict[str, dict[str, float]]:
    """Per finding, the figures the run report lists (probability, std, epistemic, aleatoric)."""
    return {
        result.label: {"probability": result.probability, "std": result.std, "epistemic": result.epistemic,
                       "aleatoric": result.aleatoric,
                       "box_xy": [round(v, 1) for v in result.box] if result.box is not None else None}
        for result in finding_results(explained)
    }


def most_probable(explained: ExplainedImage) -> tuple[str, float]:
    """(label, probability) of the most probable finding."""
    probability = explained.inferred.maps.mean_probability[1]
    index = int(np.argmax(probability))
    return explained.inferred.bundle.labels[index], float(probability[index])
