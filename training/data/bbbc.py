"""Loaders for two public fluorescence-nucleus sets of the Broad Bioimage Benchmark Collection.

**BBBC038 / Data Science Bowl 2018** (Caicedo et al., Nat. Methods 16, 2019), ``stage1_train``::

    <root>/<id>/images/<id>.png        8-bit PNG (often RGBA with R = G = B)
    <root>/<id>/masks/<anything>.png   one binary mask per nucleus (0 / 255)

The set mixes fluorescence, brightfield and H&E images; with ``fluorescence_only`` the
loader keeps grey images with a dark background (:func:`is_fluorescence`, a heuristic) and
logs how many it skipped. It has no official labelled test split, so :func:`dsb2018_split`
assigns each id to training / validation / test by a hash of the id (70 / 10 / 20 %),
stable across machines and copies.

**BBBC039** (U2OS nuclei, Hoechst; 200 images of 520 × 696 px)::

    <root>/images/<name>.tif           16-bit TIFF (12-bit data)
    <root>/masks/<name>.png            instance annotation
    <root>/metadata/training.txt       optional split lists (validation.txt, test.txt), one
                                       file name per line (``<name>.png``; ``.tif`` accepted)

Mask encoding — an assumption, documented here because we could not check the archive: in
BBBC039 the label is stored in the PNG's red channel, with value 1 for nuclei that touch
no other and 2, 3, … for touching ones, so one value is reused by many nuclei. The loader
therefore decodes *any* label image as connected regions (4-connectivity) of equal value,
taking the full colour as the value for RGB PNGs: that is right for unique-label images,
for this reused-value encoding and for random-colour RGB masks alike. It would split a
nucleus whose annotation is itself disconnected.

16-bit images are brought to 8 bits by a per-image percentile stretch (:func:`to_uint8`);
the app's input is 8-bit greyscale (higher = brighter), so a 16-bit source should be
windowed the same way before inference. Records come back as the same
:class:`~training.synth.nuclei.NucleiSample` the synthetic generator produces.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential

from candor.preprocess import working_shape
from training.synth.nuclei import NucleiSample

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")
LAYOUTS = ("dsb2018", "bbbc039")


@dataclass(frozen=True)
class NucleiRecord:
    """The files of one annotated image: the image and its mask file(s)."""

    name: str
    image: Path
    masks: tuple[Path, ...]
    layout: str


def _read(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            return np.asarray(handle)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: cannot read image: {error}") from error


def detect_layout(root: str | Path) -> str:
    """``bbbc039`` when ``root`` has ``images/`` and ``masks/`` folders, ``dsb2018`` when it has case folders."""
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"nucleus data folder {folder} does not exist")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return "bbbc039"
    if any((child / "images").is_dir() for child in folder.iterdir() if child.is_dir()):
        return "dsb2018"
    raise FileNotFoundError(f"{folder}: neither the BBBC039 layout (images/, masks/) nor DSB2018 stage1_train "
                            f"(<id>/images/<id>.png, <id>/masks/*.png)")


def dsb2018_split(case_id: str) -> str:
    """Deterministic 70/10/20 training/validation/test assignment of a DSB2018 id (first byte of its SHA-1)."""
    bucket = hashlib.sha1(case_id.encode("utf-8")).digest()[0] * 10 // 256
    return "training" if bucket < 7 else "validation" if bucket < 8 else "test"


def dsb2018_records(root: str | Path, split: str | None = None) -> list[NucleiRecord]:
    """List the cases of a DSB2018 ``stage1_train`` copy, checking each has its image and masks.

    ``split`` (one of :data:`SPLITS`) keeps the ids :func:`dsb2018_split` assigns to it.
    Raises ``FileNotFoundError`` naming a missing image, masks folder or mask file.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    folder = Path(root)
    cases = sorted(child for child in folder.iterdir() if child.is_dir()) if folder.is_dir() else []
    if not cases:
        raise FileNotFoundError(f"DSB2018: no case folders in {folder}")
    records = []
    for case in cases:
        if split is not None and dsb2018_split(case.name) != split:
            continue
        image = case / "images" / f"{case.name}.png"
        if not image.is_file():
            raise FileNotFoundError(f"DSB2018 case {case.name}: missing image {image}")
        masks_dir = case / "masks"
        if not masks_dir.is_dir():
            raise FileNotFoundError(f"DSB2018 case {case.name}: missing masks folder {masks_dir}")
        masks = tuple(sorted(masks_dir.glob("*.png")))
        if not masks:
            raise FileNotFoundError(f"DSB2018 case {case.name}: no mask PNG in {masks_dir}")
        records.append(NucleiRecord(case.name, image, masks, "dsb2018"))
    return records


