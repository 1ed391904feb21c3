"""Synthetic input studies: Ophthalmic Photography and a greyscale DX for tests and demos.

No public package ships an Ophthalmic Photography (OP) instance, so Candor
builds its own. :func:`build_op_image` writes an *Ophthalmic Photography 8 Bit
Image* (PS3.3 A.39.1, SOP Class 1.2.840.10008.5.1.4.1.1.77.1.5.1) that dciodvfy
accepts without errors; :func:`build_dx_image` writes a *Digital X-Ray Image
For Presentation* (PS3.3 A.26.1) for the greyscale and negative paths.

Identity defaults describe an obviously fake demo patient, and every UID not
given is derived from the identity (:func:`candor.dicom.uids.derived_uid`), so
the same call always builds the same instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import highdicom
import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.dataset import FileDataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

OP_8BIT_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
DX_PRESENTATION_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.1.1"

_SRGB_ICC = Path(highdicom.__file__).parent / "_icc_profiles" / "sRGB_v4_ICC_preference.icc"


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and study attributes shared by every instance of a synthetic study.

    ``study_instance_uid=None`` derives the UID from the patient ID and the
    accession number.
    """

    patient_name: str = "Candor^Demo"
    patient_id: str = "CANDOR-DEMO-001"
    patient_birth_date: str = "19700101"
    patient_sex: str = "O"
    study_instance_uid: str | None = None
    study_id: str = "1"
    accession_number: str = "CANDOR0001"
    study_date: str = "20240101"
    study_time: str = "120000"
    study_description: str = "Synthetic study (Candor demo)"
    referring_physician_name: str = ""

    def resolved_study_uid(self) -> str:
        if self.study_instance_uid is not None:
            return self.study_instance_uid
        return derived_uid("synthetic-study", self.patient_id, self.accession_number)


