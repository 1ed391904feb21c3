"""Synthetic source images of every kind Candor's writers must handle, for conformance tests and demos.

:mod:`candor.dicom.synthetic` builds the Ophthalmic Photography and DX images;
this module adds the other source kinds the writers must support and the
compressed variants, each a small instance that dciodvfy accepts (single-frame, except the tiled SM):

==================  ==================================================================  ===================
Kind                IOD (PS3.3)                                                         Transfer syntax
==================  ==================================================================  ===================
op_rgb              Ophthalmic Photography 8 Bit (A.39.1), RGB                           Explicit VR LE
op_jpeg_baseline    Ophthalmic Photography 8 Bit, YBR_FULL_422                           JPEG Baseline (lossy)
cr_mono1            Computed Radiography (A.2), 16-bit MONOCHROME1                       Explicit VR LE
cr_mono1_rle        Computed Radiography, MONOCHROME1                                    RLE Lossless
dx_mono2            Digital X-Ray For Presentation (A.26.1), MONOCHROME2                 Explicit VR LE
dx_mono2_j2k        Digital X-Ray For Presentation, MONOCHROME2                          JPEG 2000 Lossless
vl_microscopic      VL Microscopic Image (A.32.2), RGB, with a Specimen module           Explicit VR LE
sm                  VL Whole Slide Microscopy (A.32.8), one tile, RGB, FoR               Explicit VR LE
sm_tiled            VL Whole Slide Microscopy, TILED_FULL 2 × 3 tiles of 128 px, RGB     Explicit VR LE
==================  ==================================================================  ===================

``sm_tiled`` is built by :func:`build_source` but is not in :data:`SOURCE_KINDS`
(the kinds ``tests/test_conformance.py`` iterates): its readback gate compares
outputs with the source's Rows × Columns, which for a tiled image is one tile,
not the Total Pixel Matrix the outputs cover. :data:`TILED_SOURCE_KINDS` lists it.

Each kind gets its own patient and study (:func:`identity_for`), so a test can
check a source and its derived objects together with dcentvfy. Every UID is
derived from the kind (:func:`candor.dicom.uids.derived_uid`): the same call
builds the same instance.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom import Dataset, FileMetaDataset
from pydicom.dataset import FileDataset
from pydicom.encaps import encapsulate
from pydicom.sr.codedict import codes
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from candor.dicom.synthetic import StudyIdentity, build_dx_image, build_op_image, synthetic_fundus
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

CR_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.1"
VL_MICROSCOPIC_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.2"
VL_WHOLE_SLIDE_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.6"

#: Size of every synthetic source (rows, columns): small, but above the overlay renderer's minimum.
DEFAULT_SHAPE = (128, 160)

#: Tile size (Rows = Columns) of the tiled SM source, and the size of its Total Pixel Matrix: 2 × 3 tiles,
#: the last row and column partial.
TILE_SIZE = 128
TILED_SHAPE = (200, 300)

#: (X, Y) offset in the slide coordinate system (mm) of the top-left pixel of every synthetic SM.
_SM_ORIGIN_MM = (20.0, 40.0)

_SRGB_ICC = Path(hd.__file__).parent / "_icc_profiles" / "sRGB_v4_ICC_preference.icc"


def identity_for(kind: str) -> StudyIdentity:
    """A distinct, obviously synthetic patient and study for source ``kind``."""
    tag = kind.upper().replace("_", "-")
    return StudyIdentity(patient_name=f"Candor^{kind.title().replace('_', '')}", patient_id=f"CANDOR-{tag}",
                         accession_number=f"CANDOR{zlib.crc32(tag.encode()):010d}", study_id="1",
                         study_description=f"Synthetic {kind} study (Candor conformance)")


# -- pixel content -----------------------------------------------------------------------------------
def synthetic_radiograph(rows: int, columns: int, *, seed: int = 0, maximum: int = 4095) -> np.ndarray:
    """A chest-like image (uint16, 0..``maximum``): darker lung fields in a brighter body (higher = more attenuation).

    ``maximum`` 4095 suits 12 stored bits (CR); :func:`build_dx_image` stores 16 bits and windows over
    the full range, so its sources use 65535.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float32)
    body = 2600.0 - 900.0 * ((xx - columns / 2) / (columns / 2)) ** 2
    lungs = np.zeros((rows, columns), np.float32)
    for centre in (0.3, 0.7):
        lungs += np.exp(-(((xx - centre * columns) / (0.16 * columns)) ** 2 + ((yy - 0.5 * rows) / (0.3 * rows)) ** 2))
    image = body - 1500.0 * lungs + rng.normal(0, 30, (rows, columns))
    return np.clip(image * (maximum / 4095.0), 0, maximum).astype(np.uint16)


