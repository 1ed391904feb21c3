"""The registry of Candor's tasks: which series each one takes and which model it runs.

A task names its model folder (under the ``-m`` models path), the DICOM series it is
eligible for (modality, SOP class, photometric interpretation) and the DICOM codes of
what it finds. The SDK's series selector gets its rules from here, so routing and the
eligibility messages never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
VL_PHOTOGRAPHIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"


@dataclass(frozen=True)
class Task:
    """One application of Candor (e.g. fundus vessel segmentation)."""

    name: str
    model_folder: str
    modalities: tuple[str, ...]
    sop_class_uids: tuple[str, ...]
    photometric_interpretations: tuple[str, ...]
    segment_label: str
    property_category: Code
    property_type: Code
    anatomic_region: Code | None
    description: str

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
    model_folder="fundus_vessels",
    modalities=("OP",),
    sop_class_uids=(OPHTHALMIC_PHOTOGRAPHY_8BIT, VL_PHOTOGRAPHIC_IMAGE),
    photometric_interpretations=("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"),
    segment_label="Retinal vessels",
    property_category=codes.SCT.Tissue,
    property_type=codes.SCT.BloodVessel,
    anatomic_region=codes.SCT.Retina,
    description="Retinal vessel segmentation with MC-dropout uncertainty (colour fundus photograph)",
)

TASKS: dict[str, Task] = {task.name: task for task in (FUNDUS_VESSELS,)}


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
