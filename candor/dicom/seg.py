"""Binary Segmentation (SEG) of a single-frame 2D source image or of a tiled slide image.

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
   its own reader rejects, and writes no Pixel Measures Sequence at all when
   the source has no Pixel Spacing, which OHIF 3.13 cannot load ("Cannot
   destructure property 'SpacingBetweenSlices' of 'PixelMeasures'"; an empty
   item does not help: Orthanc's DICOMweb JSON drops it). So the source is
   handed to highdicom without Pixel Spacing and the SEG gets its own Pixel
   Measures item (:func:`pixel_measures`): the source's Pixel Spacing, else
   its Imager Pixel Spacing (CR/DX: spacing at the detector, which is also
   what viewers assume for such a source), else a nominal 1\\1; and a nominal
   Slice Thickness of 1 mm. Both values are placeholders that readers demand
   of a 2D SEG, not measurements (``segread`` requires both attributes);
4. OHIF reads the frame orientation from the Plane Orientation Sequence
   (C.7.6.16.2.4), so the image-plane orientation ``1\\0\\0\\0\\1\\0`` is put in
   the Shared Functional Groups Sequence.

A tiled source (VL Whole Slide Microscopy, PS3.3 A.32.8, whose Total Pixel
Matrix spans several frames) takes a mask of the Total Pixel Matrix size
(:func:`candor.dicom.source.image_shape`), which highdicom cuts into tiles of the
source's tile size (``tile_pixel_array``), placing each by its Plane Position
(Slide) (C.8.12.6.1) derived from the source's Total Pixel Matrix Origin and
Image Orientation (Slide); the SEG is ``TILED_SPARSE`` (C.7.6.17.3) with one
per-frame item per tile. (highdicom's ``TILED_FULL`` SEG puts the Segment
Identification Sequence in the shared functional groups, which dciodvfy warns
about.) Empty tiles are kept, like empty single frames.

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
from candor.dicom.source import (
    copy_patient_study,
    image_shape,
    is_multi_tile,
    require_referenceable_image,
    stripped_source,
)

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
    """Build a BINARY Segmentation of ``mask`` over ``source``, a single-frame or a tiled image.

    Parameters
    ----------
    source
        The segmented image (OP, CR, DX, SC, SM, …; RGB or greyscale): one frame,
        or the tiles of one Total Pixel Matrix (one focal plane, one optical path).
    mask
        Boolean array aligned with the source pixels, of shape
        :func:`candor.dicom.source.image_shape` (Rows × Columns, or Total Pixel
        Matrix Rows × Columns for a tiled source). An empty mask is kept as empty
        frames, so "nothing found" is still reported.
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
        If ``mask`` does not match the source size, or the source is multi-frame
        and not a tiled image of one focal plane and optical path.
    """
    require_referenceable_image(source)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean numpy array, got {getattr(mask, 'dtype', type(mask))}")
    expected = image_shape(source)
    if mask.shape != expected:
        raise ValueError(f"mask shape {mask.shape} does not match the source image (rows, columns) {expected}")
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
            tile_pixel_array=is_multi_tile(source),
        )
    seg.SeriesDescription = description
    copy_patient_study(source, seg)
    _add_2d_fixes(seg, source)
    LOGGER.debug("built SEG %s over %s (%d pixels set)", sop_instance_uid, source.SOPInstanceUID, int(mask.sum()))
    return seg


#: Nominal Slice Thickness (mm) of a SEG over a 2D source: a placeholder readers demand (fix 3).
NOMINAL_SLICE_THICKNESS_MM = 1.0


def pixel_measures(source: Dataset) -> Dataset:
    """The Pixel Measures item (C.7.6.16.2.1) of a SEG over ``source``, a 2D image without Frame of Reference.

    Pixel Spacing is the source's Pixel Spacing, else its Imager Pixel
    Spacing, else a nominal ``1\\1``; Slice Thickness is
    :data:`NOMINAL_SLICE_THICKNESS_MM` (fix 3 of the module docstring).
    """
    item = Dataset()
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = source.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            item.PixelSpacing = [float(value[0]), float(value[1])]
            break
    else:
        LOGGER.debug("source %s has no pixel spacing; SEG Pixel Measures use a nominal 1\\1", source.SOPInstanceUID)
        item.PixelSpacing = [1.0, 1.0]
    item.SliceThickness = NOMINAL_SLICE_THICKNESS_MM
    return item


def _add_2d_fixes(seg: hd.seg.Segmentation, source: Dataset) -> None:
    """Apply fixes 2 to 4 of the module docstring to a SEG of a source without Frame of Reference."""
    if "FrameOfReferenceUID" in seg:
        return
    seg.PatientOrientation = source.get("PatientOrientation", None)
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" not in shared:
        shared.PlaneOrientationSequence = [orientation]
    if "PixelMeasuresSequence" not in shared:
        shared.PixelMeasuresSequence = [pixel_measures(source)]
