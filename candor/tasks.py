"""The registry of Candor's tasks: which series each one takes and which model it runs.

A task names its model folder (under the ``-m`` models path), the DICOM series it is
eligible for (modality, SOP class, photometric interpretation) and the DICOM codes of
what it finds. The SDK's series selector gets its rules from here, so routing and the
eligibility messages never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
VL_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"
COMPUTED_RADIOGRAPHY = "1.2.840.10008.5.1.4.1.1.1"
DIGITAL_XRAY_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
VL_MICROSCOPIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.2"
VL_WHOLE_SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"

_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")

#: What a task's model produces, and so which objects Candor writes:
#: ``segmentation`` (per-pixel classes → SEG, uncertainty overlays, SR of the image-level figures),
#: ``classification`` (multi-label findings → SR per finding with a saliency region, saliency overlays),
#: ``instances`` (per-pixel classes split into objects → SEG, SR with the count and its interval, overlays).
TaskKind = Literal["segmentation", "classification", "instances"]


@dataclass(frozen=True)
class Task:
    """One application of Candor (e.g. fundus vessel segmentation)."""

    name: str
    kind: TaskKind
    model_folder: str
    modalities: tuple[str, ...]
    sop_class_uids: tuple[str, ...]
    photometric_interpretations: tuple[str, ...]
    segment_label: str
    property_category: Code
    property_type: Code
    anatomic_region: Code | None
    description: str
    findings: tuple[tuple[str, Code], ...] = ()
    """Classification: (model label, finding code) for every output of the model, in output order."""

    def finding_code(self, label: str) -> Code:
        """The finding code of model output ``label`` (classification tasks)."""
        for name, code in self.findings:
            if name == label:
                return code
        raise KeyError(f"task {self.name} has no finding {label!r}")

    def rejects(self, sop_class_uid: str, photometric: str) -> str | None:
        """Why this task cannot take an instance of ``sop_class_uid`` / ``photometric``, or None."""
        if sop_class_uid not in self.sop_class_uids:
            return f"SOP class {sop_class_uid} is not one the {self.name} task reads ({', '.join(self.sop_class_uids)})"
        if photometric not in self.photometric_interpretations:
            return (
                f"photometric interpretation {photometric or '<missing>'} is not supported by the {self.name} task "
                f"(supported: {', '.join(self.photometric_interpretations)})"
            )
        return None


FUNDUS_VESSELS = Task(
    name="fundus_vessels",
    kind="segmentation",
    model_folder="fundus_vessels",
    modalities=("OP",),
    sop_class_uids=(OPHTHALMIC_PHOTOGRAPHY_8BIT, VL_PHOTOGRAPHIC_IMAGE),
    photometric_interpretations=_COLOUR,
    segment_label="Retinal vessels",
    property_category=codes.SCT.Tissue,
    property_type=codes.SCT.BloodVessel,
    anatomic_region=codes.SCT.Retina,
    description="Retinal vessel segmentation with MC-dropout uncertainty (colour fundus photograph)",
)

CHEST_FINDINGS = Task(
    name="chest_findings",
    kind="classification",
    model_folder="chest_findings",
    modalities=("CR", "DX"),
    sop_class_uids=(COMPUTED_RADIOGRAPHY, DIGITAL_XRAY_FOR_PRESENTATION),
    photometric_interpretations=("MONOCHROME1", "MONOCHROME2"),
    segment_label="Chest findings",
    property_category=codes.SCT.MorphologicallyAbnormalStructure,
    property_type=codes.SCT.Finding,
    anatomic_region=codes.SCT.Chest,
    description="Chest radiograph findings (multi-label) with MC-dropout uncertainty and saliency",
    findings=(
        ("nodule", codes.SCT.Nodule),
        ("pleural_effusion", codes.SCT.PleuralEffusion),
        ("cardiomegaly", codes.SCT.Cardiomegaly),
        ("pneumothorax", codes.SCT.Pneumothorax),
    ),
)

MICROSCOPY_NUCLEI = Task(
    name="microscopy_nuclei",
    kind="instances",
    model_folder="microscopy_nuclei",
    modalities=("GM", "SM"),
    sop_class_uids=(VL_MICROSCOPIC_IMAGE, VL_WHOLE_SLIDE_MICROSCOPY),
    photometric_interpretations=_COLOUR + ("MONOCHROME2",),
    segment_label="Nuclei",
    property_category=codes.SCT.AnatomicalStructure,
    property_type=codes.SCT.Nucleus,
    anatomic_region=None,
    description="Nucleus segmentation and counting with an uncertainty on the count (fluorescence microscopy)",
)

TASKS: dict[str, Task] = {task.name: task for task in (FUNDUS_VESSELS, CHEST_FINDINGS, MICROSCOPY_NUCLEI)}


def task_for_modality(modality: str) -> Task | None:
    """The task that takes series of ``modality``, if any."""
    for task in TASKS.values():
        if modality in task.modalities:
            return task
    return None


def supported_modalities() -> tuple[str, ...]:
    return tuple(sorted({modality for task in TASKS.values() for modality in task.modalities}))


def selector_rules() -> str:
    """Rules for the SDK's ``DICOMSeriesSelectorOperator``: one selection per task, by modality."""
    selections = [
        {"name": task.name, "conditions": {"Modality": "^(" + "|".join(task.modalities) + ")$"}}
        for task in TASKS.values()
    ]
    return json.dumps({"selections": selections})
