"""The studies the viewer shows: a fundus study and a chest radiograph, both processed by the app.

* **Fundus** (:func:`build_fundus_study`): a synthetic Ophthalmic Photography
  image (:mod:`training.synth.fundus`) run through the real app
  (``python -m app``): SEG, the uncertainty (and saliency) Secondary
  Captures and the TID 1500 SR land in the source study.
* **Chest** (:func:`build_chest_study`): the demo's synthetic chest radiograph
  (cardiomegaly drawn in; 12-bit MONOCHROME1 DX, :mod:`app.demo_studies`) run
  through the app: the TID 1500 SR (one group per finding, each with its
  probability ± MC std and the box around its saliency peak) and the saliency
  Secondary Captures of the top finding.

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

from pydicom import dcmread

from candor.dicom.synthetic import StudyIdentity, write_op_study

LOGGER = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

FUNDUS_IDENTITY = StudyIdentity(patient_name="Candor^Fundus", patient_id="CANDOR-VIEWER-FUNDUS",
                                accession_number="CANDORVFUNDUS", study_description="Fundus (synthetic, Candor viewer)")
CHEST_IDENTITY = StudyIdentity(patient_name="Candor^Chest", patient_id="CANDOR-VIEWER-CHEST",
                               accession_number="CANDORVCHEST", study_description="Chest (synthetic, Candor viewer)")

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


def fresh_folders(folder: Path) -> tuple[Path, Path]:
    """``folder``/input and ``folder``/output, created, without DICOM files left from an earlier build."""
    input_dir, output_dir = folder / "input", folder / "output"
    for directory in (input_dir, output_dir):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.dcm"):
            old.unlink()
    return input_dir, output_dir


def build_fundus_study(folder: Path, models: Path, *, size: int = 512, seed: int = 2026,
                       extra_env: dict[str, str] | None = None) -> DemoStudy:
    """A synthetic right-eye fundus photograph and everything the app writes about it."""
    from training.synth.fundus import generate_fundus

    input_dir, output_dir = fresh_folders(folder)
    sample = generate_fundus(size, rng=seed, laterality="R")
    [source] = write_op_study(input_dir, [sample.image], identity=FUNDUS_IDENTITY, laterality="R")
    report = run_app(input_dir, output_dir, models, extra_env=extra_env)
    if report.get("rejected"):
        raise RuntimeError(f"the app rejected the synthetic fundus image: {report['rejected']}")
    outputs = tuple(Path(entry["path"]) for entry in report["outputs"])
    study_uid = str(dcmread(source, stop_before_pixels=True).StudyInstanceUID)
    LOGGER.info("fundus study %s: %d output(s) from the app", study_uid, len(outputs))
    return DemoStudy("fundus", study_uid, (source, *outputs), source)


def build_chest_study(folder: Path, models: Path, *, size: int = 512, seed: int = 3,
                      extra_env: dict[str, str] | None = None) -> DemoStudy:
    """The demo's synthetic chest radiograph (MONOCHROME1 DX) and everything the app writes about it."""
    from app.demo_studies import chest_dataset

    input_dir, output_dir = fresh_folders(folder)
    source = chest_dataset(size, seed, CHEST_IDENTITY)
    source_path = input_dir / "dx.dcm"
    source.save_as(source_path, enforce_file_format=True)
    report = run_app(input_dir, output_dir, models, extra_env=extra_env)
    if report.get("rejected") or not report.get("processed"):
        raise RuntimeError(f"the app did not process the synthetic chest radiograph: {report.get('rejected')}")
    outputs = tuple(Path(entry["path"]) for entry in report["outputs"])
    LOGGER.info("chest study %s: %d output(s) from the app", source.StudyInstanceUID, len(outputs))
    return DemoStudy("chest", str(source.StudyInstanceUID), (source_path, *outputs), source_path)
