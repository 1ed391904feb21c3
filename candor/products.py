"""Which DICOM objects each task kind writes, and what the run report says about each image.

=================  ==================  ==========================================  ===================
Task kind          SEG                 uncertainty                                 SR (TID 1500)
=================  ==================  ==========================================  ===================
segmentation       thresholded mask    epistemic + aleatoric overlays (SC)         image-level figures
classification     —                   per finding, in the SR                      one group per finding
instances          all nuclei          confidence + epistemic overlays (SC);       count, its std and
                                       Parametric Map where the source has a FoR   interval (+ nuclei)
=================  ==================  ==========================================  ===================

Saliency overlays (SC) are written for every kind that has maps (:func:`candor.outputs.saliency_overlays`).
The writer operators call these functions, so the operators stay thin and this table is the one place
that decides what a study gets back.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from candor import chest_outputs, nuclei_outputs
from candor.outputs import (
    OutputObject,
    foreground_mask,
    measurement_report,
    saliency_overlays,
    segmentation,
    uncertainty_overlays,
)
from candor.records import ExplainedImage
from candor.settings import Settings
from candor.summaries import summarise_segmentation

logger = logging.getLogger(__name__)


def segmentation_objects(explained: ExplainedImage, settings: Settings) -> Iterator[OutputObject]:
    """The DICOM SEG of what was found (none for a classification)."""
    inferred = explained.inferred
    kind = inferred.decoded.task.kind
    if kind == "segmentation":
        yield segmentation(inferred, foreground_mask(inferred, settings.threshold))
    elif kind == "instances":
        yield nuclei_outputs.nuclei_segmentation(inferred)


def uncertainty_objects(explained: ExplainedImage, settings: Settings) -> Iterator[OutputObject]:
    """Uncertainty as images: SC overlays, and a Parametric Map where the IOD allows (SM sources)."""
    inferred = explained.inferred
    kind = inferred.decoded.task.kind
    if kind == "segmentation":
        yield from uncertainty_overlays(inferred)
    elif kind == "instances":
        yield from nuclei_outputs.nuclei_overlays(inferred)
        parametric_map = nuclei_outputs.epistemic_parametric_map(inferred)
        if parametric_map is not None:
            yield parametric_map


def saliency_objects(explained: ExplainedImage) -> Iterator[OutputObject]:
    yield from saliency_overlays(explained)


def measurement_report_and_entry(explained: ExplainedImage, settings: Settings) -> tuple[OutputObject, dict[str, Any]]:
    """The TID 1500 SR of one image and its entry in the run report (also logged as one line).

    Both come from the same figures, computed once (for a segmentation, the field-of-view summary).
    """
    inferred = explained.inferred
    name = inferred.decoded.path.name
    entry: dict[str, Any] = {
        "path": str(inferred.decoded.path),
        "task": inferred.decoded.task.name,
        "model": f"{inferred.bundle.name} {inferred.bundle.version}",
        "sop_instance_uid": str(inferred.decoded.source.SOPInstanceUID),
        "series_instance_uid": str(inferred.decoded.source.SeriesInstanceUID),
        "source_shape": list(inferred.geometry.source_shape),
        "mc_samples": inferred.maps.samples,
        "seed": inferred.seed,
    }
    kind = inferred.decoded.task.kind
    if kind == "segmentation":
        summary = summarise_segmentation(inferred, settings.threshold)
        entry.update(foreground_fraction=summary.foreground_fraction, mean_epistemic=summary.mean_epistemic,
                     mean_aleatoric=summary.mean_aleatoric, mean_total=summary.mean_total)
        logger.info("%s: foreground fraction %.3f, mean epistemic %.4f, mean aleatoric %.4f nats", name,
                    summary.foreground_fraction, summary.mean_epistemic, summary.mean_aleatoric)
        return measurement_report(inferred, summary), entry
    if kind == "classification":
        entry["findings"] = chest_outputs.findings_summary(explained)
        label, probability = chest_outputs.most_probable(explained)
        logger.info("%s: most probable finding %s p=%.3f; %s", name, label, probability,
                    ", ".join(f"{k} {v['probability']:.3f}±{v['std']:.3f}" for k, v in entry["findings"].items()))
        return chest_outputs.findings_report(explained), entry
    count = inferred.instances.count
    entry["count"] = {"count": count.count_of_mean, "mc_mean": count.mean, "mc_std": count.std,
                      "interval_low": count.low, "interval_high": count.high, "level": count.level,
                      "interval_scale": count.scale}
    logger.info("%s: %d nuclei (MC mean %.1f ± %.1f, %d%% interval %d–%d)", name, count.count_of_mean,
                count.mean, count.std, round(100 * count.level), count.low, count.high)
    return nuclei_outputs.nuclei_measurement_report(inferred, per_nucleus=settings.report_each_nucleus), entry
