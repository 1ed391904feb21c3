"""Writer operators: SEG, uncertainty overlays (SC) and the measurement SR, one file per object.

Inputs were validated upstream, so a failure here is a bug: it propagates and the app
exits with status 1 rather than leaving a silently partial result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.outputs import (
    OutputObject,
    measurement_report,
    saliency_overlays,
    segmentation,
    uncertainty_overlays,
    write_output,
)
from candor.records import InferredImage
from candor.report import OutputRecord, RunReport
from candor.settings import Settings
from candor.summaries import summarise_segmentation

logger = logging.getLogger(__name__)


class _WriterOperator(Operator):
    INPUT = "inferred"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, settings: Settings, report: RunReport,
                 **kwargs):
        self.output_folder = Path(output_folder)
        self.settings = settings
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)

    def objects(self, inferred: InferredImage) -> Iterable[OutputObject]:
        raise NotImplementedError

    def compute(self, op_input, op_output, context) -> None:
        for inferred in op_input.receive(self.INPUT) or []:
            for obj in self.objects(inferred):
                self._write(obj, inferred)

    def _write(self, obj: OutputObject, inferred: InferredImage) -> None:
        path = write_output(obj, self.output_folder)
        self.report.add_output(OutputRecord(
            kind=obj.kind, path=str(path), sop_class_uid=str(obj.dataset.SOPClassUID),
            sop_instance_uid=str(obj.dataset.SOPInstanceUID),
            series_instance_uid=str(obj.dataset.SeriesInstanceUID),
            source_sop_instance_uid=str(inferred.decoded.source.SOPInstanceUID)))
        logger.info("%s: wrote %s %s", inferred.decoded.path.name, obj.kind, path.name)


class SegWriterOperator(_WriterOperator):
    """BINARY DICOM SEG of the thresholded mean probability."""

    def objects(self, inferred: InferredImage) -> Iterable[OutputObject]:
        yield segmentation(inferred, self.settings.threshold)


class OverlayWriterOperator(_WriterOperator):
    """RGB Secondary Capture overlays of the epistemic and aleatoric maps."""

    def objects(self, inferred: InferredImage) -> Iterable[OutputObject]:
        yield from uncertainty_overlays(inferred)


class SaliencyOverlayWriterOperator(_WriterOperator):
    """RGB Secondary Capture overlays of each saliency map."""

    INPUT = "explained"

    def compute(self, op_input, op_output, context) -> None:
        for explained in op_input.receive(self.INPUT) or []:
            for obj in saliency_overlays(explained):
                self._write(obj, explained.inferred)


class SRWriterOperator(_WriterOperator):
    """TID 1500 SR with the image-level figures; also records them in the run report."""

    def objects(self, inferred: InferredImage) -> Iterable[OutputObject]:
        summary = summarise_segmentation(inferred, self.settings.threshold)
        self.report.add_processed({
            "path": str(inferred.decoded.path),
            "task": inferred.decoded.task.name,
            "model": f"{inferred.bundle.name} {inferred.bundle.version}",
            "sop_instance_uid": str(inferred.decoded.source.SOPInstanceUID),
            "series_instance_uid": str(inferred.decoded.source.SeriesInstanceUID),
            "source_shape": list(inferred.geometry.source_shape),
            "foreground_fraction": summary.foreground_fraction,
            "mean_epistemic": summary.mean_epistemic,
            "mean_aleatoric": summary.mean_aleatoric,
            "mean_total": summary.mean_total,
            "mc_samples": summary.samples,
            "seed": summary.seed,
        })
        logger.info("%s: vessel fraction %.3f, mean epistemic %.4f, mean aleatoric %.4f nats",
                    inferred.decoded.path.name, summary.foreground_fraction, summary.mean_epistemic,
                    summary.mean_aleatoric)
        yield measurement_report(inferred, summary)