def synthetic_cells(rows: int, columns: int, *, seed: int = 0, count: int = 12) -> np.ndarray:
    """A fluorescence-like RGB image (uint8): bright blue (DAPI-like) round nuclei on a dark background.

    Fluorescence is the domain of Candor's nucleus model, which reads a colour source by its
    brightest channel (``preprocessing.colour_to_grey = "max"``).
    """
    rng = np.random.default_rng(seed)
    image = np.empty((rows, columns, 3), np.float32)
    image[:] = (4.0, 6.0, 14.0)
    yy, xx = np.mgrid[0:rows, 0:columns]
    for _ in range(count):
        cy, cx, radius = rng.uniform(8, rows - 8), rng.uniform(8, columns - 8), rng.uniform(4, 8)
        brightness = rng.uniform(0.6, 1.0)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = (30.0 * brightness, 70.0 * brightness, 230.0 * brightness)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


# -- common modules ------------------------------------------------------------------------------------
def _code_item(code: object) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning
    return item


def _part10(sop_class_uid: str, kind: str, identity: StudyIdentity, *, modality: str,
            series_description: str) -> FileDataset:
    """Patient, General Study, General Series, General Equipment, SOP Common and General Image basics."""
    study_uid = identity.resolved_study_uid()
    series_uid = derived_uid(study_uid, kind, "series")
    sop_uid = derived_uid(series_uid, kind, "instance")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class_uid, sop_uid
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class_uid, sop_uid
    ds.PatientName, ds.PatientID = identity.patient_name, identity.patient_id
    ds.PatientBirthDate, ds.PatientSex = identity.patient_birth_date, identity.patient_sex
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study_uid, identity.study_date, identity.study_time
    ds.ReferringPhysicianName, ds.StudyID = identity.referring_physician_name, identity.study_id
    ds.AccessionNumber, ds.StudyDescription = identity.accession_number, identity.study_description
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series_uid, 1
    ds.SeriesDescription = series_description
    ds.Manufacturer = "Candor synthetic"
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = identity.study_date, identity.study_time
    return ds


def _pixels(ds: Dataset, array: np.ndarray, photometric: str, bits_stored: int | None = None) -> None:
    """Image Pixel module (C.7.6.3) for a (rows, columns) grey or (rows, columns, 3) RGB array."""
    bits = 8 if array.dtype == np.uint8 else 16
    ds.SamplesPerPixel = 3 if array.ndim == 3 else 1
    ds.PhotometricInterpretation = photometric
    if array.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = array.shape[:2]
    ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    ds.PixelData = np.ascontiguousarray(array).astype(f"<u{bits // 8}").tobytes()


def _specimen(ds: Dataset, kind: str) -> None:
    """Specimen module (C.7.6.22): one slide holding one tissue specimen."""
    ds.ContainerIdentifier = f"SLIDE-{kind.upper()}"
    ds.IssuerOfTheContainerIdentifierSequence = []
    ds.ContainerTypeCodeSequence = [_code_item(codes.SCT.MicroscopeSlide)]
    ds.SpecimenDescriptionSequence = [hd.SpecimenDescription(
        specimen_id=f"SPECIMEN-{kind.upper()}", specimen_uid=derived_uid(ds.StudyInstanceUID, kind, "specimen"),
        specimen_type=codes.SCT.TissueSpecimen, specimen_short_description="Synthetic tissue section")]


# -- CR, VL microscopic, SM ---------------------------------------------------------------------------------
def build_cr_image(pixels: np.ndarray, *, identity: StudyIdentity, kind: str = "cr_mono1",
                   pixel_spacing: tuple[float, float] = (0.2, 0.2)) -> FileDataset:
    """Computed Radiography Image (A.2), MONOCHROME1 (0 is white), 12 bits stored in 16, with Pixel Spacing."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise TypeError("pixels must be a (rows, columns) uint16 array")
    ds = _part10(CR_SOP_CLASS_UID, kind, identity, modality="CR", series_description="Chest PA (synthetic CR)")
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"  # CR Series (C.8.1.1)
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    _pixels(ds, 4095 - pixels, "MONOCHROME1", bits_stored=12)  # MONOCHROME1: attenuation shown white
    ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    return ds


def build_vl_microscopic_image(rgb: np.ndarray, *, identity: StudyIdentity,
                               kind: str = "vl_microscopic") -> FileDataset:
    """VL Microscopic Image (A.32.2): an RGB photomicrograph of a specimen, no Frame of Reference."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise TypeError("rgb must be a (rows, columns, 3) uint8 array")
    ds = _part10(VL_MICROSCOPIC_SOP_CLASS_UID, kind, identity, modality="GM",
                 series_description="Photomicrograph (synthetic)")
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    ds.AcquisitionContextSequence = []
    _pixels(ds, rgb, "RGB")
    _specimen(ds, kind)
    return ds


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


