"""Synthetic test studies for the gateway tests: small CT series with distinctive patient data.

The patient name and ID are strings that occur nowhere else, so a test can grep the
audit log, the gateway's log and the spool metadata for them (they must never appear).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PATIENT_NAME = "Zqxvbrandt^Oswintha"
PATIENT_ID = "PIDGW7Q3X9KX"


def uid_from(*parts: str) -> str:
    """Deterministic ``2.25.`` UID from strings (PS3.5 B.2)."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "|".join(parts)).int)


@dataclass(frozen=True)
class Study:
    study_uid: str
    paths: list[Path]
    sop_uids: list[str]


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _patient_study(ds: Dataset, study_uid: str, patient_name: str, patient_id: str) -> None:
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610203"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate, ds.StudyTime = "20240102", "101500"
    ds.StudyID = "GW1"
    ds.AccessionNumber = "GWACC1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "gateway test study"


def ct_instance(study_uid: str, series_uid: str, index: int, *, patient_name: str = PATIENT_NAME,
                patient_id: str = PATIENT_ID, size: int = 32) -> Dataset:
    """One CT slice with a bright disc (so a threshold mask is non-empty)."""
    sop_uid = uid_from(series_uid, "ct", str(index))
    ds = Dataset()
    ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
    _patient_study(ds, study_uid, patient_name, patient_id)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = "synthetic CT"
    ds.InstanceNumber = index + 1
    ds.FrameOfReferenceUID = uid_from(study_uid, "for")
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "Candor tests"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    pixels = np.where(disc, 1500 + 10 * index, 100).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def write_ct_study(folder: Path, *, n_images: int = 3, tag: str = "study", patient_name: str = PATIENT_NAME,
                   patient_id: str = PATIENT_ID, size: int = 32) -> Study:
    """Write an ``n_images`` CT series as Part-10 files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = uid_from("gateway-test", tag)
    series_uid = uid_from(study_uid, "series")
    paths, uids = [], []
    for index in range(n_images):
        ds = ct_instance(study_uid, series_uid, index, patient_name=patient_name, patient_id=patient_id, size=size)
        path = folder / f"ct{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        uids.append(str(ds.SOPInstanceUID))
    return Study(study_uid, paths, uids)


def write_truncated_ct(folder: Path, study: Study, *, name: str = "corrupt.dcm") -> tuple[Path, str]:
    """A CT slice of ``study`` whose pixel data is half as long as its header says (corrupt)."""
    series_uid = uid_from(study.study_uid, "series")
    ds = ct_instance(study.study_uid, series_uid, 99)
    ds.PixelData = bytes(ds.PixelData)[: len(ds.PixelData) // 2]
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path, str(ds.SOPInstanceUID)


def write_pdf_instance(folder: Path, study: Study, *, name: str = "report.dcm") -> tuple[Path, str]:
    """An Encapsulated PDF in ``study``: valid DICOM the app does not process (unsupported)."""
    sop_uid = uid_from(study.study_uid, "pdf")
    ds = Dataset()
    ds.file_meta = _file_meta(ENCAPSULATED_PDF_STORAGE, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF_STORAGE, sop_uid
    _patient_study(ds, study.study_uid, PATIENT_NAME, PATIENT_ID)
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = uid_from(study.study_uid, "pdf-series")
    ds.SeriesNumber = 9
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = "referral"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.ConceptNameCodeSequence = []
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path, sop_uid
