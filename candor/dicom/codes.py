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
=========  ===============================================  =======================

Entropies are in nats; UCUM has no nat, so the unit is the annotation ``{nat}``
(a dimensionless UCUM term, :data:`NATS`).
"""

from __future__ import annotations

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

#: NCI Thesaurus "Count" (not in pydicom's dictionaries; code taken from NCIt).
COUNT = Code("C25463", "NCIt", "Count")

#: UCUM unit of information entropy in natural units, as a UCUM annotation.
NATS = Code("{nat}", "UCUM", "nats")


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
