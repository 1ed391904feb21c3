"""Candor's own settings, read once at start and validated with a clear message.

MONAI Deploy apps reject unknown command-line flags, so Candor's knobs come from
environment variables and/or the ``candor:`` section of a YAML file (the file
named by ``CANDOR_CONFIG``, else the MAP's ``HOLOSCAN_CONFIG_PATH`` app.yaml).
Environment variables win over the file; the file wins over the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from candor.errors import SettingsError
from candor.saliency.registry import METHODS

ENV_PREFIX = "CANDOR_"

#: Saliency methods that ``auto`` runs on a CPU for a segmentation: the SmoothGrad variants multiply the cost by
#: their sample count (SmoothGrad-IG alone ≈ 272 forward passes at the defaults), see docs/saliency.md. A
#: classification runs all seven on a CPU too (its network is small and its input 256 px: measured by
#: ``python -m bench.chest_study``).
CPU_SALIENCY_METHODS = ("gradient", "guided_backprop", "integrated_gradients", "gradcam")


@dataclass(frozen=True)
class Settings:
    """Validated run settings. Each field maps to ``CANDOR_<FIELD>`` in the environment."""

    mc_samples: int = 20
    """T, the number of stochastic forward passes (Gal & Ghahramani 2016)."""
    seed: int = 0
    """Seed of the dropout masks; a fixed seed gives identical outputs."""
    threshold: float = 0.5
    """Mean-probability threshold of the binary segmentation."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    write_seg: bool = True
    write_overlays: bool = True
    saliency_methods: str = "auto"
    """Comma-separated saliency methods (names in ``candor.saliency.METHODS``), ``none``, or ``auto``:
    all seven on a GPU or for a classification; for a segmentation on a CPU the four cheap ones
    (:data:`CPU_SALIENCY_METHODS`, ≈ 40 forward passes)."""
    saliency_ig_steps: int = 16
    """Integrated-gradients steps (Gauss–Legendre); 16 keeps the convergence delta small at a sixth of
    captum's default cost (see docs/saliency.md)."""
    saliency_smoothgrad_samples: int = 8
    """Noisy copies per SmoothGrad map (Smilkov et al. 2017 use 50; 8 bounds the cost of SmoothGrad-IG)."""
    saliency_noise_fraction: float = 0.15
    """SmoothGrad noise σ as a fraction of the input range (Smilkov et al. recommend 10–20 %)."""
    saliency_batch_size: int = 8
    """Internal batch (IG steps / noisy copies per pass): bounds saliency memory."""
    saliency_top_findings: int = 1
    """Classification: saliency overlays are drawn for this many findings, most probable first."""
    report_each_nucleus: bool = False
    """Microscopy: also write one SR measurement group per nucleus (area, detection confidence, epistemic)."""

    def saliency_method_list(self, on_gpu: bool = False, task_kind: str | None = None) -> tuple[str, ...]:
        """The methods to run; ``auto`` depends on the device and on the task kind (see the field)."""
        text = self.saliency_methods.strip().lower()
        if text == "auto":
            return tuple(METHODS) if on_gpu or task_kind == "classification" else CPU_SALIENCY_METHODS
        return () if text in ("", "none") else tuple(name.strip() for name in text.split(",") if name.strip())

    def __post_init__(self) -> None:
        if not 2 <= self.mc_samples <= 1000:
            raise SettingsError(f"mc_samples must be between 2 and 1000, got {self.mc_samples}")
        if not 0 <= self.seed < 2**63:
            raise SettingsError(f"seed must be a non-negative 64-bit integer, got {self.seed}")
        if not 0.0 < self.threshold < 1.0:
            raise SettingsError(f"threshold must lie strictly between 0 and 1, got {self.threshold}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"device must be auto, cpu or cuda, got {self.device!r}")
        unknown = [name for name in self.saliency_method_list(on_gpu=True) if name not in METHODS]
        if unknown:
            raise SettingsError(f"unknown saliency method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"
                                " or none")
        if self.saliency_ig_steps < 2 or self.saliency_smoothgrad_samples < 1 or self.saliency_batch_size < 1:
            raise SettingsError("saliency_ig_steps must be ≥ 2, saliency_smoothgrad_samples and saliency_batch_size ≥ 1")
        if not 0 <= self.saliency_top_findings <= 16:
            raise SettingsError(f"saliency_top_findings must be between 0 and 16, got {self.saliency_top_findings}")
        if not 0.0 < self.saliency_noise_fraction <= 1.0:
            raise SettingsError(f"saliency_noise_fraction must lie in (0, 1], got {self.saliency_noise_fraction}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, raw: Any, kind: type) -> Any:
    """Convert one raw value (a string from the environment, or a YAML scalar) to ``kind``."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(str(raw).strip())
        if kind is float:
            return float(str(raw).strip())
        return str(raw).strip()
    except ValueError:
        raise SettingsError(f"setting {name}: cannot read {raw!r} as {kind.__name__}") from None


def _yaml_section(path: Path) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"cannot read settings file {path}: {error}") from None
    if not isinstance(document, Mapping):
        raise SettingsError(f"settings file {path}: expected a mapping at the top level")
    section = document.get("candor", {}) or {}
    if not isinstance(section, Mapping):
        raise SettingsError(f"settings file {path}: the 'candor' section must be a mapping")
    return section


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``) and the YAML file it names."""
    environ = os.environ if environ is None else environ
    types = {field.name: field.type for field in fields(Settings)}
    kinds = {name: {"int": int, "float": float, "bool": bool, "str": str}[str(t)] for name, t in types.items()}

    values: dict[str, Any] = {}
    config = environ.get(ENV_PREFIX + "CONFIG") or environ.get("HOLOSCAN_CONFIG_PATH")
    if config:
        path = Path(config)
        if environ.get(ENV_PREFIX + "CONFIG") and not path.is_file():
            raise SettingsError(f"CANDOR_CONFIG names {path}, which is not a file")
        if path.is_file():
            section = _yaml_section(path)
            unknown = sorted(set(section) - set(kinds))
            if unknown:
                raise SettingsError(f"settings file {path}: unknown setting(s) {', '.join(unknown)}")
            values.update({name: _convert(name, raw, kinds[name]) for name, raw in section.items()})

    for name, kind in kinds.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _convert(ENV_PREFIX + name.upper(), raw, kind)
    return Settings(**values)