def _code_item(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _base_dataset(
    sop_class_uid: str,
    sop_instance_uid: str,
    identity: StudyIdentity,
    *,
    modality: str,
    series_instance_uid: str,
    series_number: int,
    instance_number: int,
    series_description: str,
) -> FileDataset:
    """Part-10 dataset with the Patient, General Study, General Series, General Equipment and SOP Common modules."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    # SOP Common (C.12.1)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    # Patient (C.7.1.1)
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    # General Study (C.7.2.1)
    ds.StudyInstanceUID = identity.resolved_study_uid()
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.ReferringPhysicianName = identity.referring_physician_name
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.StudyDescription = identity.study_description
    # General Series (C.7.3.1)
    ds.Modality = modality
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    # General Equipment (C.7.5.1)
    ds.Manufacturer = "Candor synthetic"
    # General Image / Acquisition (C.7.6.1, C.7.10.1)
    ds.InstanceNumber = instance_number
    ds.ContentDate = identity.study_date
    ds.ContentTime = identity.study_time
    ds.AcquisitionDateTime = identity.study_date + identity.study_time
    return ds


def build_op_image(
    pixels: np.ndarray,
    *,
    identity: StudyIdentity | None = None,
    laterality: str = "R",
    series_instance_uid: str | None = None,
    series_number: int = 1,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    pixel_spacing: tuple[float, float] | None = None,
    horizontal_field_of_view: float = 45.0,
    with_icc_profile: bool = True,
) -> FileDataset:
    """Build an Ophthalmic Photography 8 Bit Image (PS3.3 A.39.1) from an RGB photograph.

    Parameters
    ----------
    pixels
        (rows, columns, 3) uint8 RGB fundus photograph.
    identity
        Patient/study attributes (demo defaults when ``None``).
    laterality
        Image Laterality (0020,0062) of the Ocular Region Imaged module
        (C.8.17.5): ``R``, ``L`` or ``B``.
    series_instance_uid, sop_instance_uid
        Derived from the study UID, series number and instance number when ``None``.
    pixel_spacing
        (row spacing, column spacing) in mm on the retina, written as Pixel
        Spacing (0028,0030) when the image is calibrated (C.8.17.2, Type 1C).
    horizontal_field_of_view
        Horizontal Field of View (0022,000C) in degrees.
    with_icc_profile
        Attach highdicom's sRGB ICC profile (ICC Profile module, C.11.15).

    Raises
    ------
    TypeError, ValueError
        If ``pixels`` is not an (H, W, 3) uint8 array or an argument is out of range.
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise TypeError("pixels must be a uint8 numpy array")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise ValueError(f"pixels must have shape (rows, columns, 3), got {pixels.shape}")
    if laterality not in ("R", "L", "B"):
        raise ValueError(f"laterality must be R, L or B for an OP image, got {laterality!r}")
    if pixel_spacing is not None and (len(pixel_spacing) != 2 or min(pixel_spacing) <= 0):
        raise ValueError(f"pixel_spacing must be two positive numbers, got {pixel_spacing!r}")
    if not 0 < horizontal_field_of_view <= 360:
        raise ValueError(f"horizontal_field_of_view must be in (0, 360] degrees, got {horizontal_field_of_view}")

    identity = identity or StudyIdentity()
    study_uid = identity.resolved_study_uid()
    series_uid = series_instance_uid or derived_uid(study_uid, "synthetic-op-series", str(series_number))
    sop_uid = sop_instance_uid or derived_uid(series_uid, "synthetic-op-instance", str(instance_number))
    ds = _base_dataset(
        OP_8BIT_SOP_CLASS_UID,
        sop_uid,
        identity,
        modality="OP",
        series_instance_uid=series_uid,
        series_number=series_number,
        instance_number=instance_number,
        series_description="Fundus photography (synthetic)",
    )
    ds.ManufacturerModelName = "Synthetic fundus camera"
    # General Image (C.7.6.1): no Image Orientation (Patient), so Type 2C Patient Orientation, empty.
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # Image Pixel (C.7.6.3) as constrained by the OP Image module (C.8.17.2)
    rows, columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = _even_length(np.ascontiguousarray(pixels).tobytes())
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    # Multi-frame (C.7.6.6) and Cine-free timing: one frame, Frame Time as the increment pointer
    ds.NumberOfFrames = 1
    ds.FrameIncrementPointer = 0x00181063
    ds.FrameTime = 0.0
    # Synchronization (C.7.4.2)
    ds.SynchronizationFrameOfReferenceUID = derived_uid(study_uid, "synthetic-sync")
    ds.SynchronizationTrigger = "NO TRIGGER"
    ds.AcquisitionTimeSynchronized = "N"
    # Ophthalmic Photography Image (C.8.17.2)
    ds.ImageLaterality = laterality
    ds.AcquisitionDeviceTypeCodeSequence = [_code_item(codes.SCT.FundusCamera)]
    ds.IlluminationTypeCodeSequence = []
    ds.LightPathFilterTypeStackCodeSequence = []
    ds.ImagePathFilterTypeStackCodeSequence = []
    ds.LensesCodeSequence = []
    ds.DetectorType = "CCD"
    # Ocular Region Imaged (C.8.17.5)
    ds.AnatomicRegionSequence = [_code_item(codes.SCT.Eye)]
    # Acquisition Context (C.7.6.14)
    ds.AcquisitionContextSequence = []
    # Ophthalmic Photography Acquisition Parameters (C.8.17.3)
    ds.PatientEyeMovementCommanded = "NO"
    ds.RefractiveStateSequence = []
    ds.PupilDilated = "NO"
    ds.EmmetropicMagnification = None
    ds.IntraOcularPressure = None
    # Ophthalmic Photographic Parameters (C.8.17.4)
    ds.HorizontalFieldOfView = horizontal_field_of_view
    if with_icc_profile:
        ds.ICCProfile = _SRGB_ICC.read_bytes()
    return ds


def build_dx_image(
    pixels: np.ndarray,
    *,
    identity: StudyIdentity | None = None,
    photometric_interpretation: str = "MONOCHROME2",
    series_instance_uid: str | None = None,
    series_number: int = 1,
    sop_instance_uid: str | None = None,
    instance_number: int = 1,
    imager_pixel_spacing: tuple[float, float] = (0.2, 0.2),
) -> FileDataset:
    """Build a Digital X-Ray Image For Presentation (PS3.3 A.26.1), a PA chest view.

    Parameters
    ----------
    pixels
        (rows, columns) uint8 or uint16 greyscale image; all bits are stored.
    photometric_interpretation
        ``MONOCHROME2`` (0 is black) or ``MONOCHROME1`` (0 is white); the pixel
        values are written as given.
    imager_pixel_spacing
        Imager Pixel Spacing (0018,1164) in mm (DX Detector module, C.8.11.4).
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError("pixels must be a uint8 or uint16 numpy array")
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ValueError(f"pixels must have shape (rows, columns), got {pixels.shape}")
    if photometric_interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric_interpretation must be MONOCHROME1 or MONOCHROME2, got {photometric_interpretation!r}")

    identity = identity or StudyIdentity()
    study_uid = identity.resolved_study_uid()
    series_uid = series_instance_uid or derived_uid(study_uid, "synthetic-dx-series", str(series_number))
    sop_uid = sop_instance_uid or derived_uid(series_uid, "synthetic-dx-instance", str(instance_number))
    ds = _base_dataset(
        DX_PRESENTATION_SOP_CLASS_UID,
        sop_uid,
        identity,
        modality="DX",
        series_instance_uid=series_uid,
        series_number=series_number,
        instance_number=instance_number,
        series_description="Chest PA (synthetic)",
    )
    bits = 8 if pixels.dtype == np.uint8 else 16
    # DX Series (C.8.11.1)
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "CHEST"
    # General Image (C.7.6.1)
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    # DX Anatomy Imaged (C.8.11.2)
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = [_code_item(codes.SCT.Chest)]
    # DX Image (C.8.11.3) and Image Pixel (C.7.6.3)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric_interpretation
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1 if photometric_interpretation == "MONOCHROME2" else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if photometric_interpretation == "MONOCHROME2" else "INVERSE"
    ds.WindowCenter = (2**bits) / 2
    ds.WindowWidth = 2**bits
    ds.PixelData = _even_length(np.ascontiguousarray(pixels).astype(f"<u{bits // 8}").tobytes())
    # DX Detector (C.8.11.4)
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = [float(imager_pixel_spacing[0]), float(imager_pixel_spacing[1])]
    # DX Positioning (C.8.11.5, U) — a PA view
    ds.ViewPosition = "PA"
    ds.ViewCodeSequence = [_code_item(codes.SCT.PosteroAnterior)]
    ds.PositionerType = None
    # Acquisition Context (C.7.6.14)
    ds.AcquisitionContextSequence = []
    return ds


def _even_length(data: bytes) -> bytes:
    """Pad Pixel Data to even length (PS3.5 §8.1.1): odd values break C-STORE to Orthanc."""
    return data + b"\0" if len(data) % 2 else data


def write_op_study(
    folder: str | Path,
    images: Sequence[np.ndarray],
    *,
    identity: StudyIdentity | None = None,
    laterality: str | Sequence[str] = "R",
    series_number: int = 1,
    pixel_spacing: tuple[float, float] | None = None,
) -> list[Path]:
    """Write ``images`` as one OP series of a study into ``folder`` (Part-10 files).

    Each image becomes one instance (Instance Number 1, 2, …) named
    ``<SOPInstanceUID>.dcm``. ``laterality`` is one value for all images or one
    per image. Returns the written paths in instance order.
    """
    if not images:
        raise ValueError("write_op_study needs at least one image")
    lateralities = [laterality] * len(images) if isinstance(laterality, str) else list(laterality)
    if len(lateralities) != len(images):
        raise ValueError(f"got {len(lateralities)} lateralities for {len(images)} images")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    identity = identity or StudyIdentity()
    paths = []
    for number, (pixels, side) in enumerate(zip(images, lateralities), start=1):
        ds = build_op_image(
            pixels,
            identity=identity,
            laterality=side,
            series_number=series_number,
            instance_number=number,
            pixel_spacing=pixel_spacing,
        )
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    LOGGER.info("wrote %d synthetic OP instance(s) to %s", len(paths), folder)
    return paths


def synthetic_fundus(rows: int = 96, columns: int = 128, *, seed: int = 0) -> np.ndarray:
    """A small fundus-like RGB picture (orange disc, dark corners, a few vessels) for tests.

    Not a realistic fundus: training/ owns realistic synthetic data; this only
    gives builders and renderers plausible colours and a field-of-view disc.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx, radius = rows / 2, columns / 2, 0.47 * min(rows, columns)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    image = np.zeros((rows, columns, 3), np.float32)
    image[inside] = (200.0, 90.0, 40.0)
    for angle in np.linspace(0.3, 2 * np.pi, 6, endpoint=False):
        distance = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        along = (yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
        vessel = inside & (distance < 1.5) & (along > 0)
        image[vessel] = (120.0, 30.0, 20.0)
    image += rng.normal(0, 4, image.shape).astype(np.float32) * inside[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)