def _split_names(root: Path, split: str) -> list[str]:
    listing = root / "metadata" / f"{split}.txt"
    if not listing.is_file():
        raise FileNotFoundError(f"BBBC039 split {split!r}: missing list {listing}")
    names = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{listing}: empty split list")
    return [Path(name).stem for name in names]


def bbbc039_records(root: str | Path, split: str | None = None) -> list[NucleiRecord]:
    """List BBBC039 images with their masks; ``split`` reads ``metadata/<split>.txt`` (None: every image).

    Raises ``FileNotFoundError`` naming a missing folder, split list, image or mask.
    """
    folder = Path(root)
    images_dir, masks_dir = folder / "images", folder / "masks"
    for needed in (images_dir, masks_dir):
        if not needed.is_dir():
            raise FileNotFoundError(f"BBBC039: missing folder {needed}")
    if split is None:
        stems = sorted(p.stem for p in images_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not stems:
            raise FileNotFoundError(f"BBBC039: no .tif images in {images_dir}")
    elif split in SPLITS:
        stems = _split_names(folder, split)
    else:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    records = []
    for stem in stems:
        candidates = [images_dir / f"{stem}{suffix}" for suffix in (".tif", ".tiff")]
        image = next((path for path in candidates if path.is_file()), None)
        if image is None:
            raise FileNotFoundError(f"BBBC039 {stem}: missing image {candidates[0]}")
        mask = masks_dir / f"{stem}.png"
        if not mask.is_file():
            raise FileNotFoundError(f"BBBC039 {stem}: missing mask {mask}")
        records.append(NucleiRecord(stem, image, (mask,), "bbbc039"))
    return records


def decode_label_image(array: np.ndarray) -> np.ndarray:
    """Instances (int32, 1..n) of a label image: 4-connected regions of equal value (RGB: of equal colour)."""
    values = np.asarray(array)
    if values.ndim == 3:
        channels = values[..., :3].astype(np.int64)
        values = (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2] if channels.shape[-1] == 3 \
            else channels[..., 0]
    elif values.ndim != 2:
        raise ValueError(f"a label image must be (H, W) or (H, W, C), got shape {values.shape}")
    return connected_components(values.astype(np.int64), background=0, connectivity=1).astype(np.int32)


def to_uint8(image: np.ndarray, low_percentile: float = 0.5, high_percentile: float = 99.9) -> np.ndarray:
    """Stretch an image linearly so its ``low``–``high`` percentiles map to 0–255 (uint8 in, uint8 out unchanged)."""
    if image.dtype == np.uint8:
        return image
    values = image.astype(np.float64)
    low, high = np.percentile(values, [low_percentile, high_percentile])
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.clip(np.round((values - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def is_fluorescence(rgb: np.ndarray) -> bool:
    """Heuristic: grey (channels within 2 grey levels on average) and dark background (median < ⅓ of 99.5th pct)."""
    if rgb.ndim == 2:
        grey = rgb.astype(np.float64)
    else:
        channels = rgb[..., :3].astype(np.float64)
        if np.abs(channels - channels.mean(axis=-1, keepdims=True)).mean() > 2.0:
            return False
        grey = channels.mean(axis=-1)
    return float(np.median(grey)) < float(np.percentile(grey, 99.5)) / 3.0


def read_dsb2018_case(record: NucleiRecord) -> NucleiSample:
    """One DSB2018 case: grey uint8 image (mean of R, G, B) and instances numbered in mask-file order.

    Where masks overlap (rare in stage1_train) the later file wins and a warning names the case.
    """
    raw = _read(record.image)
    grey = raw.astype(np.float64) if raw.ndim == 2 else raw[..., :3].astype(np.float64).mean(axis=-1)
    image = np.round(grey).astype(np.uint8) if raw.dtype == np.uint8 else to_uint8(grey)
    instances = np.zeros(image.shape, np.int32)
    overlap = 0
    for index, path in enumerate(record.masks, start=1):
        mask = _read(path)
        mask = (mask[..., 0] if mask.ndim == 3 else mask) > 0
        if mask.shape != image.shape:
            raise ValueError(f"{path}: mask size {mask.shape[::-1]} differs from {record.image} {image.shape[::-1]}")
        if not mask.any():
            logger.warning("%s: empty mask, skipped", path)
            continue
        overlap += int((mask & (instances > 0)).sum())
        instances[mask] = index
    if overlap:
        logger.warning("DSB2018 case %s: %d pixels claimed by two masks; the later mask kept them", record.name,
                       overlap)
    instances = relabel_sequential(instances)[0].astype(np.int32)
    return NucleiSample(image, instances, int(instances.max()), name=f"DSB2018 {record.name}")


def read_bbbc039_case(record: NucleiRecord) -> NucleiSample:
    """One BBBC039 image: percentile-stretched uint8 and instances decoded by :func:`decode_label_image`."""
    raw = _read(record.image)
    if raw.ndim != 2:
        raise ValueError(f"{record.image}: expected a single-channel image, got shape {raw.shape}")
    image = to_uint8(raw)
    instances = decode_label_image(_read(record.masks[0]))
    if instances.shape != image.shape:
        raise ValueError(f"{record.masks[0]}: mask size {instances.shape[::-1]} differs from {record.image} "
                         f"{image.shape[::-1]}")
    return NucleiSample(image, instances, int(instances.max()), name=f"BBBC039 {record.name}")


def load_nuclei_dataset(root: str | Path, split: str | None = None, fluorescence_only: bool = True
                        ) -> list[NucleiSample]:
    """Read every case of a DSB2018 or BBBC039 copy (layout detected), optionally one split of it."""
    layout = detect_layout(root)
    if layout == "bbbc039":
        samples = [read_bbbc039_case(record) for record in bbbc039_records(root, split)]
    else:
        samples = []
        records = dsb2018_records(root, split)
        for record in records:
            if fluorescence_only and not is_fluorescence(_read(record.image)):
                continue
            samples.append(read_dsb2018_case(record))
        skipped = len(records) - len(samples)
        if skipped:
            logger.info("DSB2018: skipped %d of %d cases that do not look like fluorescence", skipped, len(records))
    if not samples:
        raise ValueError(f"{root}: no usable {layout} cases (split {split!r}, fluorescence_only={fluorescence_only})")
    logger.info("%s %s: %d images, %d nuclei under %s", layout, split or "all", len(samples),
                sum(s.count for s in samples), root)
    return samples


def resize_nuclei_sample(sample: NucleiSample, working_size: int) -> NucleiSample:
    """Resize so the long side is ``working_size``, as :func:`candor.preprocess.to_network_input` does.

    The image uses PIL's Lanczos filter like inference; instances are resized nearest-neighbour,
    then renumbered (a nucleus smaller than a pixel of the new grid can vanish; ``count`` follows).
    """
    source = sample.image.shape
    rows, cols = working_shape((int(source[0]), int(source[1])), working_size)
    if (rows, cols) == source:
        return sample
    image = np.asarray(Image.fromarray(sample.image).resize((cols, rows), Image.Resampling.LANCZOS, reducing_gap=3.0))
    labels = np.array(Image.fromarray(sample.instances.astype(np.int32)).resize((cols, rows),
                                                                                  Image.Resampling.NEAREST))
    instances = relabel_sequential(labels)[0].astype(np.int32)
    return replace(sample, image=image, instances=instances, count=int(instances.max()))
