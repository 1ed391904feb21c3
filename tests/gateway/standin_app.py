"""Stand-in for the Candor app in gateway tests: same command line and exit statuses, tiny outputs.

``python tests/gateway/standin_app.py -i IN -o OUT -m MODELS`` reads the study's Part-10
files, skips (and reports) files it cannot use, and writes three results into the source
study: a BINARY SEG (highdicom), an RGB Secondary Capture (highdicom) and a Basic Text SR
(pydicom). Output UIDs are derived from the study UID, so a re-run replaces rather than
duplicates, as the real app does. Behaviour knobs (environment):

``STANDIN_DELAY``       seconds to sleep before writing (simulates inference time);
``STANDIN_EXIT``        exit with this status without writing outputs;
``STANDIN_FAIL_FIRST``  path of a marker: the first run (marker absent) creates it and exits 1;
``STANDIN_RUNLOG``      append ``start``/``done`` lines (study UID, pid) to count runs;
``STANDIN_OUTPUTS``     ``all`` (default: SEG, SC, SR) or ``sr`` (only the SR: no highdicom import,
                        about a second faster, for the fast unit tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

LOGGER = logging.getLogger("standin_app")
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def derived(*parts: str) -> str:
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "standin|" + "|".join(parts)).int)


def runlog(event: str, study_uid: str) -> None:
    path = os.environ.get("STANDIN_RUNLOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {study_uid} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


def load_sources(in_dir: Path) -> tuple[list[Dataset], list[dict[str, str]]]:
    usable, rejected = [], []
    for path in sorted(in_dir.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                rejected.append({"path": str(path), "reason": "unsupported: no image"})
                continue
            _ = ds.pixel_array  # decode now: a corrupt image is skipped, not fatal
        except Exception as error:  # the stand-in mirrors the app: bad files are logged and skipped
            LOGGER.warning("skipping %s: %s", path.name, type(error).__name__)
            rejected.append({"path": str(path), "reason": f"unreadable ({type(error).__name__})"})
            continue
        usable.append(ds)
    return usable, rejected


def write_results(sources: list[Dataset], out_dir: Path, which: str) -> list[Path]:
    series_uid = str(sources[0].SeriesInstanceUID)
    series = sorted((ds for ds in sources if str(ds.SeriesInstanceUID) == series_uid),
                    key=lambda d: int(d.get("InstanceNumber", 0)))
    study_uid = str(series[0].StudyInstanceUID)
    mask = np.stack([ds.pixel_array > np.percentile(ds.pixel_array, 50) for ds in series]).astype(np.uint8)
    ref = series[0]
    sr = basic_text_sr(ref, derived(study_uid, "sr-series"), derived(study_uid, "sr"), int(mask.sum()))
    results: list[tuple[str, Dataset]] = [("sr.dcm", sr)]
    if which != "sr":
        results += highdicom_results(series, mask, study_uid)
    paths = []
    for name, ds in results:
        path = out_dir / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def highdicom_results(series: list[Dataset], mask: np.ndarray, study_uid: str) -> list[tuple[str, Dataset]]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algo = hd.AlgorithmIdentificationSequence(name="standin", version="0.0.1",
                                              family=codes.cid7162.ArtificialIntelligence)
    desc = hd.seg.SegmentDescription(segment_number=1, segment_label="bright", segmented_property_category=
                                     codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
                                     algorithm_type="AUTOMATIC", algorithm_identification=algo)
    seg = hd.seg.Segmentation(source_images=series, pixel_array=mask, segmentation_type="BINARY",
                              segment_descriptions=[desc], series_instance_uid=derived(study_uid, "seg-series"),
                              series_number=901, sop_instance_uid=derived(study_uid, "seg"), instance_number=1,
                              manufacturer="Candor tests", manufacturer_model_name="standin",
                              software_versions="0.0.1", device_serial_number="0")
    ref = series[0]
    rgb = np.zeros((int(ref.Rows), int(ref.Columns), 3), dtype=np.uint8)
    rgb[..., 0] = (mask[0] * 255).astype(np.uint8)
    sc = hd.sc.SCImage.from_ref_dataset(ref_dataset=ref, pixel_array=rgb,
                                        photometric_interpretation="RGB", bits_allocated=8,
                                        coordinate_system=hd.CoordinateSystemNames.PATIENT,
                                        series_instance_uid=derived(study_uid, "sc-series"), series_number=902,
                                        sop_instance_uid=derived(study_uid, "sc"), instance_number=1,
                                        manufacturer="Candor tests", pixel_spacing=ref.PixelSpacing,
                                        patient_orientation=("L", "P"))
    return [("seg.dcm", seg), ("sc.dcm", sc)]


def basic_text_sr(ref: Dataset, series_uid: str, sop_uid: str, voxels: int) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = BASIC_TEXT_SR, sop_uid
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = BASIC_TEXT_SR, sop_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, ref.get(keyword, ""))
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "SR", series_uid, 903, 1
    ds.Manufacturer = "Candor tests"
    ds.ContentDate, ds.ContentTime = "20240102", "101600"
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    ds.ContinuityOfContent = "SEPARATE"
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [title]
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = [name]
    item.TextValue = f"stand-in result: {voxels} voxels above the median (not for diagnosis)"
    ds.ContentSequence = [item]
    return ds


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="standin %(levelname)s %(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("-i", required=True, type=Path)
    parser.add_argument("-o", required=True, type=Path)
    parser.add_argument("-m", required=True, type=Path)
    args = parser.parse_args()
    if not args.i.is_dir() or not args.m.is_dir():
        LOGGER.error("input or model folder missing")
        return 2
    args.o.mkdir(parents=True, exist_ok=True)
    forced = os.environ.get("STANDIN_EXIT")
    if forced:
        return int(forced)
    marker = os.environ.get("STANDIN_FAIL_FIRST")
    if marker and not Path(marker).exists():
        Path(marker).write_text("failed once\n")
        LOGGER.error("failing the first run on purpose")
        return 1
    sources, rejected = load_sources(args.i)
    study_uid = str(sources[0].StudyInstanceUID) if sources else "none"
    runlog("start", study_uid)
    time.sleep(float(os.environ.get("STANDIN_DELAY", "0")))
    which = os.environ.get("STANDIN_OUTPUTS", "all")
    outputs = write_results(sources, args.o, which) if sources else []
    report = {"files_seen": len(sources) + len(rejected), "rejected": rejected,
              "outputs": [{"path": str(p)} for p in outputs]}
    (args.o / "candor-report.json").write_text(json.dumps(report, indent=1))
    runlog("done", study_uid)
    LOGGER.info("%d output(s), %d rejected", len(outputs), len(rejected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
