"""Load a study folder's headers into the SDK's study objects (see :mod:`candor.intake`)."""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.core import Fragment, Operator, OperatorSpec

from candor.intake import scan_folder
from candor.report import RunReport

logger = logging.getLogger(__name__)


class StudyLoaderOperator(Operator):
    """Emits ``dicom_study_list`` (SDK ``DICOMStudy`` objects) for the input folder.

    Unlike the SDK loader it reads headers only and turns every damaged, empty or
    non-image file into one log line and a report entry, so that one bad file never
    stops the study.
    """

    OUTPUT = "dicom_study_list"

    def __init__(self, fragment: Fragment, *args, input_folder: Path, report: RunReport, **kwargs):
        self.input_folder = Path(input_folder)
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output(self.OUTPUT)

    def compute(self, op_input, op_output, context) -> None:
        intake = scan_folder(self.input_folder)
        self.report.files_seen = intake.files_seen
        for rejection in intake.rejected:
            self.report.reject(rejection)
        op_output.emit(intake.studies, self.OUTPUT)
