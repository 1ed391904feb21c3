"""Fixtures for the viewer tests: OHIF installed, demo studies built, Orthanc + the OHIF server, the probe's evidence.

Everything heavy is session-scoped and built once: the fundus study (the real
app; its model is ``$CANDOR_VIEWER_TEST_MODELS`` when set, else the product
model in ``models/fundus_vessels`` when present, else an untrained stand-in,
and the choice is logged and written to ``model-used.txt`` among the
artifacts), the chest study (a MONOCHROME1 DX processed by the app
with the shipped chest model), one Orthanc, one viewer server, and one run of the headless
Chromium probe whose screenshots are kept as test artifacts in
``$CANDOR_TEST_ARTIFACTS/viewer`` (default ``build/test-artifacts/viewer``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LOGGER = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # screens (name chosen not to clash with other test folders)

#: App settings for the fundus study: few MC and saliency samples, every output kind still written.
FAST_APP_ENV = {"CANDOR_MC_SAMPLES": "3", "CANDOR_SALIENCY_IG_STEPS": "2", "CANDOR_SALIENCY_SMOOTHGRAD_SAMPLES": "1"}
FUNDUS_SIZE = 512
CHEST_SIZE = 512


def artifacts_dir() -> Path:
    """Where screenshots and the probe's evidence are kept after the run (CI uploads this folder)."""
    root = Path(os.environ.get("CANDOR_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))
    return root / "viewer"


@pytest.fixture(scope="session")
def ohif_dist() -> Path:
    """OHIF's dist and the browser driver, installed from npm into build/ohif (no-op when present)."""
    from viewer.ohif import install_driver, install_ohif

    install_driver()
    return install_ohif()


@pytest.fixture(scope="session")
def demo_studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fundus study and the chest study (both app output), by name."""
    from viewer.studies import build_chest_study, build_fundus_study, stand_in_model

    root = tmp_path_factory.mktemp("viewer-studies")
    requested = os.environ.get("CANDOR_VIEWER_TEST_MODELS")
    if requested:
        models = Path(requested).resolve()
        if not (models / "fundus_vessels").is_dir():
            raise FileNotFoundError(f"CANDOR_VIEWER_TEST_MODELS={requested} holds no fundus_vessels model")
    elif (REPO / "models" / "fundus_vessels" / "configs" / "metadata.json").is_file():
        models = REPO / "models"
    else:
        LOGGER.warning("no models/fundus_vessels: the fundus study uses an untrained stand-in (near-full SEG mask)")
        models = root / "models"
        stand_in_model(models)
    artifacts_dir().mkdir(parents=True, exist_ok=True)
    (artifacts_dir() / "model-used.txt").write_text(f"{models / 'fundus_vessels'}\n", encoding="utf-8")
    fundus = build_fundus_study(root / "fundus", models, size=FUNDUS_SIZE, extra_env=FAST_APP_ENV)
    if not (models / "chest_findings").is_dir():
        raise FileNotFoundError(f"{models} holds no chest_findings model (shipped in the repository's models/)")
    chest = build_chest_study(root / "chest", models, size=CHEST_SIZE, extra_env=FAST_APP_ENV)
    return {"fundus": fundus, "chest": chest}


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from viewer.orthanc import OrthancServer

    server = OrthancServer(tmp_path_factory.mktemp("viewer-orthanc")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def viewer_url(ohif_dist: Path, orthanc: Any, demo_studies: dict[str, Any]) -> Iterator[str]:
    """OHIF + DICOMweb on one loopback origin, with both demo studies stored in Orthanc."""
    from viewer.ohif import render_app_config
    from viewer.proxy import ViewerServer

    for study in demo_studies.values():
        for path in study.files:
            orthanc.upload(path)
    server = ViewerServer(ohif_dist, orthanc.base_url,
                          overrides={"/app-config.js": (render_app_config(), "text/javascript")}).start()
    yield server.url
    server.stop()


SVG_TEXT = '[data-cy="viewport-pane"] svg text'


@pytest.fixture(scope="session")
def ohif_evidence(viewer_url: str, demo_studies: dict[str, Any]) -> dict[str, Any]:
    """One headless-Chromium run over both studies; screenshots land in :func:`artifacts_dir`."""
    from viewer.probe import Scenario, Step, run_probe

    out = artifacts_dir()
    for old in list(out.glob("*.png")) + list(out.glob("*.json")) + list(out.glob("probe.log")):
        old.unlink()
    fundus, chest = demo_studies["fundus"], demo_studies["chest"]
    scenarios = [
        Scenario("fundus", fundus.study_instance_uid, [
            Step("capture", "op"),
            Step("load", "seg", modality="SEG", description="Retinal vessels", answer="Yes"),
            Step("click", "seg-visible", cy="panelSegmentation-btn", wait_for='[data-cy="data-row-title"]'),
            Step("click", "seg-hidden", cy="data-row-visibility-toggle"),
            Step("load", "epistemic", modality="OT", description="Epistemic uncertainty overlay"),
        ]),
        # SRs are opened as the initial series: double-clicking an SR thumbnail raced OHIF's display-set
        # bookkeeping and left the SR viewport without its region in about half the runs (0 of 21 this way).
        # OHIF draws the SR read-only, then asks whether to track its measurements: "No" keeps that display.
        Scenario("fundus-sr", fundus.study_instance_uid, [
            Step("answer", "sr", answer="No", wait_for=SVG_TEXT),
        ], initial_series=fundus.series_uid("SR")),
        Scenario("chest", chest.study_instance_uid, [
            Step("answer", "sr", answer="No", wait_for=SVG_TEXT),
        ], initial_series=chest.series_uid("SR")),
    ]
    return run_probe(viewer_url, scenarios, out)
