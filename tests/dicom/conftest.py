"""Small synthetic sources (OP RGB, DX MONOCHROME2) and helpers for the DICOM builder tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from candor.dicom.synthetic import StudyIdentity, build_dx_image, build_op_image, synthetic_fundus

ROWS, COLUMNS = 96, 128


def save(dataset: Dataset, path: Path) -> Path:
    """Write ``dataset`` as a Part-10 file (highdicom objects and pydicom datasets alike)."""
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def op_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96×128 RGB OP, right eye, with Pixel Spacing (exercises the segread fix)."""
    ds = build_op_image(synthetic_fundus(ROWS, COLUMNS), laterality="R", pixel_spacing=(0.012, 0.012))
    return save(ds, tmp_path_factory.mktemp("op") / "op.dcm")


@pytest.fixture(scope="session")
def dx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96×128 uint16 MONOCHROME2 DX of another patient."""
    pixels = (np.arange(ROWS * COLUMNS).reshape(ROWS, COLUMNS) % 4096).astype(np.uint16)
    identity = StudyIdentity(patient_name="Candor^Chest", patient_id="CANDOR-DX-001", accession_number="CANDORDX1")
    ds = build_dx_image(pixels, identity=identity)
    return save(ds, tmp_path_factory.mktemp("dx") / "dx.dcm")


@pytest.fixture(params=["op", "dx"])
def source_path(request: pytest.FixtureRequest, op_path: Path, dx_path: Path) -> Path:
    """Each source kind in turn: RGB OP and greyscale DX."""
    return {"op": op_path, "dx": dx_path}[request.param]


@pytest.fixture
def source(source_path: Path) -> Dataset:
    return pydicom.dcmread(source_path)


@pytest.fixture
def op_source(op_path: Path) -> Dataset:
    return pydicom.dcmread(op_path)


@pytest.fixture
def vessel_mask() -> np.ndarray:
    """A non-trivial boolean mask: two crossing bars and a blob, asymmetric."""
    mask = np.zeros((ROWS, COLUMNS), bool)
    mask[40:44, 10:120] = True
    mask[5:90, 70:73] = True
    mask[10:20, 15:30] = True
    return mask


@pytest.fixture
def write(tmp_path: Path) -> Callable[[Dataset, str], Path]:
    """``write(dataset, name)`` saves into the test's tmp_path and returns the path."""
    return lambda dataset, name: save(dataset, tmp_path / name)
