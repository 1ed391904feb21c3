"""The studies the viewer shows: a fundus study processed by the app, and a chest radiograph with an AI SR.

* **Fundus** (:func:`build_fundus_study`): a synthetic Ophthalmic Photography
  image (:mod:`training.synth.fundus`) run through the real app
  (``python -m app``): SEG, the uncertainty (and saliency) Secondary
  Captures and the TID 1500 SR land in the source study.
* **Chest** (:func:`build_chest_study`): a synthetic DX (MONOCHROME2) and a
  TID 1500 SR written *directly* with
  :func:`candor.dicom.sr.build_measurement_report`: one finding with an image
  region and its probability. TODO(chest task): the chest application is not
  yet in ``candor.tasks.TASKS``; once ``python -m app`` processes DX/CR, build
  this study through the app like the fundus one.

Both studies use their own synthetic patient, so the study list shows two rows.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.sr.codedict import codes

from candor.dicom.synthetic import StudyIdentity, build_dx_image, write_op_study
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

FUNDUS_IDENTITY = StudyIdentity(patient_name="Candor^Fundus", patient_id="CANDOR-VIEWER-FUNDUS",
                                accession_number="CANDORVFUNDUS", study_description="Fundus (synthetic, Candor viewer)")
CHEST_IDENTITY = StudyIdentity(patient_name="Candor^Chest", patient_id="CANDOR-VIEWER-CHEST",
                               accession_number="CANDORVCHEST", study_description="Chest (synthetic, Candor viewer)")

#: The chest finding written into the SR: probability, MC-dropout std, and box (column/row fractions).
CHEST_PROBABILITY, CHEST_PROBABILITY_STD = 0.83, 0.07
CHEST_BOX_FRACTIONS = (0.18, 0.22, 0.45, 0.62)


@dataclass(frozen=True)
class DemoStudy:
    """One study to load into the PACS: its UID, its files, and what it holds."""

    name: str
    study_instance_uid: str
    files: tuple[Path, ...]
    source: Path

    def series_uid(self, modality: str) -> str:
        """The Series Instance UID of the study's one series of ``modality`` (e.g. its SR).

        Raises
        ------
        ValueError
            If the study has no series, or more than one, of that modality.
        """
        uids = {str(ds.SeriesInstanceUID) for ds in (dcmread(p, stop_before_pixels=True) for p in self.files)
                if ds.Modality == modality}
        if len(uids) != 1:
            raise ValueError(f"{self.name}: expected one {modality} series, found {sorted(uids)}")
        return uids.pop()


def stand_in_model(models: Path) -> Path:
    """An untrained tiny fundus-vessel model folder: lets the app run end to end; its predictions mean nothing."""
    import torch

    from candor.bundle import build_network, save_bundle

    torch.manual_seed(0)
    config = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 2, "in_channels": 3,
              "out_channels": 2, "features": [4, 4, 8, 8, 16, 4], "dropout": 0.2}
    metadata = {"name": "untrained-stand-in", "version": "0.0.0", "task": "fundus_vessels",
                "labels": {"0": "background", "1": "retinal vessel"},
                "preprocessing": {"working_size": 64, "size_multiple": 16, "channels": "RGB"}}
    return save_bundle(models / "fundus_vessels", build_network(config), config, metadata)


def run_app(input_dir: Path, output_dir: Path, models: Path, *, extra_env: dict[str, str] | None = None,
            timeout: float = 900.0) -> dict:
    """Run ``python -m app`` as a hospital would and return its ``candor-report.json``.

    Raises
    ------
    RuntimeError
        If the app exits with a non-zero status (its log tail is included).
    """
    environ = {**os.environ, **(extra_env or {})}
    command = [sys.executable, "-m", "app", "-i", str(input_dir), "-o", str(output_dir), "-m", str(models)]
    LOGGER.info("running %s", " ".join(command))
    done = subprocess.run(command, cwd=REPO, env=environ, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the app exited with status {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads((output_dir / "candor-report.json").read_text(encoding="utf-8"))


def build_fundus_study(folder: Path, models: Path, *, size: int = 512, seed: int = 2026,
                       extra_env: dict[str, str] | None = None) -> DemoStudy:
    """A synthetic right-eye fundus photograph and everything the app writes about it."""
    from training.synth.fundus import generate_fundus

    input_dir, output_dir = folder / "input", folder / "output"
    for directory in (input_dir, output_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.dcm"):
            old.unlink()
    sample = generate_fundus(size, rng=seed, laterality="R")
    [source] = write_op_study(input_dir, [sample.image], identity=FUNDUS_IDENTITY, laterality="R")
    report = run_app(input_dir, output_dir, models, extra_env=extra_env)
    if report.get("rejected"):
        raise RuntimeError(f"the app rejected the synthetic fundus image: {report['rejected']}")
    outputs = tuple(Path(entry["path"]) for entry in report["outputs"])
    study_uid = str(dcmread(source, stop_before_pixels=True).StudyInstanceUID)
    LOGGER.info("fundus study %s: %d output(s) from the app", study_uid, len(outputs))
    return DemoStudy("fundus", study_uid, (source, *outputs), source)


def synthetic_chest(size: int) -> np.ndarray:
    """A chest-like 16-bit radiograph (brighter = more attenuation), square ``size``."""
    from candor.dicom.synthetic_sources import synthetic_radiograph

    return synthetic_radiograph(size, size, seed=7, maximum=65535)


def build_chest_study(folder: Path, *, size: int = 512) -> DemoStudy:
    """A synthetic DX and a TID 1500 SR with one boxed finding and its probability (SR writer used directly).

    TODO(chest task): replace the direct SR by the chest application's output
    (run through ``python -m app``) once ``candor.tasks.TASKS`` handles DX/CR.
    """
    from candor.dicom.sr import FindingSpec, MeasurementSpec, box_polyline, build_measurement_report

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.dcm"):
        old.unlink()
    source = build_dx_image(synthetic_chest(size), identity=CHEST_IDENTITY, photometric_interpretation="MONOCHROME2")
    source_path = folder / "dx.dcm"
    source.save_as(source_path, enforce_file_format=True)
    left, top, right, bottom = (fraction * size for fraction in CHEST_BOX_FRACTIONS)
    finding = FindingSpec(
        finding_type=codes.SCT.Pneumothorax,
        tracking_label="Pneumothorax",
        region_xy=box_polyline(left, top, right, bottom),
        finding_site=codes.SCT.Lung,
        measurements=[
            MeasurementSpec(codes.DCM.Probability, CHEST_PROBABILITY, codes.UCUM.NoUnits, label="p"),
            MeasurementSpec(codes.DCM.Probability, CHEST_PROBABILITY_STD, codes.UCUM.NoUnits,
                            derivation=codes.SCT.StandardDeviation),
        ],
    )
    sr = build_measurement_report(
        source, [finding], algorithm_name="chest-demo", algorithm_version="0.0.0",
        series_instance_uid=derived_uid(source.SOPInstanceUID, "viewer-chest-sr", "series"),
        sop_instance_uid=derived_uid(source.SOPInstanceUID, "viewer-chest-sr"),
        series_number=904, series_description="Chest findings (AI)",
    )
    sr_path = folder / "sr.dcm"
    sr.save_as(sr_path, enforce_file_format=True)
    LOGGER.info("chest study %s: DX and SR (written directly; the chest task is pending)", source.StudyInstanceUID)
    return DemoStudy("chest", str(source.StudyInstanceUID), (source_path, sr_path), source_path)
