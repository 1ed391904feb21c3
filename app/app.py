"""The operator graph: loader → selector → decoder → preprocessing → MC dropout → saliency → writers."""

from __future__ import annotations

import logging
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application
from monai.deploy.operators import DICOMSeriesSelectorOperator

from app.logs import quiet_chatty_libraries
from candor.inference import resolve_device
from candor.report import RunReport
from candor.settings import Settings
from candor.tasks import selector_rules
from operators.image_decoder import ImageDecoderOperator
from operators.mc_dropout import MCDropoutInferenceOperator
from operators.preprocess import PreprocessOperator
from operators.study_loader import StudyLoaderOperator
from operators.saliency import SaliencyOperator
from operators.writers import OverlayWriterOperator, SaliencyOverlayWriterOperator, SegWriterOperator, SRWriterOperator

logger = logging.getLogger(__name__)


class CandorApp(Application):
    """Candor: findings with MC-dropout uncertainty and saliency, written back as DICOM into the source study."""

    def __init__(self, *args, settings: Settings, report: RunReport, **kwargs):
        self.settings = settings
        self.report = report
        self.output_path: Path | None = None
        super().__init__(*args, **kwargs)

    def compose(self) -> None:
        context = Application.init_app_context(self.argv)
        quiet_chatty_libraries()
        input_path, self.output_path = Path(context.input_path), Path(context.output_path)
        models_path = Path(context.model_path)
        self.output_path.mkdir(parents=True, exist_ok=True)
        device = resolve_device(self.settings.device)
        logger.info("input %s, output %s, models %s, device %s, T=%d, seed=%d", input_path, self.output_path,
                    models_path, device, self.settings.mc_samples, self.settings.seed)

        loader = StudyLoaderOperator(self, CountCondition(self, 1), input_folder=input_path, report=self.report,
                                     name="study_loader")
        selector = DICOMSeriesSelectorOperator(self, rules=selector_rules(), all_matched=True, name="series_selector")
        decoder = ImageDecoderOperator(self, report=self.report, name="image_decoder")
        preprocess = PreprocessOperator(self, models_path=models_path, device=device, name="preprocess")
        inference = MCDropoutInferenceOperator(self, settings=self.settings, device=device,
                                               name="mc_dropout_inference")

        self.add_flow(loader, selector, {(StudyLoaderOperator.OUTPUT, "dicom_study_list")})
        self.add_flow(selector, decoder, {("study_selected_series_list", ImageDecoderOperator.INPUT)})
        self.add_flow(decoder, preprocess, {(ImageDecoderOperator.OUTPUT, PreprocessOperator.INPUT)})
        self.add_flow(preprocess, inference, {(PreprocessOperator.OUTPUT, MCDropoutInferenceOperator.INPUT)})

        saliency = SaliencyOperator(self, settings=self.settings, device=device, name="saliency")
        self.add_flow(inference, saliency, {(MCDropoutInferenceOperator.OUTPUT, SaliencyOperator.INPUT)})
        writers = [SRWriterOperator(self, output_folder=self.output_path, settings=self.settings,
                                    report=self.report, name="sr_writer")]
        if self.settings.write_seg:
            writers.append(SegWriterOperator(self, output_folder=self.output_path, settings=self.settings,
                                             report=self.report, name="seg_writer"))
        if self.settings.write_overlays:
            writers.append(OverlayWriterOperator(self, output_folder=self.output_path, settings=self.settings,
                                                 report=self.report, name="overlay_writer"))
            writers.append(SaliencyOverlayWriterOperator(self, output_folder=self.output_path,
                                                         settings=self.settings, report=self.report,
                                                         name="saliency_writer"))
        for writer in writers:
            self.add_flow(saliency, writer, {(SaliencyOperator.OUTPUT, writer.INPUT)})
