"""Synthetic input studies with good and bad files, shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.data import get_testdata_file

from candor.dicom.synthetic import StudyIdentity, build_op_image, synthetic_fundus

IDENTITY = StudyIdentity(patient_name="Zyxwv^Qrstu", patient_id="PID-7731-SECRET")


def op_file(folder: Path, name: str, *, seed: int = 0, series: int = 1, instance: int = 1,
            rows: int = 96, columns: int = 128) -> Path:
    """Write one synthetic OP instance of the shared test study."""
    from candor.dicom.uids import derived_uid

    dataset = build_op_image(
        synthetic_fundus(rows, columns, seed=seed), identity=IDENTITY,
        series_instance_uid=derived_uid("test-series", str(series)), series_number=series,
        sop_instance_uid=derived_uid("test-sop", str(series), str(instance), str(seed)), instance_number=instance,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    dataset.save_as(path, enforce_file_format=True)
    return path


def bad_files_in(folder: Path) -> dict[str, Path]:
    """One file per kind of bad input, each next to good ones in the same study."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    files["empty"] = folder / "empty.dcm"
    files["empty"].write_bytes(b"")

    files["not_dicom"] = folder / "notes.txt"
    files["not_dicom"].write_text("this is not DICOM\n")

    good = op_file(folder / "scratch", "good.dcm", seed=9, series=9)
    dataset = dcmread(good)
    dataset.SOPInstanceUID = dataset.SOPInstanceUID + ".3"
    dataset.save_as(folder / "scratch" / "renamed.dcm")
    data = (folder / "scratch" / "renamed.dcm").read_bytes()
    files["truncated"] = folder / "truncated.dcm"  # cut inside the pixel data: the header still reads
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["truncated_header"] = folder / "truncated_header.dcm"  # cut inside the header
    files["truncated_header"].write_bytes(data[:400])

    dataset = dcmread(good)
    dataset.SOPInstanceUID = dataset.SOPInstanceUID + ".4"
    dataset.Rows = int(dataset.Rows) * 2  # Rows larger than the pixel data holds
    files["inconsistent"] = folder / "inconsistent.dcm"
    dataset.save_as(files["inconsistent"])

    dataset = dcmread(good)
    for keyword in ("Rows", "Columns", "PixelData", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit",
                    "PhotometricInterpretation", "PixelRepresentation", "PlanarConfiguration"):
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.SOPInstanceUID = dataset.SOPInstanceUID + ".1"
    files["non_image"] = folder / "non_image.dcm"
    dataset.save_as(files["non_image"])

    files["unsupported_modality"] = folder / "ct.dcm"
    files["unsupported_modality"].write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())

    dataset = dcmread(good)
    grey = np.asarray(dataset.pixel_array)[..., 1]
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.SamplesPerPixel = 1
    del dataset.PlanarConfiguration
    dataset.PixelData = grey.tobytes()
    dataset.SOPInstanceUID = dataset.SOPInstanceUID + ".2"
    files["unsupported_photometric"] = folder / "grey_op.dcm"
    dataset.save_as(files["unsupported_photometric"])

    for path in (folder / "scratch").iterdir():
        path.unlink()
    (folder / "scratch").rmdir()
    return files




def tiny_bundle(models: Path, working_size: int = 64) -> Path:
    """An untrained, tiny fundus-vessel model folder: fast pipeline tests, meaningless predictions."""
    import torch

    from candor.bundle import build_network, save_bundle

    torch.manual_seed(0)
    config = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 2, "in_channels": 3,
              "out_channels": 2, "features": [4, 4, 8, 8, 16, 4], "dropout": 0.2}
    metadata = {"name": "tiny-test-vessels", "version": "0.0.1", "task": "fundus_vessels",
                "labels": {"0": "background", "1": "retinal vessel"},
                "preprocessing": {"working_size": working_size, "size_multiple": 16, "channels": "RGB"}}
    return save_bundle(models / "fundus_vessels", build_network(config), config, metadata)


def tiny_chest_bundle(models: Path, working_size: int = 64) -> Path:
    """An untrained, tiny chest-findings classifier folder (MONAI DenseNet, four sigmoid findings)."""
    import torch

    from candor.bundle import build_network, save_bundle

    torch.manual_seed(0)
    config = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
              "init_features": 4, "growth_rate": 4, "block_config": [1, 2], "bn_size": 2, "dropout_prob": 0.2}
    metadata = {"name": "tiny-test-chest", "version": "0.0.1", "task": "chest_findings",
                "labels": {"0": "nodule", "1": "pleural_effusion", "2": "cardiomegaly", "3": "pneumothorax"},
                "output": "multilabel_sigmoid", "gradcam_layer": "features.denseblock2",
                "preprocessing": {"working_size": working_size, "size_multiple": 16, "channels": "MONOCHROME"}}
    return save_bundle(models / "chest_findings", build_network(config), config, metadata)


def tiny_nuclei_bundle(models: Path, working_size: int = 64) -> Path:
    """An untrained, tiny nucleus model folder (BasicUNet, background / interior / boundary)."""
    import torch

    from candor.bundle import build_network, save_bundle

    torch.manual_seed(0)
    config = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 2, "in_channels": 1,
              "out_channels": 3, "features": [4, 4, 8, 8, 16, 4], "dropout": 0.2}
    metadata = {"name": "tiny-test-nuclei", "version": "0.0.1", "task": "microscopy_nuclei",
                "labels": {"0": "background", "1": "nucleus", "2": "boundary"},
                "preprocessing": {"working_size": working_size, "size_multiple": 16, "channels": "MONOCHROME",
                                  "colour_to_grey": "max"},
                "postprocessing": {"interior_threshold": 0.4, "foreground_threshold": 0.3, "min_marker_area": 1,
                                   "min_area": 2, "count_interval_level": 0.9, "count_interval_scale": 2.0}}
    return save_bundle(models / "microscopy_nuclei", build_network(config), config, metadata)
