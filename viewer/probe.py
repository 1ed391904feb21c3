"""Run the headless-Chromium OHIF probe (``viewer/browser/ohif_probe.cjs``) and return its evidence.

The probe drives Debian's Chromium with playwright-core (installed by
:func:`viewer.ohif.install_driver`; no browser download) and records what OHIF
shows: series thumbnails, viewport screenshots, SVG annotation texts, side
panels, console errors and failed requests. Tests assert on that evidence.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from viewer.ohif import DEFAULT_ROOT, driver_dir

LOGGER = logging.getLogger(__name__)

PROBE_SCRIPT = Path(__file__).resolve().parent / "browser" / "ohif_probe.cjs"


class ProbeError(RuntimeError):
    """Node or Chromium is missing, or the probe script failed (its stderr is included)."""


@dataclass(frozen=True)
class Step:
    """One step of a scenario, followed by a capture (see the probe script's header).

    ``capture`` only; ``load`` the series of ``modality`` whose description
    contains ``description`` and click ``answer`` on OHIF's prompt if one
    appears; ``answer`` a prompt only; ``click`` the element with data-cy
    ``cy``. ``wait_for`` is a CSS selector awaited before capturing.
    """

    action: str
    label: str
    modality: str = ""
    description: str = ""
    answer: str = ""
    cy: str = ""
    wait_for: str = ""


@dataclass(frozen=True)
class Scenario:
    """Open one study in OHIF's viewer route (``initial_series`` first, if given) and run ``steps`` in order."""

    name: str
    study_uid: str
    steps: list[Step] = field(default_factory=list)
    initial_series: str = ""


def chromium_binary() -> Path:
    """Debian's Chromium (``apt-get install chromium``)."""
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return Path(found)
    raise ProbeError("Chromium is not installed; run .ci/install-viewer-deps.sh (apt-get install chromium)")


def _step(step: Step) -> dict[str, str]:
    if step.action not in ("capture", "load", "click", "answer"):
        raise ValueError(f"unknown probe step action {step.action!r}")
    item = asdict(step)
    item["waitFor"] = item.pop("wait_for")
    return item


def run_probe(base_url: str, scenarios: list[Scenario], out_dir: Path, *, root: Path = DEFAULT_ROOT,
              viewport: tuple[int, int] = (1400, 900), settle_ms: int = 6000, timeout: float = 400.0) -> dict[str, Any]:
    """Run every scenario in one Chromium; returns ``{scenario name: evidence}`` (see the script's header)."""
    node = shutil.which("node")
    if node is None:
        raise ProbeError("node is not on PATH; install Node.js")
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        "baseUrl": base_url, "executablePath": str(chromium_binary()), "driverDir": str(driver_dir(root)),
        "outDir": str(out_dir), "viewport": {"width": viewport[0], "height": viewport[1]}, "settleMs": settle_ms,
        "scenarios": [{"name": s.name, "studyUid": s.study_uid, "initialSeries": s.initial_series,
                       "steps": [_step(step) for step in s.steps]} for s in scenarios],
    }
    plan_path = out_dir / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    LOGGER.info("running the OHIF probe (%d scenario(s)) against %s", len(scenarios), base_url)
    try:
        done = subprocess.run([node, str(PROBE_SCRIPT), str(plan_path)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise ProbeError(f"the OHIF probe did not finish within {timeout:.0f} s") from error
    (out_dir / "probe.log").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise ProbeError(f"the OHIF probe exited with status {done.returncode}:\n{done.stderr[-4000:]}")
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    return {scenario["name"]: scenario for scenario in result["scenarios"]}
