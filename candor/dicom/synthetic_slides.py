"""Synthetic VL Whole Slide Microscopy (SM) sources: one tile (TILED_SPARSE) or several (TILED_FULL).

Registered as source kinds ``sm`` and ``sm_tiled`` by :mod:`candor.dicom.synthetic_sources`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileDataset
from pydicom.sr.codedict import codes

from candor.dicom.synthetic import StudyIdentity
from candor.dicom.synthetic_parts import VL_WHOLE_SLIDE_SOP_CLASS_UID, _code_item, _part10, _pixels, _specimen
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

#: Tile size (Rows = Columns) of the tiled SM source, and the size of its Total Pixel Matrix: 2 × 3 tiles,
#: the last row and column partial.
TILE_SIZE = 128
TILED_SHAPE = (200, 300)

#: (X, Y) offset in the slide coordinate system (mm) of the top-left pixel of every synthetic SM.
_SM_ORIGIN_MM = (20.0, 40.0)
_SRGB_ICC = Path(hd.__file__).parent / "_icc_profiles" / "sRGB_v4_ICC_preference.icc"


def build_sm_image(rgb: np.ndarray, *, identity: StudyIdentity, kind: str = "sm",
                   pixel_spacing_mm: float = 0.00025) -> FileDataset:
    """VL Whole Slide Microscopy Image (A.32.8): a one-tile RGB level with a Frame of Reference.

    The tile is described explicitly (``TILED_SPARSE`` with a per-frame Plane
    Position (Slide) and Frame Content): with ``TILED_FULL`` and no per-frame
    groups dciodvfy warns that the Dimension Index Pointers point nowhere.
    :func:`build_tiled_sm_image` builds the ``TILED_FULL`` form of several tiles.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError("rgb must be a (rows, columns, 3) uint8 array")
    ds = _sm_header(rgb, identity=identity, kind=kind, pixel_spacing_mm=pixel_spacing_mm)
    ds.DimensionOrganizationType = "TILED_SPARSE"
    _pixels(ds, rgb, "RGB")
    ds.NumberOfFrames = 1
    position = Dataset()
    position.XOffsetInSlideCoordinateSystem, position.YOffsetInSlideCoordinateSystem = _SM_ORIGIN_MM
    position.ZOffsetInSlideCoordinateSystem = 0.0
    position.ColumnPositionInTotalImagePixelMatrix, position.RowPositionInTotalImagePixelMatrix = 1, 1
    content = Dataset()
    content.DimensionIndexValues = [1, 1]
    per_frame = Dataset()
    per_frame.PlanePositionSlideSequence = [position]
    per_frame.FrameContentSequence = [content]
    ds.PerFrameFunctionalGroupsSequence = [per_frame]
    organization_uid = ds.DimensionOrganizationSequence[0].DimensionOrganizationUID
    ds.DimensionIndexSequence = [
        _dimension_index(0x0048021E, organization_uid, "Column position"),
        _dimension_index(0x0048021F, organization_uid, "Row position"),
    ]
    return ds


def build_tiled_sm_image(pixels: np.ndarray, *, identity: StudyIdentity, kind: str = "sm_tiled",
                         tile_size: int = TILE_SIZE, pixel_spacing_mm: float = 0.00025) -> FileDataset:
    """VL Whole Slide Microscopy Image (A.32.8) whose Total Pixel Matrix is stored as ``TILED_FULL`` tiles.

    ``pixels`` is the whole level, (rows, columns, 3) uint8 RGB or (rows, columns)
    uint8 MONOCHROME2, cut into square tiles of ``tile_size`` (Rows = Columns =
    ``tile_size``). PS3.3 C.7.6.17.3 (Dimension Organization Type ``TILED_FULL``):
    every tile is present, in row-major order over the Total Pixel Matrix
    (C.8.12.4.1), one focal plane and one optical path; the positions are implied by
    the Total Pixel Matrix Origin Sequence and the Image Orientation (Slide), so there
    is no Per-frame Functional Groups Sequence and no Dimension Index Sequence (Type
    1C, absent for ``TILED_FULL``, as highdicom writes it). The tiles of the last
    row and column extend past the matrix; their outside pixels are padding (0,
    black: the background of a fluorescence image).

    Raises
    ------
    TypeError
        If ``pixels`` is not a uint8 (rows, columns[, 3]) array.
    ValueError
        If ``tile_size`` is not positive.
    """
    grey = isinstance(pixels, np.ndarray) and pixels.ndim == 2
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8
            or not (grey or (pixels.ndim == 3 and pixels.shape[2] == 3))):
        raise TypeError("pixels must be a (rows, columns, 3) or (rows, columns) uint8 array")
    if tile_size <= 0:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    ds = _sm_header(pixels, identity=identity, kind=kind, pixel_spacing_mm=pixel_spacing_mm)
    ds.DimensionOrganizationType = "TILED_FULL"
    tiles = tile_total_pixel_matrix(pixels, tile_size)
    _pixels(ds, tiles[0], "MONOCHROME2" if grey else "RGB")
    if grey:  # Type 1C for MONOCHROME2 in the Whole Slide Microscopy Image module (C.8.12.4)
        ds.PresentationLUTShape, ds.RescaleSlope, ds.RescaleIntercept = "IDENTITY", 1, 0
    ds.NumberOfFrames = tiles.shape[0]
    ds.PixelData = np.ascontiguousarray(tiles).tobytes()
    LOGGER.debug("tiled SM %s: %d×%d matrix in %d tiles of %d px", ds.SOPInstanceUID, pixels.shape[0],
                 pixels.shape[1], tiles.shape[0], tile_size)
    return ds


