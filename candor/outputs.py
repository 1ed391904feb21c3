"""The DICOM objects Candor writes for one segmented image, at the source's resolution.

For every source image: a BINARY SEG of the thresholded mean probability, RGB
Secondary Capture overlays of the epistemic and aleatoric maps (OP/CR/DX have no
Frame of Reference, so a Parametric Map would be IOD-invalid there — see
``shared/reference/dicom-outputs-and-pacs.md`` §1), and a TID 1500 SR with the
image-level figures. UIDs derive from the source UIDs, the model and the output kind
(PS3.5 §9 "2.25." UUID-derived UIDs), so a re-run replaces rather than duplicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from candor.dicom import codes as candor_codes
from candor.dicom.sc import build_overlay_sc
from candor.dicom.seg import build_binary_seg
from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report
from candor.dicom.uids import derived_uid
from candor.preprocess import to_source_grid
from candor.records import ExplainedImage, InferredImage
from candor.render import render_overlay
from candor.saliency.registry import METHODS
from candor.summaries import SegmentationSummary

#: Output kind → Series Number of the derived series (saliency methods follow from 910; "instances" is the
#: microscopy confidence overlay, "epistemic-map" the Parametric Map of the epistemic uncertainty).
SERIES_NUMBERS = {"seg": 901, "epistemic": 902, "aleatoric": 903, "sr": 904, "instances": 905, "epistemic-map": 906,
                  **{f"saliency-{name}": 910 + index for index, name in enumerate(METHODS)}}

#: Short method names for Series Description (LO, 64 characters with the research-use suffix).
SALIENCY_SHORT = {
    "gradient": "gradient",
    "guided_backprop": "guided backprop",
    "integrated_gradients": "integrated gradients",
    "smoothgrad_gradient": "SmoothGrad",
    "smoothgrad_guided_backprop": "SmoothGrad-GBP",
    "smoothgrad_integrated_gradients": "SmoothGrad-IG",
    "gradcam": "Grad-CAM",
}

#: How each saliency method is named on its overlay.
SALIENCY_TITLES = {
    "gradient": "Vanilla gradient",
    "guided_backprop": "Guided backprop",
    "integrated_gradients": "Integrated gradients",
    "smoothgrad_gradient": "SmoothGrad (gradient)",
    "smoothgrad_guided_backprop": "SmoothGrad (guided backprop)",
    "smoothgrad_integrated_gradients": "SmoothGrad (integrated gradients)",
    "gradcam": "Grad-CAM",
}


@dataclass(frozen=True)
class OutputObject:
    kind: str
    dataset: Dataset


def output_uids(inferred: InferredImage, kind: str) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of output ``kind`` for this source image and model."""
    model = (inferred.bundle.name, inferred.bundle.version)
    series = derived_uid("candor", *model, kind, str(inferred.decoded.source.SeriesInstanceUID))
    instance = derived_uid("candor", *model, kind, str(inferred.decoded.source.SOPInstanceUID))
    return series, instance


def foreground_mask(inferred: InferredImage, threshold: float, foreground_class: int = 1) -> np.ndarray:
    """The mean foreground probability, resized to the source grid, thresholded."""
    probability = to_source_grid(inferred.maps.mean_probability[foreground_class], inferred.geometry)
    return probability >= threshold


def segmentation(inferred: InferredImage, mask: np.ndarray) -> OutputObject:
    """BINARY SEG of ``mask`` (source grid) as the task's segment, with the model as its algorithm."""
    task = inferred.decoded.task
    series_uid, sop_uid = output_uids(inferred, "seg")
    seg = build_binary_seg(
        inferred.decoded.source,
        mask,
        segment_label=task.segment_label,
        property_category=task.property_category,
        property_type=task.property_type,
        anatomic_region=task.anatomic_region,
        algorithm_name=inferred.bundle.name,
        algorithm_version=inferred.bundle.version,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
        series_number=SERIES_NUMBERS["seg"],
        series_description=f"{task.segment_label} (AI)",
    )
    return OutputObject("seg", seg)


