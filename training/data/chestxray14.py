"""Loader for the NIH ChestX-ray14 data set (Wang et al., "ChestX-ray8: Hospital-scale chest
X-ray database and benchmarks on weakly-supervised classification and localization of common
thorax diseases", CVPR 2017).

ChestX-ray14 has 112,120 frontal radiographs (PNG, 1024 × 1024, 8-bit grey) of 30,805
patients with 14 image labels mined from the reports by NLP (so some are wrong). The
expected layout is the one of the NIH release, with every ``images_NNN`` archive
extracted into one folder::

    <root>/Data_Entry_2017.csv     "Image Index", "Finding Labels" ('|'-separated or "No Finding"),
                                   "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                                   "View Position", ...
    <root>/train_val_list.txt      official patient-wise split: one image name per line
    <root>/test_list.txt
    <root>/images/00000001_000.png

Candor's chest model predicts four of the 14 labels (:data:`NIH_TO_CANDOR`). The other ten
(Atelectasis, Consolidation, Infiltration, Pneumonia, Mass, Edema, Emphysema, Fibrosis,
Pleural_Thickening, Hernia) are read, checked and kept in :attr:`CXR14Record.nih_labels`
but do not become targets: an image whose only finding is, say, Atelectasis is a negative
for all four. Records come back as the :class:`~training.synth.chest.ChestSample` the
synthetic generator produces, with ``masks`` None (ChestX-ray14 has image labels only;
its ~1,000 bounding boxes are not used here).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from candor.preprocess import working_shape
from training.synth.chest import FINDINGS, ChestSample

logger = logging.getLogger(__name__)

#: NIH label → Candor finding name; NIH labels not listed here are ignored as targets.
NIH_TO_CANDOR: dict[str, str] = {
    "Nodule": "nodule",
    "Effusion": "pleural_effusion",
    "Cardiomegaly": "cardiomegaly",
    "Pneumothorax": "pneumothorax",
}
#: Every label that may appear in "Finding Labels" (Wang et al. 2017, 14-label release).
NIH_LABELS: frozenset[str] = frozenset({
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
})
NO_FINDING = "No Finding"
CSV_NAME = "Data_Entry_2017.csv"
SPLIT_FILES: dict[str, str] = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
_REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")


@dataclass(frozen=True)
class CXR14Record:
    """One ChestX-ray14 image: its file, Candor labels and the original NIH labels."""

    image_index: str
    path: Path
    labels: dict[str, bool]
    nih_labels: tuple[str, ...]
    patient_id: str
    view_position: str


def parse_finding_labels(text: str, where: str = "") -> tuple[dict[str, bool], tuple[str, ...]]:
    """Parse a "Finding Labels" cell into (Candor labels, NIH labels).

    "No Finding" alone gives all-False labels and no NIH labels; an unknown label, or
    "No Finding" together with a finding, raises ``ValueError`` (prefixed by ``where``).
    """
    parts = tuple(part.strip() for part in text.split("|") if part.strip())
    if not parts:
        raise ValueError(f"{where}empty 'Finding Labels'")
    if NO_FINDING in parts:
        if len(parts) > 1:
            raise ValueError(f"{where}'{NO_FINDING}' combined with findings: {text!r}")
        return {name: False for name in FINDINGS}, ()
    unknown = sorted(set(parts) - NIH_LABELS)
    if unknown:
        raise ValueError(f"{where}unknown label(s) {unknown} in {text!r}")
    present = {NIH_TO_CANDOR[part] for part in parts if part in NIH_TO_CANDOR}
    return {name: name in present for name in FINDINGS}, parts


def _read_split(root: Path, split: str) -> list[str]:
    if split not in SPLIT_FILES:
        raise ValueError(f"ChestX-ray14 split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    path = root / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"ChestX-ray14: missing split list {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: the split list is empty")
    return names


def chestxray14_records(root: str | Path, split: str = "train_val", views: tuple[str, ...] = ("PA", "AP"),
                        check_files: bool = True) -> list[CXR14Record]:
    """The records of one official split, in split-list order, restricted to ``views``.

    Raises ``FileNotFoundError`` naming a missing CSV, split list, images folder or image
    (with ``check_files``), and ``ValueError`` naming the file and line for a malformed
    CSV row, an unknown label or a split entry absent from the CSV.
    """
    root = Path(root)
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise FileNotFoundError(f"ChestX-ray14: missing {csv_path}")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"ChestX-ray14: missing folder {images_dir}")
    wanted = _read_split(root, split)
    entries: dict[str, tuple[dict[str, bool], tuple[str, ...], str, str]] = {}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {missing}")
        for line, row in enumerate(reader, start=2):
            where = f"{csv_path}, line {line}: "
            name = (row["Image Index"] or "").strip()
            if not name:
                raise ValueError(f"{where}empty 'Image Index'")
            labels, nih = parse_finding_labels(row["Finding Labels"] or "", where)
            entries[name] = (labels, nih, (row["Patient ID"] or "").strip(), (row["View Position"] or "").strip())
    records = []
    for name in wanted:
        if name not in entries:
            raise ValueError(f"{root / SPLIT_FILES[split]}: {name} is not listed in {csv_path}")
        labels, nih, patient, view = entries[name]
        if view not in views:
            continue
        path = images_dir / name
        if check_files and not path.is_file():
            raise FileNotFoundError(f"ChestX-ray14 {split}: missing image {path}")
        records.append(CXR14Record(name, path, labels, nih, patient, view))
    logger.info("ChestX-ray14 %s: %d of %d images (views %s) under %s", split, len(records), len(wanted),
                "/".join(views), root)
    return records


def read_chestxray14(record: CXR14Record, size: int | None = None) -> ChestSample:
    """Read one image as (H, W) uint8 grey, optionally resized so the long side is ``size``.

    Resizing uses PIL's Lanczos filter with ``reducing_gap=3.0`` and the shape of
    :func:`candor.preprocess.working_shape`, exactly as :func:`candor.preprocess.to_network_input`
    does, so training and inference see the same pixels. Some NIH PNGs are RGBA; they are
    converted to luminance.
    """
    try:
        with Image.open(record.path) as handle:
            image = handle.convert("L")
            if size is not None:
                rows, cols = working_shape((image.size[1], image.size[0]), size)
                if (rows, cols) != (image.size[1], image.size[0]):
                    image = image.resize((cols, rows), Image.Resampling.LANCZOS, reducing_gap=3.0)
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{record.path}: cannot read image: {error}") from error
    return ChestSample(image=array, labels=dict(record.labels), masks=None,
                       name=f"ChestX-ray14 {record.image_index}")


def label_prevalence(records: list[CXR14Record]) -> dict[str, float]:
    """Fraction of records positive for each Candor finding (for pos_weight and reports)."""
    if not records:
        raise ValueError("label prevalence of an empty record list is undefined")
    return {name: float(np.mean([r.labels[name] for r in records])) for name in FINDINGS}