# -- compression -----------------------------------------------------------------------------------------
def jpeg_baseline(ds: FileDataset, *, quality: int = 90) -> FileDataset:
    """Re-encode an 8-bit RGB instance as JPEG Baseline (YBR_FULL_422, lossy) with Pillow; returns ``ds``."""
    if ds.PhotometricInterpretation != "RGB" or int(ds.BitsAllocated) != 8:
        raise ValueError("JPEG Baseline re-encoding needs an 8-bit RGB source")
    rgb = ds.pixel_array
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=quality, subsampling=1)  # 1 = 4:2:2
    encoded = buffer.getvalue()
    ds.PixelData = encapsulate([encoded])
    ds["PixelData"].VR = "OB"
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = round(rgb.nbytes / len(encoded), 2)
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    return ds


def lossless(ds: FileDataset, transfer_syntax: str) -> FileDataset:
    """Compress ``ds`` in place with RLE Lossless (pydicom) or JPEG 2000 Lossless (pylibjpeg-openjpeg)."""
    if transfer_syntax not in (RLELossless, JPEG2000Lossless):
        raise ValueError(f"unsupported lossless transfer syntax {transfer_syntax}")
    ds.compress(transfer_syntax, encoding_plugin="pylibjpeg" if transfer_syntax == JPEG2000Lossless else "",
                generate_instance_uid=False)  # keep the UID derived from the kind: the same call, the same instance
    return ds


# -- registry -----------------------------------------------------------------------------------------------
def _op(identity: StudyIdentity, shape: tuple[int, int]) -> FileDataset:
    study = identity.resolved_study_uid()
    return build_op_image(synthetic_fundus(*shape), identity=identity, pixel_spacing=(0.01, 0.01),
                          series_instance_uid=derived_uid(study, "op", "series"),
                          sop_instance_uid=derived_uid(study, "op", "instance"))


def _dx(identity: StudyIdentity, shape: tuple[int, int]) -> FileDataset:
    study = identity.resolved_study_uid()
    return build_dx_image(synthetic_radiograph(*shape, maximum=65535), identity=identity,
                          photometric_interpretation="MONOCHROME2",
                          series_instance_uid=derived_uid(study, "dx", "series"),
                          sop_instance_uid=derived_uid(study, "dx", "instance"))


_BUILDERS: dict[str, Callable[[StudyIdentity, tuple[int, int]], FileDataset]] = {
    "op_rgb": _op,
    "op_jpeg_baseline": lambda i, s: jpeg_baseline(_op(i, s)),
    "cr_mono1": lambda i, s: build_cr_image(synthetic_radiograph(*s), identity=i),
    "cr_mono1_rle": lambda i, s: lossless(build_cr_image(synthetic_radiograph(*s), identity=i), RLELossless),
    "dx_mono2": _dx,
    "dx_mono2_j2k": lambda i, s: lossless(_dx(i, s), JPEG2000Lossless),
    "vl_microscopic": lambda i, s: build_vl_microscopic_image(synthetic_cells(*s), identity=i),
    "sm": lambda i, s: build_sm_image(synthetic_cells(*s), identity=i),
    "sm_tiled": lambda i, s: build_tiled_sm_image(synthetic_cells(*s, count=30), identity=i),
}

#: Source kinds whose Total Pixel Matrix spans several frames (tiles), see the module docstring.
TILED_SOURCE_KINDS: tuple[str, ...] = ("sm_tiled",)

#: Every single-frame source kind, in a stable order (what the conformance test iterates).
SOURCE_KINDS: tuple[str, ...] = tuple(kind for kind in _BUILDERS if kind not in TILED_SOURCE_KINDS)

#: Size (rows, columns) of a kind's image when the caller gives none: :data:`DEFAULT_SHAPE`, except the
#: tiled SM, whose Total Pixel Matrix is :data:`TILED_SHAPE`.
_DEFAULT_SHAPES: dict[str, tuple[int, int]] = {"sm_tiled": TILED_SHAPE}


def build_source(kind: str, *, identity: StudyIdentity | None = None,
                 shape: tuple[int, int] | None = None) -> FileDataset:
    """Build the synthetic source instance of ``kind`` (see the module table).

    ``shape`` is the image size (rows, columns), for a tiled kind the Total Pixel
    Matrix; default :data:`DEFAULT_SHAPE` (:data:`TILED_SHAPE` for ``sm_tiled``).

    Raises
    ------
    KeyError
        If ``kind`` is not one of :data:`SOURCE_KINDS` or :data:`TILED_SOURCE_KINDS`.
    """
    if kind not in _BUILDERS:
        raise KeyError(f"unknown source kind {kind!r}; known: {', '.join(_BUILDERS)}")
    dataset = _BUILDERS[kind](identity or identity_for(kind), shape or _DEFAULT_SHAPES.get(kind, DEFAULT_SHAPE))
    LOGGER.debug("built synthetic %s source %s", kind, dataset.SOPInstanceUID)
    return dataset


def write_source(kind: str, folder: str | Path, **kwargs: object) -> Path:
    """Build the source of ``kind`` and save it as ``<folder>/<kind>.dcm``; returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.dcm"
    build_source(kind, **kwargs).save_as(path, enforce_file_format=True)  # type: ignore[arg-type]
    return path
