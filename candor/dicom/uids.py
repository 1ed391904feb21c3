"""Deterministic DICOM UIDs for derived objects.

A re-run on the same source with the same model must *replace* its earlier
results in the PACS, not add a second copy. Candor therefore derives every
output UID from stable inputs (the source SOP Instance UID, the model version,
the kind of output) instead of drawing a random one.

The UID form is the one PS3.5 Annex B.2 defines for UUID-derived UIDs:
``2.25.`` followed by the decimal value of a 128-bit UUID (here a name-based
UUID version 5, RFC 9562 §5.5), which is at most 44 characters long.
"""

from __future__ import annotations

import uuid

#: Namespace of Candor's name-based UUIDs (itself a UUID5 of the OID namespace),
#: so Candor's UIDs cannot collide with another tool hashing the same strings.
CANDOR_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "candor.dicom.derived-uid")

#: Separator between the parts; a UID never contains it, so ("1.2", "3") and
#: ("1.2|3",) are the only way to collide and UID parts cannot produce the latter.
_SEPARATOR = "|"

_UUID_ROOT = "2.25."


def derived_uid(*parts: str) -> str:
    """Return the ``2.25.<uuid5>`` UID derived from ``parts`` (PS3.5 B.2).

    Parameters
    ----------
    *parts
        Non-empty strings identifying the object, e.g. the source SOP Instance
        UID, the model version and the output kind (``"seg"``, ``"sr"``, …).

    Returns
    -------
    str
        A valid DICOM UID; equal ``parts`` always give the same UID.

    Raises
    ------
    TypeError
        If a part is not a string.
    ValueError
        If no part is given or a part is empty.
    """
    if not parts:
        raise ValueError("derived_uid needs at least one part")
    for index, part in enumerate(parts):
        if not isinstance(part, str):
            raise TypeError(f"derived_uid part {index} must be a str, got {type(part).__name__}")
        if not part:
            raise ValueError(f"derived_uid part {index} is empty")
    name = _SEPARATOR.join(parts)
    return _UUID_ROOT + str(uuid.uuid5(CANDOR_UID_NAMESPACE, name).int)
