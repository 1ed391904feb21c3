"""Coded concepts Candor writes that have no code in DICOM, SNOMED CT, LOINC or UCUM.

Standard codes come from pydicom's ``codes`` (PS3.16) wherever one exists; the
concepts below have none, so they live in Candor's private coding scheme
``99CANDOR``. PS3.16 §8 reserves designators starting with ``99`` for private
schemes; each object that uses one lists it in the Coding Scheme Identification
Sequence (0008,0110), PS3.3 C.12.1 (see :func:`coding_scheme_identification`).

=========  ===============================================  =======================
Value      Meaning                                          Used for
=========  ===============================================  =======================
EPIUNC     Epistemic uncertainty (mutual information)       per-image / per-finding
ALEUNC     Aleatoric uncertainty (expected entropy)         per-image / per-finding
TOTUNC     Total predictive uncertainty (entropy)           per-image / per-finding
VESSAF     Retinal vessel area fraction                     fundus
FOVAF      Field of view area fraction                      fundus
LOW95      Lower bound of 95% interval                      derivation (counts)
UPP95      Upper bound of 95% interval                      derivation (counts)
LOW90      Lower bound of 90% interval                      derivation (counts)
UPP90      Upper bound of 90% interval                      derivation (counts)
DETCONF    Detection confidence (fraction of MC samples)    per nucleus
=========  ===============================================  =======================

An interval bound is a *derivation* (CID 3488 is extensible) of the concept it bounds,
e.g. Count (NCIt C25463) derived as LOW90: "the lower bound of the two-sided 90%
interval of the count". :func:`interval_bound_codes` picks the pair for a level, so a
reader never has to guess the level from the value. Detection confidence is the
fraction of the T MC-dropout samples whose instance map holds the nucleus (IoU > 0.5,
:func:`candor.instances.nucleus_confidence`), a frequency rather than a calibrated
probability, so it is not coded as Probability (DCM 122157).

Entropies are in nats; UCUM has no nat, so the unit is the annotation ``{nat}``
(a dimensionless UCUM term, :data:`NATS`); an area measured on an image without
pixel spacing is in ``{pixels}`` (:data:`PIXELS`).
"""

from __future__ import annotations

import math

from pydicom import Dataset
from pydicom.sr.coding import Code

#: Coding Scheme Designator of Candor's private concepts.
CANDOR_SCHEME = "99CANDOR"

EPISTEMIC_UNCERTAINTY = Code("EPIUNC", CANDOR_SCHEME, "Epistemic uncertainty (mutual information)")
ALEATORIC_UNCERTAINTY = Code("ALEUNC", CANDOR_SCHEME, "Aleatoric uncertainty (expected entropy)")
TOTAL_UNCERTAINTY = Code("TOTUNC", CANDOR_SCHEME, "Total predictive uncertainty (entropy)")
VESSEL_AREA_FRACTION = Code("VESSAF", CANDOR_SCHEME, "Retinal vessel area fraction")
FIELD_OF_VIEW_AREA_FRACTION = Code("FOVAF", CANDOR_SCHEME, "Field of view area fraction")
INTERVAL_LOWER_BOUND_95 = Code("LOW95", CANDOR_SCHEME, "Lower bound of 95% interval")
INTERVAL_UPPER_BOUND_95 = Code("UPP95", CANDOR_SCHEME, "Upper bound of 95% interval")
INTERVAL_LOWER_BOUND_90 = Code("LOW90", CANDOR_SCHEME, "Lower bound of 90% interval")
INTERVAL_UPPER_BOUND_90 = Code("UPP90", CANDOR_SCHEME, "Upper bound of 90% interval")
DETECTION_CONFIDENCE = Code("DETCONF", CANDOR_SCHEME, "Detection confidence (fraction of MC samples)")

#: Interval level (as a percentage) → (lower, upper) bound derivation codes.
_INTERVAL_BOUNDS: dict[int, tuple[Code, Code]] = {
    90: (INTERVAL_LOWER_BOUND_90, INTERVAL_UPPER_BOUND_90),
    95: (INTERVAL_LOWER_BOUND_95, INTERVAL_UPPER_BOUND_95),
}

#: NCI Thesaurus "Count" (not in pydicom's dictionaries; code taken from NCIt).
COUNT = Code("C25463", "NCIt", "Count")

#: UCUM unit of information entropy in natural units, as a UCUM annotation.
NATS = Code("{nat}", "UCUM", "nats")

#: UCUM annotation for an area counted in image pixels, where the source has no pixel spacing.
PIXELS = Code("{pixels}", "UCUM", "pixels")


def interval_bound_codes(level: float) -> tuple[Code, Code]:
    """(lower, upper) derivation codes of a two-sided interval at ``level`` (0.9 or 0.95).

    Raises
    ------
    ValueError
        For a level without codes: a bound must say which interval it bounds.
    """
    percent = round(float(level) * 100)
    if not math.isclose(percent, float(level) * 100, abs_tol=1e-6) or percent not in _INTERVAL_BOUNDS:
        known = ", ".join(f"{p / 100:g}" for p in _INTERVAL_BOUNDS)
        raise ValueError(f"no interval bound codes for level {level}; known levels: {known}")
    return _INTERVAL_BOUNDS[percent]


def coding_scheme_identification() -> list[Dataset]:
    """Items of the Coding Scheme Identification Sequence (0008,0110) for ``99CANDOR``.

    PS3.3 C.12.1.1.5: a private scheme should be identified by its designator
    and named with its responsible organisation.
    """
    item = Dataset()
    item.CodingSchemeDesignator = CANDOR_SCHEME
    item.CodingSchemeName = "Candor private concepts"
    item.CodingSchemeResponsibleOrganization = "Candor project"
    return [item]
