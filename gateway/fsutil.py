"""Crash-safe file primitives: write to a temporary file, fsync, rename, fsync the folder.

A POSIX rename within one file system is atomic, so a reader (or the gateway after
``kill -9``) sees either the old file or the complete new one, never a torn write.
Syncing the parent folder makes the rename itself survive a power cut.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_UID_UNSAFE = re.compile(r"[^0-9.]")


def safe_uid(uid: str) -> str:
    """Return ``uid`` usable as a file name: characters other than digits and dots become ``_``.

    Valid DICOM UIDs pass unchanged; anything else is neutralised rather than
    trusted as a path component (a peer controls these strings).
    """
    cleaned = _UID_UNSAFE.sub("_", uid.strip())[:64]
    if not cleaned or cleaned.strip(".") == "":
        raise ValueError(f"not usable as a UID file name: {uid!r}")
    return cleaned


def fsync_dir(path: Path) -> None:
    """Flush the folder entry table of ``path`` to disk (makes renames into it durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_durable(data: bytes, tmp_dir: Path) -> Path:
    """Write ``data`` to a new file in ``tmp_dir``, fsync it and return its path.

    The caller renames the file to its final place (see :func:`commit`); keeping
    the temporary file in the spool guarantees the rename stays on one file system.
    """
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def commit(tmp_path: Path, final_path: Path) -> None:
    """Atomically move a synced temporary file to ``final_path`` and make the move durable."""
    os.replace(tmp_path, final_path)
    fsync_dir(final_path.parent)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Replace ``path`` with ``payload`` as JSON, atomically and durably."""
    data = json.dumps(payload, indent=1, sort_keys=True).encode("utf-8")
    tmp = write_bytes_durable(data, path.parent)
    commit(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`write_json_atomic`."""
    with path.open("r", encoding="utf-8") as handle:
        return json.load(handle)


def move_dir(src: Path, dst: Path) -> None:
    """Atomically rename folder ``src`` to ``dst`` (same file system) and sync both parents."""
    if dst.exists():
        raise FileExistsError(f"refusing to overwrite {dst}")
    os.rename(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def dir_size(path: Path) -> tuple[int, int]:
    """Return ``(file count, total bytes)`` of the regular files directly inside ``path``."""
    count = 0
    total = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            count += 1
            total += entry.stat(follow_symlinks=False).st_size
    return count, total
