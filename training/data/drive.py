"""Loader for the public DRIVE retinal vessel data set (Staal et al., IEEE TMI 23(4), 2004).

DRIVE ships 40 colour fundus photographs (565 × 584 px, 45° FOV) split 20/20, each with a
field-of-view mask and a manual vessel annotation. The expected layout is the one of the
official archive::

    <root>/training/images/21_training.tif       <root>/test/images/01_test.tif
    <root>/training/1st_manual/21_manual1.gif    <root>/test/1st_manual/01_manual1.gif
    <root>/training/mask/21_training_mask.gif    <root>/test/mask/01_test_mask.gif

The first observer's annotation (``1st_manual``) is the ground truth by convention, and
metrics are computed inside the FOV mask. Records come back as the same
:class:`~training.synth.fundus.FundusSample` the synthetic generator produces, so training
and evaluation code does not care where an image came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from candor.preprocess import working_shape
from training.synth.fundus import FundusSample

logger = logging.getLogger(__name__)

SPLITS = ("training", "test")


@dataclass(frozen=True)
class DriveRecord:
    """The three files of one DRIVE case."""

    number: str
    split: str
    image: Path
    manual: Path
    mask: Path


def drive_records(root: str | Path, split: str = "training") -> list[DriveRecord]:
    """List the cases of one split, checking that every image has its annotation and mask.

    Raises ``FileNotFoundError`` naming the missing folder or file, and ``ValueError``
    for an unknown split or a file name that does not follow DRIVE's ``NN_<split>.tif``.
    """
    if split not in SPLITS:
        raise ValueError(f"DRIVE split must be one of {SPLITS}, got {split!r}")
    folder = Path(root) / split
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"DRIVE {split} split: missing folder {images_dir}")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not images:
        raise FileNotFoundError(f"DRIVE {split} split: no .tif images in {images_dir}")
    records = []
    for image in images:
        number, _, rest = image.stem.partition("_")
        if rest != split or not number.isdigit():
            raise ValueError(f"{image}: not a DRIVE image name (expected NN_{split}.tif)")
        manual = folder / "1st_manual" / f"{number}_manual1.gif"
        mask = folder / "mask" / f"{number}_{split}_mask.gif"
        for needed, what in ((manual, "manual annotation"), (mask, "FOV mask")):
            if not needed.is_file():
                raise FileNotFoundError(f"DRIVE case {number} ({image.name}): missing {what} {needed}")
        records.append(DriveRecord(number, split, image, manual, mask))
    return records


def _read(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            return np.asarray(handle.convert(mode))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read image: {error}") from error


def read_drive_case(record: DriveRecord) -> FundusSample:
    """Read one case: RGB uint8 image, vessels = manual annotation inside the FOV, FOV mask."""
    image = _read(record.image, "RGB")
    manual = _read(record.manual, "L") > 127
    fov = _read(record.mask, "L") > 127
    for path, array in ((record.manual, manual), (record.mask, fov)):
        if array.shape != image.shape[:2]:
            raise ValueError(f"{path}: size {array.shape[::-1]} differs from {record.image} {image.shape[1::-1]}")
    return FundusSample(image=image, vessels=manual & fov, fov=fov, name=f"DRIVE {record.split} {record.number}")


def load_drive(root: str | Path, split: str = "training") -> list[FundusSample]:
    """Read every case of a DRIVE split (20 images, ~20 MB in memory)."""
    records = drive_records(root, split)
    logger.info("DRIVE %s: %d cases under %s", split, len(records), Path(root) / split)
    return [read_drive_case(record) for record in records]


def resize_sample(sample: FundusSample, working_size: int) -> FundusSample:
    """Resize so the long side is ``working_size``, as :func:`candor.preprocess.to_network_input` does.

    The image uses the same PIL Lanczos filter as inference; masks are resized bilinearly
    and thresholded at one half, so thin vessels keep their geometry as far as the grid allows.
    """
    source = sample.image.shape[:2]
    rows, cols = working_shape((int(source[0]), int(source[1])), working_size)
    if (rows, cols) == source:
        return sample
    image = np.asarray(Image.fromarray(sample.image).resize((cols, rows), Image.Resampling.LANCZOS, reducing_gap=3.0))

    def mask(values: np.ndarray) -> np.ndarray:
        plane = Image.fromarray(values.astype(np.float32), mode="F")
        return np.asarray(plane.resize((cols, rows), Image.Resampling.BILINEAR)) >= 0.5

    fov = mask(sample.fov)
    scale = rows / source[0]
    return replace(
        sample,
        image=image,
        vessels=mask(sample.vessels) & fov,
        fov=fov,
        disc_center=None if sample.disc_center is None else (sample.disc_center[0] * scale, sample.disc_center[1] * scale),
        fovea_center=None if sample.fovea_center is None else (sample.fovea_center[0] * scale,
                                                                 sample.fovea_center[1] * scale),
        fov_radius=None if sample.fov_radius is None else sample.fov_radius * scale,
    )
