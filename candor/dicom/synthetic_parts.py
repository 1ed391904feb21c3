"""Shared pieces of the synthetic source builders: identities, pixel content and the common DICOM modules.

Used by :mod:`candor.dicom.synthetic_sources` (CR, VL Microscopic, the registry) and
:mod:`candor.dicom.synthetic_slides` (SM). Every UID is derived from the kind.
"""

from __future__ import annotations

import logging
import zlib

import highdicom as hd
import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.dataset import FileDataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from candor.dicom.synthetic import StudyIdentity
from candor.dicom.uids import derived_uid

LOGGER = logging.getLogger(__name__)

CR_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.1"
VL_MICROSCOPIC_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.2"
VL_WHOLE_SLIDE_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.6"

#: Size of every synthetic source (rows, columns): small, but above the overlay renderer's minimum.
DEFAULT_SHAPE = (128, 160)

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


