"""The synthetic studies of ``make demo``: one per task, each a different (synthetic) patient.

* fundus — two Ophthalmic Photography series, right and left eye (:mod:`training.synth.fundus`);
* chest — one Digital X-Ray, 12-bit MONOCHROME1, with cardiomegaly drawn in (:mod:`training.synth.chest`);
* microscopy — one VL Whole Slide Microscopy image (SM, with a Frame of Reference, so the
  epistemic map is also written as a Parametric Map) and one VL Microscopic Image (GM),
  fluorescence nuclei in the blue channel (:mod:`training.synth.nuclei`), whose true
  counts are known and printed next to Candor's.

Nothing is downloaded; every pixel is generated here from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import FileDataset

from candor.dicom.synthetic import StudyIdentity

CHEST = StudyIdentity(patient_name="Candor^ChestDemo", patient_id="CANDOR-DEMO-002", accession_number="CANDOR0002",
                      study_description="Synthetic chest radiograph (Candor demo)")
MICROSCOPY = StudyIdentity(patient_name="Candor^MicroscopyDemo", patient_id="CANDOR-DEMO-003",
                           accession_number="CANDOR0003", study_description="Synthetic fluorescence microscopy "
                                                                            "(Candor demo)")


@dataclass(frozen=True)
class DemoSource:
    path: Path
    task: str
    truth: str
    """What the generator drew (e.g. "cardiomegaly", "57 nuclei"): synthetic ground truth."""


def fundus_sources(folder: Path, size: int, seed: int) -> list[DemoSource]:
    from candor.dicom.synthetic import write_op_study
    from training.synth.fundus import generate_fundus

    sources = []
    for series_number, laterality in ((1, "R"), (2, "L")):
        sample = generate_fundus(size, rng=seed + series_number, laterality=laterality)
        paths = write_op_study(folder, [sample.image], laterality=laterality, series_number=series_number)
        sources += [DemoSource(path, "fundus_vessels", f"{laterality} eye") for path in paths]
    return sources


def chest_radiograph(size: int, seed: int) -> np.ndarray:
    """A synthetic PA chest with cardiomegaly, ``size`` px square, as 12-bit MONOCHROME1 values (dense = low)."""
    from training.synth.chest import generate_chest

    small = generate_chest(512, rng=seed, findings={"cardiomegaly": True}).image
    large = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)).astype(np.uint16)
    return (4095 - large * 16).astype(np.uint16)


def chest_dataset(size: int, seed: int, identity: StudyIdentity = CHEST) -> FileDataset:
    """The synthetic chest as a DX For Presentation: 12 bits stored, MONOCHROME1, window over the 12-bit range."""
    from candor.dicom.synthetic import build_dx_image

    dataset = build_dx_image(chest_radiograph(size, seed), identity=identity, photometric_interpretation="MONOCHROME1")
    dataset.BitsStored, dataset.HighBit = 12, 11
    dataset.WindowCenter, dataset.WindowWidth = 2048, 4096
    return dataset


def chest_source(folder: Path, size: int, seed: int) -> DemoSource:
    dataset = chest_dataset(size, seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "chest-dx.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return DemoSource(path, "chest_findings", "cardiomegaly")


def fluorescence_rgb(size: int, seed: int) -> tuple[np.ndarray, int]:
    """A synthetic fluorescence field (nuclei in the blue channel, DAPI-like) and its true nucleus count."""
    from training.synth.nuclei import generate_nuclei

    sample = generate_nuclei(size, rng=seed)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[..., 2] = sample.image
    rgb[..., 1] = (sample.image.astype(np.uint16) * 2 // 5).astype(np.uint8)  # a little cyan, as DAPI looks
    return rgb, sample.count


def microscopy_sources(folder: Path, size: int, seed: int) -> list[DemoSource]:
    from candor.dicom.synthetic_sources import build_sm_image, build_vl_microscopic_image

    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for offset, (name, build) in enumerate((("microscopy-sm.dcm", build_sm_image),
                                             ("microscopy-gm.dcm", build_vl_microscopic_image))):
        rgb, count = fluorescence_rgb(size, seed + offset)
        path = folder / name
        build(rgb, identity=MICROSCOPY, kind=name.removesuffix(".dcm")).save_as(path, enforce_file_format=True)
        sources.append(DemoSource(path, "microscopy_nuclei", f"{count} nuclei"))
    return sources


def build_demo_studies(folder: Path, fundus_size: int, seed: int, tasks: tuple[str, ...]) -> list[DemoSource]:
    """Write the demo studies of ``tasks`` (``fundus``, ``chest``, ``microscopy``) into ``folder``."""
    sources: list[DemoSource] = []
    if "fundus" in tasks:
        sources += fundus_sources(folder, fundus_size, seed)
    if "chest" in tasks:
        sources.append(chest_source(folder, 2048, seed))
    if "microscopy" in tasks:
        sources += microscopy_sources(folder, 512, seed)
    return sources