def base_rgb(image: np.ndarray) -> np.ndarray:
    """The decoded source as the RGB image an overlay is drawn on (grey repeated into three channels)."""
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def uncertainty_overlays(inferred: InferredImage,
                         kinds: tuple[str, ...] = ("epistemic", "aleatoric")) -> Iterator[OutputObject]:
    """Overlays of the uncertainty maps ``kinds``, one at a time (each is a source-sized RGB image).

    Each map is drawn on a fixed scale, so that a colour means the same on every image and
    every run: aleatoric on [0, ln C] nats, the bound of every entropy term; epistemic on
    [0, ¼ ln C], because mutual information of a trained model rarely nears its bound and
    would be invisible on the full range (values above the scale saturate, as the legend shows).
    """
    maps = inferred.maps
    upper = math.log(maps.mean_probability.shape[0])
    base = base_rgb(inferred.decoded.image)
    scales = {
        "epistemic": ("Epistemic uncertainty (mutual information)", upper / 4),
        "aleatoric": ("Aleatoric uncertainty (expected entropy)", upper),
    }
    for kind in kinds:
        title, vmax = scales[kind]
        values = to_source_grid(getattr(maps, kind), inferred.geometry)
        rgb = render_overlay(base, values, title=f"{title}, T={maps.samples}, seed {inferred.seed}",
                             vmin=0.0, vmax=vmax, units="nats")
        del values
        series_uid, sop_uid = output_uids(inferred, kind)
        sc = build_overlay_sc(
            inferred.decoded.source, rgb,
            series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=SERIES_NUMBERS[kind],
            series_description=f"{kind.capitalize()} uncertainty overlay",
        )
        yield OutputObject(kind, sc)


def normalised_saliency(values: np.ndarray, percentile: float = 99.5) -> tuple[np.ndarray, float]:
    """|saliency| divided by its ``percentile``-th percentile and clipped to [0, 1] (Smilkov et al. 2017
    visualise absolute values capped at the 99th percentile); returns the map and the scale."""
    magnitude = np.abs(values)
    scale = float(np.percentile(magnitude, percentile))
    if scale <= 0.0:
        return np.zeros_like(magnitude), 0.0
    return np.clip(magnitude / scale, 0.0, 1.0), scale


#: Method abbreviations for a classification finding's saliency series ("SmoothGrad-GBP: pleural effusion").
SALIENCY_ABBREVIATIONS = {
    "gradient": "Gradient",
    "guided_backprop": "GBP",
    "integrated_gradients": "IG",
    "smoothgrad_gradient": "SmoothGrad",
    "smoothgrad_guided_backprop": "SmoothGrad-GBP",
    "smoothgrad_integrated_gradients": "SmoothGrad-IG",
    "gradcam": "Grad-CAM",
}

#: Characters left for a Series Description before the research-use suffix (LO holds 64).
_DESCRIPTION_ROOM = 64 - len(" (research, not for diagnosis)")


def finding_name(label: str) -> str:
    """A model label as readers see it: ``pleural_effusion`` → ``pleural effusion``."""
    return label.replace("_", " ")


def saliency_series_description(method: str, finding: str | None = None) -> str:
    """``Saliency: <method>`` for a segmentation, ``<abbreviation>: <finding>`` for a classification."""
    if finding is None:
        return f"Saliency: {SALIENCY_SHORT[method]}"
    return f"{SALIENCY_ABBREVIATIONS[method]}: {finding_name(finding)}"[:_DESCRIPTION_ROOM]


def _saliency_kind_and_series(method: str, finding: str | None, rank: int) -> tuple[str, int]:
    """Output kind (which seeds the UIDs) and Series Number of one saliency overlay.

    A classification's rank-r finding (0 = most probable) takes Series Numbers 910 + 10·r + method index.
    """
    base = f"saliency-{method}"
    if finding is None:
        return base, SERIES_NUMBERS[base]
    return f"{base}-{finding}", SERIES_NUMBERS[base] + 10 * rank


