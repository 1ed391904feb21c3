"""Shared fixtures: synthetic input studies with good and bad files (built by ``studies``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies import bad_files_in, op_file


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    return bad_files_in(tmp_path / "study")


@pytest.fixture
def mixed_study(tmp_path: Path) -> tuple[Path, list[Path], dict[str, Path]]:
    """A study folder with two good OP series (one image each) and one file of every bad kind."""
    folder = tmp_path / "study"
    good = [op_file(folder, "op_a.dcm", seed=1, series=1), op_file(folder, "op_b.dcm", seed=2, series=2)]
    return folder, good, bad_files_in(folder)
