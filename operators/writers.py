"""Writer operators: SEG, uncertainty images, saliency overlays and the measurement SR, one file per object.

What each task kind gets is decided in :mod:`candor.products`. Inputs were validated
upstream, so a failure here is a bug: it propagates and the app exits with status 1
rather than leaving a silently partial result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor import products
from candor.outputs import OutputObject, write_output
from candor.records import ExplainedImage
from candor.report import OutputRecord, RunReport
from candor.settings import Settings

logger = logging.getLogger(__name__)


class _WriterOperator(Operator):
    INPUT = "explained"

    def __init__(self, fragment: Fragment, *args, output_folder: Path, settings: Settings, report: RunReport,
                 **kwargs):
        self.output_folder = Path(output_folder)
        self.settings = settings
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)

    def objects(self, explained: ExplainedImage) -> Iterable[OutputObject]:
        raise NotImplementedError

    def compute(self, op_input, op_output, context) -> None:
        for explained in op_input.receive(self.INPUT) or []:
            for obj in self.objects(explained):
                self._write(obj, explained)

    def _write(self, obj: OutputObject, explained: ExplainedImage) -> None:
        path = write_output(obj, self.output_folder)
        source = explained.inferred.decoded
        self.report.add_output(OutputRecord(
            kind=obj.kind, path=str(path), sop_class_uid=str(obj.dataset.SOPClassUID),
            sop_instance_uid=str(obj.dataset.SOPInstanceUID),
            series_instance_uid=str(obj.dataset.SeriesInstanceUID),
            source_sop_instance_uid=str(source.source.SOPInstanceUID)))
        logger.info("%s: wrote %s %s", source.path.name, obj.kind, path.name)


class SegWriterOperator(_WriterOperator):
    """BINARY DICOM SEG of what was found."""

    def objects(self, explained: ExplainedImage) -> Iterable[OutputObject]:
        return products.segmentation_objects(explained, self.settings)


class OverlayWriterOperator(_WriterOperator):
    """Uncertainty as images: RGB Secondary Capture overlays, Parametric Maps where the IOD allows."""

    def objects(self, explained: ExplainedImage) -> Iterable[OutputObject]:
        return products.uncertainty_objects(explained, self.settings)


class SaliencyOverlayWriterOperator(_WriterOperator):
    """RGB Secondary Capture overlays of each saliency map."""

    def objects(self, explained: ExplainedImage) -> Iterable[OutputObject]:
        return products.saliency_objects(explained)


class SRWriterOperator(_WriterOperator):
    """TID 1500 SR of the findings; also records the image's figures in the run report."""

    def objects(self, explained: ExplainedImage) -> Iterable[OutputObject]:
        sr, entry = products.measurement_report_and_entry(explained, self.settings)
        self.report.add_processed(entry)
        return [sr]