def saliency_overlays(explained: ExplainedImage) -> Iterator[OutputObject]:
    """One RGB overlay per saliency map (per method, and per explained finding), one at a time."""
    inferred = explained.inferred
    base = base_rgb(inferred.decoded.image)
    findings = list(dict.fromkeys(item.finding for item in explained.maps if item.finding is not None))
    for item in explained.maps:
        values, _ = normalised_saliency(item.values)
        values = to_source_grid(values, inferred.geometry)
        if item.finding is None:
            title = f"{SALIENCY_TITLES[item.method]} saliency for the {inferred.decoded.task.segment_label.lower()}"
        else:
            index = next(i for i, label in inferred.bundle.labels.items() if label == item.finding)
            probability = float(inferred.maps.mean_probability[1][index])
            title = f"{SALIENCY_TITLES[item.method]} saliency for {finding_name(item.finding)} (p {probability:.2f})"
        if item.sanity and item.sanity != "model-sensitive":
            title += f" (randomisation check: {item.sanity})"
        rgb = render_overlay(base, values, title=title, vmin=0.0, vmax=1.0, units="relative", cmap="viridis")
        del values
        rank = findings.index(item.finding) if item.finding is not None else 0
        kind, series_number = _saliency_kind_and_series(item.method, item.finding, rank)
        series_uid, sop_uid = output_uids(inferred, kind)
        yield OutputObject(kind, build_overlay_sc(
            inferred.decoded.source, rgb, series_instance_uid=series_uid, sop_instance_uid=sop_uid,
            series_number=series_number,
            series_description=saliency_series_description(item.method, item.finding)))


def measurement_report(inferred: InferredImage, summary: SegmentationSummary) -> OutputObject:
    """TID 1500 SR: foreground fraction and mean uncertainties, on the field-of-view region."""
    task = inferred.decoded.task
    finding = FindingSpec(
        finding_type=task.property_type,
        tracking_label=task.segment_label,  # the builder appends "label value" for each measurement
        region_xy=box_polyline(*summary.field_of_view_box),
        measurements=[
            MeasurementSpec(name=candor_codes.VESSEL_AREA_FRACTION, value=summary.foreground_fraction,
                            unit=codes.UCUM.NoUnits, label="area fraction"),
            MeasurementSpec(name=candor_codes.EPISTEMIC_UNCERTAINTY, value=summary.mean_epistemic,
                            unit=candor_codes.NATS, label="epistemic"),
            MeasurementSpec(name=candor_codes.ALEATORIC_UNCERTAINTY, value=summary.mean_aleatoric,
                            unit=candor_codes.NATS, label="aleatoric"),
            MeasurementSpec(name=candor_codes.TOTAL_UNCERTAINTY, value=summary.mean_total,
                            unit=candor_codes.NATS, label="total"),
        ],
    )
    series_uid, sop_uid = output_uids(inferred, "sr")
    sr = build_measurement_report(
        inferred.decoded.source, [finding],
        algorithm_name=inferred.bundle.name, algorithm_version=inferred.bundle.version,
        series_instance_uid=series_uid, sop_instance_uid=sop_uid, series_number=SERIES_NUMBERS["sr"],
        series_description=f"{task.segment_label} measurements (AI)",
    )
    return OutputObject("sr", sr)


def write_output(obj: OutputObject, folder: Path) -> Path:
    """Write ``obj`` as ``<kind>-<SOPInstanceUID>.dcm``: a re-run overwrites the same file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{obj.kind}-{obj.dataset.SOPInstanceUID}.dcm"
    tmp = path.with_suffix(".dcm.tmp")
    obj.dataset.save_as(tmp, enforce_file_format=True)
    tmp.replace(path)
    return path