def tile_total_pixel_matrix(pixels: np.ndarray, tile_size: int) -> np.ndarray:
    """Cut ``pixels`` into (frames, tile_size, tile_size[, 3]) tiles in ``TILED_FULL`` order (row-major).

    The last row and column of tiles are padded with zeros (PS3.3 C.7.6.17.3: the
    frames cover the Total Pixel Matrix; pixels beyond it carry no image).
    """
    rows, columns = pixels.shape[:2]
    tile_rows, tile_columns = -(-rows // tile_size), -(-columns // tile_size)
    padded = np.zeros((tile_rows * tile_size, tile_columns * tile_size) + pixels.shape[2:], pixels.dtype)
    padded[:rows, :columns] = pixels
    shape = (tile_rows, tile_size, tile_columns, tile_size) + pixels.shape[2:]
    order = (0, 2, 1, 3) + tuple(range(4, padded.ndim + 2))
    return padded.reshape(shape).transpose(order).reshape((-1, tile_size, tile_size) + pixels.shape[2:])


def _sm_header(pixels: np.ndarray, *, identity: StudyIdentity, kind: str, pixel_spacing_mm: float) -> FileDataset:
    """The modules every synthetic SM shares, for a Total Pixel Matrix of ``pixels.shape[:2]``.

    Frame of Reference (C.7.4.1), Enhanced General Equipment (C.7.5.2), Whole Slide
    Microscopy Image (C.8.12.4), the shared functional groups (C.7.6.16: Pixel
    Measures, Whole Slide Microscopy Image Frame Type, Optical Path Identification),
    the Dimension Organization Sequence (C.7.6.17), Optical Path (C.8.12.5: one
    brightfield path, with the sRGB profile for a colour image) and Specimen
    (C.7.6.22). The caller adds pixels, Dimension Organization Type and frame layout.
    """
    rows, columns = pixels.shape[:2]
    ds = _part10(VL_WHOLE_SLIDE_SOP_CLASS_UID, kind, identity, modality="SM",
                 series_description="Whole slide image (synthetic)")
    ds.FrameOfReferenceUID = derived_uid(ds.StudyInstanceUID, kind, "frame-of-reference")
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.ManufacturerModelName, ds.DeviceSerialNumber, ds.SoftwareVersions = "Synthetic scanner", "SYN-1", "0"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.AcquisitionDateTime = identity.study_date + identity.study_time
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight = columns * pixel_spacing_mm, rows * pixel_spacing_mm
    ds.ImagedVolumeDepth = 0.001
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = columns, rows
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem, origin.YOffsetInSlideCoordinateSystem = _SM_ORIGIN_MM
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.VolumetricProperties, ds.SpecimenLabelInImage, ds.BurnedInAnnotation = "VOLUME", "NO", "NO"
    ds.FocusMethod, ds.ExtendedDepthOfField, ds.LossyImageCompression = "AUTO", "NO", "00"
    ds.AcquisitionContextSequence = []
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    measures.SliceThickness = ds.ImagedVolumeDepth
    shared.PixelMeasuresSequence = [measures]
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
    path_id = Dataset()
    path_id.OpticalPathIdentifier = "1"
    shared.OpticalPathIdentificationSequence = [path_id]
    ds.SharedFunctionalGroupsSequence = [shared]
    organization = Dataset()
    organization.DimensionOrganizationUID = derived_uid(ds.SOPInstanceUID, "dimension-organization")
    ds.DimensionOrganizationSequence = [organization]
    ds.NumberOfOpticalPaths = 1
    optical = Dataset()
    optical.OpticalPathIdentifier = "1"
    optical.IlluminationTypeCodeSequence = [_code_item(codes.DCM.BrightfieldIllumination)]
    optical.IlluminationColorCodeSequence = [_code_item(codes.SCT.FullSpectrum)]
    if pixels.ndim == 3:
        optical.ICCProfile = _SRGB_ICC.read_bytes()
        optical.ColorSpace = "SRGB"
    ds.OpticalPathSequence = [optical]
    _specimen(ds, kind)
    return ds


def _dimension_index(pointer: int, organization_uid: str, label: str) -> Dataset:
    item = Dataset()
    item.DimensionIndexPointer = pointer
    item.FunctionalGroupPointer = 0x0048021A  # Plane Position (Slide) Sequence
    item.DimensionOrganizationUID = organization_uid
    item.DimensionDescriptionLabel = label
    return item


