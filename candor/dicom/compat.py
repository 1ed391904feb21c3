"""Workarounds for highdicom 0.28 on single-frame images of multi-frame IODs.

highdicom decides whether a source is "multi-frame" from its IOD alone: an IOD
that *may* carry Number of Frames (0028,0008) counts as multi-frame. The
Ophthalmic Photography 8 Bit Image IOD (PS3.3 A.39.1) includes the Multi-frame
module (C.7.6.6) even for a single photograph, so highdicom then expects the
enhanced functional groups (Shared/Per-frame Functional Groups Sequence,
C.7.6.16) that such images never have, and building a SEG from an OP fails
with ``AttributeError: ... 'SharedFunctionalGroupsSequence'``.

:func:`single_frame_sources_ok` narrows that test for the duration of a
``with`` block: an instance with at most one frame and no functional groups is
treated as the single-frame image it is.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Iterator

import highdicom.image as _hd_image
from pydicom import Dataset

LOGGER = logging.getLogger(__name__)

# Serialises the patch: highdicom looks the function up as a module global, so two
# threads patching and restoring it independently could leave the wrong one behind.
_PATCH_LOCK = threading.RLock()


def _frame_count(dataset: Dataset) -> int:
    """Number of Frames (0028,0008), 1 when absent or empty."""
    value = dataset.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1


def _has_functional_groups(dataset: Dataset) -> bool:
    return "SharedFunctionalGroupsSequence" in dataset or "PerFrameFunctionalGroupsSequence" in dataset


def _narrowed(original: Callable[[Dataset], bool]) -> Callable[[Dataset], bool]:
    """Wrap highdicom's IOD-based test so single-frame legacy instances are not multi-frame."""

    def is_multiframe_image(dataset: Dataset) -> bool:
        if not original(dataset):
            return False
        if _frame_count(dataset) == 1 and not _has_functional_groups(dataset):
            return False
        return True

    is_multiframe_image.__wrapped__ = original  # type: ignore[attr-defined]
    return is_multiframe_image


@contextlib.contextmanager
def single_frame_sources_ok() -> Iterator[None]:
    """Let highdicom treat a one-frame OP (or other legacy multi-frame IOD) as single-frame.

    Use it around the construction of a Segmentation (or Parametric Map) whose
    source is such an image; highdicom's SC and SR builders, as Candor calls
    them, do not need it. The patch is process-wide while the block runs and
    is always undone on exit; a lock keeps concurrent uses from interleaving.
    """
    with _PATCH_LOCK:
        previous = _hd_image.is_multiframe_image
        _hd_image.is_multiframe_image = _narrowed(previous)
        LOGGER.debug("highdicom single-frame patch on")
        try:
            yield
        finally:
            _hd_image.is_multiframe_image = previous
            LOGGER.debug("highdicom single-frame patch off")
