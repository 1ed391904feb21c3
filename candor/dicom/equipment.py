"""Who made a derived object, and the research-use labels every one carries.

The General Equipment module (PS3.3 C.7.5.1) and the Enhanced General Equipment
module (PS3.3 C.7.5.2) of every Candor output name Candor as the manufacturer;
the Series Description (PS3.3 C.7.3.1, VR LO, at most 64 characters) states
that the object is for research use and not for diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import candor

#: Text every derived Series Description ends with (unless it already says it).
RESEARCH_SUFFIX = "(research, not for diagnosis)"

#: Banner burned into every rendered overlay.
RESEARCH_BANNER = "RESEARCH USE ONLY \u2014 NOT FOR DIAGNOSIS"

#: Maximum length of a Long String (LO) value, PS3.5 Table 6.2-1.
_LO_MAX = 64


@dataclass(frozen=True)
class Equipment:
    """Values of the (Enhanced) General Equipment module of Candor's outputs."""

    manufacturer: str = "Candor project"
    manufacturer_model_name: str = "Candor"
    software_versions: str = candor.__version__
    device_serial_number: str = "candor-0"

    def __post_init__(self) -> None:
        for name in ("manufacturer", "manufacturer_model_name", "software_versions", "device_serial_number"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"Equipment.{name} must be a non-empty string, got {value!r}")
            if len(value) > _LO_MAX:
                raise ValueError(f"Equipment.{name} exceeds {_LO_MAX} characters: {value!r}")


#: The equipment Candor's builders write unless told otherwise.
CANDOR_EQUIPMENT = Equipment()


def research_series_description(text: str) -> str:
    """Return ``text`` ending with :data:`RESEARCH_SUFFIX` (PS3.3 C.7.3.1 Series Description).

    A description that already contains "not for diagnosis" (any case) is kept
    as it is.

    Raises
    ------
    ValueError
        If ``text`` is empty or the result exceeds the 64 characters of VR LO.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("series_description must be a non-empty string")
    text = text.strip()
    result = text if "not for diagnosis" in text.lower() else f"{text} {RESEARCH_SUFFIX}"
    if len(result) > _LO_MAX:
        limit = _LO_MAX - len(RESEARCH_SUFFIX) - 1
        raise ValueError(
            f"series description {result!r} is {len(result)} characters; DICOM LO allows {_LO_MAX} "
            f"(keep the description to {limit} characters, the research suffix is added)"
        )
    return result
