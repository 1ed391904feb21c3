"""Float Parametric Map of a per-pixel quantity over a source image with a Frame of Reference.

Builds a *Parametric Map* (PS3.3 A.75, SOP Class 1.2.840.10008.5.1.4.1.1.30): one
float32 frame (Float Pixel Data, C.7.6.24) on the source's pixel grid, whose Real World
Value Mapping (C.7.6.16.2.11) says what the stored values are — quantity, unit, range
— with an identity slope/intercept, so a reader gets the value without a rescale.

Module by module, as highdicom 0.28 writes it and as Candor completes it:

* Parametric Map Series (C.8.32.1): Modality ``OT``; Series Description with the
  research-use suffix.
* Parametric Map Image (C.8.32.2): Image Type ``DERIVED\\PRIMARY\\VOLUME\\QUANTITY``,
  Content Qualification ``RESEARCH``, Content Label / Description.
* Frame of Reference (C.7.4.1) and the plane macros (C.7.6.16.2.1–2.3) are
  *mandatory*, so the map is only built for a source that has a Frame of Reference —
  a VL Whole Slide Microscopy image (SM), not OP/CR/DX/VL Microscopic (see
  ``shared/reference/dicom-outputs-and-pacs.md`` §1); those get an RGB overlay
  (:mod:`candor.dicom.sc`) instead. Pixel Measures, Plane Orientation and Plane
  Position (Slide) are taken from the source: a one-frame source gives a one-frame
  map lying exactly on the source tile; for a tiled source (Total Pixel Matrix over
  several frames, C.8.12.4.1) the map is of the whole Total Pixel Matrix and
  highdicom cuts it into tiles of the source's tile size (``tile_pixel_array``),
  ``TILED_SPARSE`` (C.7.6.17.3) with each tile's Plane Position (Slide).
* Frame VOI LUT (C.7.6.16.2.10): a ``LINEAR_EXACT`` window over the display range
  (float data, a window narrower than 1 is only valid as LINEAR_EXACT).
* SOP Common (C.12.1): the model is identified in the Contributing Equipment
  Sequence (purpose "Processing Equipment", DCM 109102: model name = algorithm name,
  software version = algorithm version), the IOD's place for it (a Parametric Map has
  no Segment Description with an Algorithm Identification); private ``99CANDOR``
  codes are declared in the Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from candor.dicom.codes import CANDOR_SCHEME, coding_scheme_identification
from candor.dicom.equipment import CANDOR_EQUIPMENT, Equipment, research_series_description
from candor.dicom.source import (
    copy_patient_study,
    frame_count,
    image_shape,
    is_multi_tile,
    require_referenceable_image,
    stripped_source,
)

LOGGER = logging.getLogger(__name__)

PARAMETRIC_MAP_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.30"

#: Content Label (0070,0080) is a Code String: upper case, digits, space and underscore, ≤ 16 characters.
_CS_PATTERN = re.compile(r"^[A-Z0-9 _]{1,16}$")


@dataclass(frozen=True)
class ValueMapping:
    """What the stored values of a map are (one Real World Value Mapping item, C.7.6.16.2.11.1).

    Attributes
    ----------
    quantity
        Quantity Definition concept, e.g. :data:`candor.dicom.codes.EPISTEMIC_UNCERTAINTY`.
    unit
        UCUM unit, e.g. :data:`candor.dicom.codes.NATS`.
    lut_label
        LUT Label (SH, ≤ 16 characters), e.g. ``"EPIUNC"``.
    explanation
        LUT Explanation (LO, ≤ 64 characters), e.g. ``"Epistemic uncertainty (mutual information)"``.
    value_range
        (first, last) real-world values the mapping covers; every stored value must lie in it.
    """

    quantity: Code
    unit: Code
    lut_label: str
    explanation: str
    value_range: tuple[float, float]

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Code) or not isinstance(self.unit, Code):
            raise TypeError("ValueMapping.quantity and .unit must be pydicom Codes")
        if not self.lut_label or len(self.lut_label) > 16:
            raise ValueError(f"LUT Label must have 1–16 characters, got {self.lut_label!r}")
        if not self.explanation or len(self.explanation) > 64:
            raise ValueError(f"LUT Explanation must have 1–64 characters, got {self.explanation!r}")
        low, high = (float(v) for v in self.value_range)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"value_range must be finite with first < last, got {self.value_range}")


def build_parametric_map(
    source: Dataset,
    values: np.ndarray,
    *,
    mapping: ValueMapping,
    window: tuple[float, float],
    content_label: str,
    content_description: str,
    algorithm_name: str,
    algorithm_version: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int = 1,
    equipment: Equipment = CANDOR_EQUIPMENT,
) -> hd.pm.ParametricMap:
    """Build a float32 Parametric Map of ``values`` over ``source``, one frame or tiled.

    Parameters
    ----------
    source
        The image the map was computed from; must have a Frame of Reference (e.g.
        a VL Whole Slide Microscopy image, one tile or tiled).
    values
        float32 map on the source's pixel grid, of shape
        :func:`candor.dicom.source.image_shape` (the Total Pixel Matrix of a tiled
        source), finite, within ``mapping.value_range``.
    mapping
        Quantity, unit, label and range of the stored values.
    window
        (center, width) of the recommended display window, width > 0.
    content_label, content_description
        Content Label (CS, e.g. ``"EPISTEMIC"``) and Content Description (LO).
    algorithm_name, algorithm_version
        The model, recorded as contributing processing equipment.
    series_instance_uid, sop_instance_uid, series_number, instance_number
        Identity of the new instance; see :func:`candor.dicom.uids.derived_uid`.
    series_description
        Series Description; the research-use suffix is added when missing.
    equipment
        General / Enhanced General Equipment module values.

    Raises
    ------
    TypeError
        If ``values`` is not a float32 numpy array.
    ValueError
        If the source has no Frame of Reference or several frames that are not the
        tiles of one Total Pixel Matrix, ``values`` does not match it, holds non-finite values or values outside the mapping's range, or a
        label or window is malformed.
    """
    require_referenceable_image(source)
    if "FrameOfReferenceUID" not in source:
        raise ValueError(
            f"source {source.SOPInstanceUID} has no Frame of Reference; a Parametric Map (PS3.3 A.75) "
            "requires one — write an RGB overlay (candor.dicom.sc) instead"
        )
    _check_values(source, values, mapping)
    if not _CS_PATTERN.match(content_label):
        raise ValueError(f"content_label must be 1–16 characters of A–Z, 0–9, space or _, got {content_label!r}")
    if not content_description or len(content_description) > 64:
        raise ValueError(f"content_description must have 1–64 characters (LO), got {content_description!r}")
    center, width = (float(v) for v in window)
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise ValueError(f"window needs a finite center and a width > 0, got {window}")
    description = research_series_description(series_description)

    rwvm = hd.pm.RealWorldValueMapping(
        lut_label=mapping.lut_label,
        lut_explanation=mapping.explanation,
        unit=mapping.unit,
        value_range=(float(mapping.value_range[0]), float(mapping.value_range[1])),
        slope=1.0,
        intercept=0.0,
        quantity_definition=mapping.quantity,
    )
    voi = hd.VOILUTTransformation(window_center=center, window_width=width, voi_lut_function="LINEAR_EXACT",
                                  window_explanation=mapping.explanation)
    algorithm = hd.ContributingEquipment(
        manufacturer=equipment.manufacturer,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        contribution_description=f"Model {algorithm_name} {algorithm_version} computed the map",
    )
    pm = hd.pm.ParametricMap(
        source_images=[stripped_source(source)],
        pixel_array=values,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=equipment.manufacturer,
        manufacturer_model_name=equipment.manufacturer_model_name,
        software_versions=equipment.software_versions,
        device_serial_number=equipment.device_serial_number,
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[rwvm],
        voi_lut_transformations=[voi],
        content_label=content_label,
        content_description=content_description,
        contributing_equipment=[algorithm],
        tile_pixel_array=is_multi_tile(source),
    )
    pm.SeriesDescription = description
    copy_patient_study(source, pm)
    if CANDOR_SCHEME in (mapping.quantity.scheme_designator, mapping.unit.scheme_designator):
        pm.CodingSchemeIdentificationSequence = coding_scheme_identification()
    LOGGER.debug("built Parametric Map %s (%s) over %s", sop_instance_uid, mapping.lut_label, source.SOPInstanceUID)
    return pm


def _check_values(source: Dataset, values: np.ndarray, mapping: ValueMapping) -> None:
    if not isinstance(values, np.ndarray) or values.dtype != np.float32:
        raise TypeError(f"values must be a float32 numpy array, got {getattr(values, 'dtype', type(values))}")
    expected = image_shape(source)
    if values.shape != expected:
        raise ValueError(f"values shape {values.shape} does not match the source image (rows, columns) {expected}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contain non-finite entries")
    low, high = mapping.value_range
    if values.min() < low or values.max() > high:
        raise ValueError(
            f"values span [{values.min():.6g}, {values.max():.6g}], outside the mapping's range [{low}, {high}]"
        )


def stored_to_real_world(pm: Dataset) -> np.ndarray:
    """Real-world values of a float Parametric Map, through its first Real World Value Mapping.

    A one-frame map gives its frame; a tiled map (several frames over a Total Pixel
    Matrix) gives the whole Total Pixel Matrix, assembled by highdicom.

    Raises
    ------
    ValueError
        If the map has no Real World Value Mapping with a slope and intercept.
    """
    shared = pm.SharedFunctionalGroupsSequence[0]
    groups = shared if "RealWorldValueMappingSequence" in shared else pm.PerFrameFunctionalGroupsSequence[0]
    item = groups.RealWorldValueMappingSequence[0]
    if "RealWorldValueSlope" not in item or "RealWorldValueIntercept" not in item:
        raise ValueError("the Real World Value Mapping has no slope/intercept (a LUT mapping is not supported)")
    if frame_count(pm) > 1:
        tiled = pm if isinstance(pm, hd.pm.ParametricMap) else hd.pm.ParametricMap.from_dataset(pm)
        stored = tiled.get_total_pixel_matrix(dtype=np.float64, apply_real_world_transform=False)
    else:
        stored = np.asarray(pm.pixel_array, dtype=np.float64)
    return stored * float(item.RealWorldValueSlope) + float(item.RealWorldValueIntercept)
