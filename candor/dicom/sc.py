"""RGB Secondary Capture of a rendered overlay (uncertainty or saliency heat-map).

Builds a *Secondary Capture Image* (PS3.3 A.8.1, SOP Class
1.2.840.10008.5.1.4.1.1.7), 8-bit RGB, Explicit VR Little Endian, in the
source's study. A float map over an OP/CR/DX source cannot go into a
Parametric Map (that IOD needs a Frame of Reference), so the map is rendered
(:func:`candor.render.render_overlay`) and stored as pixels a viewer shows
as they are, with its legend and research banner burned in.

Module by module:

* General Series (C.7.3.1): Laterality copied from the source (Type 2C);
  Series Description ends with the research-use suffix.
* General Image (C.7.6.1): Patient Orientation (Type 1 for the ``PATIENT``
  coordinate system) from the source, Burned In Annotation ``YES``, Image Type
  ``DERIVED\\SECONDARY``, Derivation Description and Source Image Sequence with
  purpose "Source image for image processing operation" (DCM 121322, CID 7202).
* SC Equipment (C.8.6.1): Conversion Type ``WSD`` (workstation), not
  highdicom's ``DI`` (digitised film).

The overlay of a tiled slide image (VL Whole Slide Microscopy, A.32.8) is one
single-frame image of its whole Total Pixel Matrix (C.8.12.4.1), not tiles.
"""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from candor.dicom.equipment import CANDOR_EQUIPMENT, Equipment, research_series_description
from candor.dicom.source import (
    copy_patient_study,
    image_shape,
    require_referenceable_image,
    source_laterality,
    stripped_source,
)

LOGGER = logging.getLogger(__name__)

#: Patient Orientation assumed when the source has none: the conventional frontal
#: display (image rows run toward the patient's left, columns toward the feet),
#: which is how fundus photographs and PA chest radiographs are shown.
FRONTAL_DISPLAY_ORIENTATION: tuple[str, str] = ("L", "F")

_BIPED_LETTERS = set("APRLHF")

_DERIVATION = "Heat-map rendered by Candor over the source image; research use only, not for diagnosis"


def source_patient_orientation(source: Dataset) -> tuple[str, str] | None:
    """The source's Patient Orientation (0020,0020) as a pair, or None when empty or absent."""
    value = source.get("PatientOrientation")
    if value is None or value == "":
        return None
    values = [str(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [str(value)]
    if len(values) != 2 or not all(values) or not set("".join(values)) <= _BIPED_LETTERS:
        raise ValueError(f"source Patient Orientation must be two values of A/P/R/L/H/F letters, got {value!r}")
    return values[0], values[1]


def build_overlay_sc(
    source: Dataset,
    rgb: np.ndarray,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int = 1,
    patient_orientation: tuple[str, str] | None = None,
    equipment: Equipment = CANDOR_EQUIPMENT,
) -> hd.sc.SCImage:
    """Build an RGB Secondary Capture of ``rgb`` in the study of ``source``.

    Parameters
    ----------
    source
        The image the overlay was rendered from: single-frame, or tiled (its
        Total Pixel Matrix is the image).
    rgb
        (rows, columns, 3) uint8 rendered overlay. When its size equals the
        source's (:func:`candor.dicom.source.image_shape`), the source's top-level
        Pixel Spacing, if any, is copied.
    series_instance_uid, sop_instance_uid, series_number, instance_number
        Identity of the new instance.
    series_description
        Series Description; the research-use suffix is added when missing.
    patient_orientation
        Row and column directions; default: the source's, else
        :data:`FRONTAL_DISPLAY_ORIENTATION` (logged).
    equipment
        General Equipment module values.

    Raises
    ------
    TypeError
        If ``rgb`` is not a uint8 array.
    ValueError
        If ``rgb`` is not (rows, columns, 3), or the source is multi-frame and not
        a tiled image of one focal plane and optical path.
    """
    require_referenceable_image(source)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be a uint8 numpy array, got {getattr(rgb, 'dtype', type(rgb))}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (rows, columns, 3), got {rgb.shape}")
    description = research_series_description(series_description)
    if patient_orientation is None:
        patient_orientation = source_patient_orientation(source)
        if patient_orientation is None:
            patient_orientation = FRONTAL_DISPLAY_ORIENTATION
            LOGGER.info(
                "source %s has no Patient Orientation; SC %s uses the frontal display orientation %s",
                source.SOPInstanceUID, sop_instance_uid, "\\".join(patient_orientation),
            )
    same_grid = rgb.shape[:2] == image_shape(source)
    spacing = source.get("PixelSpacing") if same_grid else None

    reference = stripped_source(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=np.ascontiguousarray(rgb),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=equipment.manufacturer,
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        laterality=source_laterality(source),
        # highdicom takes one letter per direction; compound values (e.g. "FR") are set below
        patient_orientation=(patient_orientation[0][:1], patient_orientation[1][:1]),
        transfer_syntax_uid=ExplicitVRLittleEndian,
        manufacturer_model_name=equipment.manufacturer_model_name,
        software_versions=equipment.software_versions,
        device_serial_number=equipment.device_serial_number,
    )
    sc.PatientOrientation = list(patient_orientation)
    sc.SeriesDescription = description
    if "Laterality" not in sc:
        sc.Laterality = None  # Type 2C, required (empty) when the source has no Image Laterality R/L
    copy_patient_study(source, sc)
    sc.ConversionType = "WSD"
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = _DERIVATION
    sc.SourceImageSequence = [_source_image_item(source)]
    LOGGER.debug("built SC %s over %s", sop_instance_uid, source.SOPInstanceUID)
    return sc


def _source_image_item(source: Dataset) -> Dataset:
    """One item of the Source Image Sequence (0008,2112), PS3.3 C.7.6.1.1.4."""
    purpose = Dataset()
    code = codes.DCM.SourceImageForImageProcessingOperation
    purpose.CodeValue = code.value
    purpose.CodingSchemeDesignator = code.scheme_designator
    purpose.CodeMeaning = code.meaning
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item
