"""Binary Segmentation (SEG) of a single-frame 2D source image.

Builds a *Segmentation* IOD (PS3.3 A.51, SOP Class 1.2.840.10008.5.1.4.1.1.66.4)
of type BINARY with one segment (Segment Description, PS3.3 C.8.20.2) whose
algorithm family is "Artificial Intelligence" (DCM 123110, CID 7162).

Sources without a Frame of Reference (Ophthalmic Photography, CR, DX, …) need
four fixes on top of highdicom 0.28 to give an object that dciodvfy accepts,
``highdicom.seg.segread`` re-reads and OHIF overlays:

1. an OP source is a one-frame instance of a multi-frame IOD
   (:func:`candor.dicom.compat.single_frame_sources_ok`);
2. Patient Orientation (0020,0020) is Type 2C in the General Image module
   (C.7.6.1) when Image Orientation (Patient) is absent, so it is copied;
3. without a Frame of Reference highdicom writes the source's Pixel Spacing
   in a Pixel Measures Sequence (C.7.6.16.2.1) without Slice Thickness, which
   its own reader rejects; such SEGs therefore leave Pixel Spacing out
   (inventing a thickness would be false);
4. OHIF reads the frame orientation from the Plane Orientation Sequence
   (C.7.6.16.2.4), so the image-plane orientation ``1\\0\\0\\0\\1\\0`` is put in
   the Shared Functional Groups Sequence.

General Series Laterality is *not* copied: dciodvfy rejects it in a SEG
("present when condition unsatisfied"); the segment's Anatomic Region and the
referenced source image identify the eye.
"""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from candor.dicom.compat import single_frame_sources_ok
from candor.dicom.equipment import CANDOR_EQUIPMENT, Equipment, research_series_description
from candor.dicom.source import copy_patient_study, require_single_frame, stripped_source

LOGGER = logging.getLogger(__name__)

#: Content Description (0070,0081) of every Candor SEG.
_CONTENT_DESCRIPTION = "AI segmentation, research use only, not for diagnosis"


def build_binary_seg(
    source: Dataset,
    mask: np.ndarray,
    *,
    segment_label: str,
    property_category: Code,
    property_type: Code,
    anatomic_region: Code | None,
    algorithm_name: str,
    algorithm_version: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int = 1,
    equipment: Equipment = CANDOR_EQUIPMENT,
) -> hd.seg.Segmentation:
    """Build a BINARY Segmentation of ``mask`` over the single-frame image ``source``.

    Parameters
    ----------
    source
        The segmented image (OP, CR, DX, SC, …; RGB or greyscale), one frame.
    mask
        (Rows, Columns) boolean array aligned with the source pixels. An empty
        mask is kept as one empty frame, so "nothing found" is still reported.
    segment_label
        Segment Label (0062,0005), e.g. ``"Retinal vessels"``.
    property_category, property_type
        Segmented Property Category / Type codes (CID 7150 / 7151).
    anatomic_region
        Anatomic Region Sequence code of the segment (CID 4031/4209), or None.
    algorithm_name, algorithm_version
        Segment Algorithm Name / Segmentation Algorithm Identification (C.8.20.2).
    series_instance_uid, sop_instance_uid, series_number, instance_number
        Identity of the new instance; see :func:`candor.dicom.uids.derived_uid`.
    series_description
        Series Description; the research-use suffix is added when missing.
    equipment
        General Equipment module values.

    Returns
    -------
    highdicom.seg.Segmentation

    Raises
    ------
    TypeError
        If ``mask`` is not a boolean numpy array.
    ValueError
        If ``mask`` does not match the source size or the source is multi-frame.
    """
    require_single_frame(source)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean numpy array, got {getattr(mask, 'dtype', type(mask))}")
    expected = (int(source.Rows), int(source.Columns))
    if mask.shape != expected:
        raise ValueError(f"mask shape {mask.shape} does not match the source image (Rows, Columns) {expected}")
    description = research_series_description(series_description)

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=algorithm_version,
        family=codes.cid7162.ArtificialIntelligence,
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=property_category,
        segmented_property_type=property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[anatomic_region] if anatomic_region is not None else None,
    )
    has_frame_of_reference = "FrameOfReferenceUID" in source
    reference = stripped_source(source, drop=() if has_frame_of_reference else ("PixelSpacing",))
    with single_frame_sources_ok():
        seg = hd.seg.Segmentation(
            source_images=[reference],
            pixel_array=mask,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=series_instance_uid,
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=equipment.manufacturer,
            manufacturer_model_name=equipment.manufacturer_model_name,
            software_versions=equipment.software_versions,
            device_serial_number=equipment.device_serial_number,
            content_description=_CONTENT_DESCRIPTION,
            omit_empty_frames=False,
        )
    seg.SeriesDescription = description
    copy_patient_study(source, seg)
    _add_2d_fixes(seg, source)
    LOGGER.debug("built SEG %s over %s (%d pixels set)", sop_instance_uid, source.SOPInstanceUID, int(mask.sum()))
    return seg


def _add_2d_fixes(seg: hd.seg.Segmentation, source: Dataset) -> None:
    """Apply fixes 2 and 4 of the module docstring to a SEG of a source without Frame of Reference."""
    if "FrameOfReferenceUID" in seg:
        return
    seg.PatientOrientation = source.get("PatientOrientation", None)
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" not in shared:
        shared.PlaneOrientationSequence = [orientation]
