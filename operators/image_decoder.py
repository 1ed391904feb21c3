"""Decode every selected 2D image of every selected series (the SDK converter is 3D-grey only)."""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.errors import InputRejected
from candor.imaging.decode import decode_image
from candor.records import DecodedImage
from candor.report import RunReport
from candor.tasks import TASKS

logger = logging.getLogger(__name__)


class ImageDecoderOperator(Operator):
    """``study_selected_series_list`` → ``images`` (a list of :class:`DecodedImage`).

    A file whose pixels cannot be decoded is rejected with a log line; the other
    images go on. An empty selection is a clean no-op, logged once.
    """

    INPUT = "study_selected_series_list"
    OUTPUT = "images"

    def __init__(self, fragment: Fragment, *args, report: RunReport, **kwargs):
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT)
        spec.output(self.OUTPUT)

    def compute(self, op_input, op_output, context) -> None:
        selections = op_input.receive(self.INPUT) or []
        decoded: list[DecodedImage] = []
        for study_selection in selections:
            for selected in study_selection.selected_series:
                task = TASKS[selected.selection_name]
                for instance in selected.series.get_sop_instances():
                    path = Path(instance.get_native_sop_instance().filename)
                    try:
                        dataset, image = decode_image(path)
                        reason = task.rejects(str(dataset.SOPClassUID), str(dataset.PhotometricInterpretation))
                        if reason:
                            raise InputRejected(path, reason)
                    except InputRejected as rejection:
                        logger.warning("rejected %s: %s", rejection.path, rejection.reason)
                        self.report.reject(rejection)
                        continue
                    decoded.append(DecodedImage(task=task, path=path, source=dataset, image=image))
        if not decoded:
            logger.info("no eligible image in the input: nothing to do")
        op_output.emit(decoded, self.OUTPUT)
