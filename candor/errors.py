"""Error types that carry a file and a reason, so every log line can name both."""

from __future__ import annotations

from pathlib import Path


class CandorError(Exception):
    """Base class of Candor's own, expected errors (never a bug)."""


class SettingsError(CandorError):
    """A setting from the environment or the YAML file is missing or invalid."""


class ModelBundleError(CandorError):
    """A model folder is missing a file or its configuration is inconsistent."""


class InputRejected(CandorError):
    """One input file or series cannot be processed; the rest of the study goes on.

    ``path`` names the offending file (or the first file of a series) and
    ``reason`` says why in words an administrator can act on.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else "<unknown>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
