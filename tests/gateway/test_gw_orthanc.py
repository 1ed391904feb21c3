"""A real PACS in the loop: Orthanc (Debian package) routes each new study once to the gateway.

Flow under test: storescu → Orthanc → Lua ``OnStableStudy`` (``examples/orthanc/route.lua``)
→ gateway → app → C-STORE (or STOW-RS) back into the same study in Orthanc.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from collections.abc import Callable

import pytest
from gw_harness import REPO, GatewayProcess, Orthanc, free_port, storescu, wait_until
from gw_studies import PATIENT_ID, PATIENT_NAME, write_ct_study, write_pdf_instance, write_truncated_ct

pytestmark = pytest.mark.integration

RESULTS = {"SEG", "SR", "OT"}


def results_arrived(orthanc: Orthanc, study_uid: str, wanted: set[str] = RESULTS) -> bool:
    return wanted <= set(orthanc.series_modalities(study_uid))


def jobs_to_gateway(orthanc: Orthanc) -> list[dict]:
    return [job for job in orthanc.get("/jobs?expand")
            if job["Type"] == "DicomModalityStore" and job["Content"].get("RemoteAet") == "CANDOR"]


def assert_no_phi(gateway: GatewayProcess) -> None:
    """The gateway's log, audit and every spool file that is not an instance are free of patient data."""
    texts = {"gateway.log": gateway.log_path.read_text(errors="replace")}
    for path in gateway.spool.rglob("*"):
        if path.is_file() and path.suffix != ".dcm":
            texts[str(path.relative_to(gateway.spool))] = path.read_text(errors="replace")
    assert "audit.jsonl" in texts
    needles = [PATIENT_ID, *PATIENT_NAME.split("^")]
    assert [(name, n) for name, text in texts.items() for n in needles if n in text] == []


@pytest.fixture
def node(tmp_path: Path, models_dir: Path, standin_command: str, orthanc_factory: Callable[..., Orthanc],
         gateway_factory: Callable[..., GatewayProcess]) -> Callable[..., tuple[Orthanc, GatewayProcess]]:
    """Start Orthanc and a gateway pointing at each other."""

    def make(*, env: dict[str, str] | None = None, extra: list[str] | None = None, stow: bool = False,
             app_command: str | None = None, start_gateway: bool = True,
             models: Path | None = None) -> tuple[Orthanc, GatewayProcess]:
        port = free_port()
        orthanc = orthanc_factory(port)
        destination = f"{orthanc.url}/dicom-web" if stow else f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
        gateway = gateway_factory(tmp_path / "spool", models or models_dir, destination, app_command or standin_command,
                                  port=port, env=env, extra=["--quiet-seconds", "1", "--backoff-base", "0.5",
                                                             "--backoff-max", "2", "--retention", "600",
                                                             *(extra or [])])
        if start_gateway:
            gateway.start()
        return orthanc, gateway

    return make


def test_routed_once_results_in_same_study(tmp_path: Path, node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    orthanc, gateway = node()
    study = write_ct_study(tmp_path / "study", n_images=3)
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, study.paths)
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 120, what="SEG, SR and SC in Orthanc")
    time.sleep(2 + 1 + 3)  # StableAge + quiet period + margin: a second routing would show up now
    assert orthanc.series_modalities(study.study_uid) == {"CT": 3, "SEG": 1, "SR": 1, "OT": 1}
    assert len(jobs_to_gateway(orthanc)) == 1 and len(gateway.hops("complete")) == 1
    sent = gateway.hops("sent")
    assert len(sent) == 1 and sent[0]["outputs"] == 3 and sent[0]["study_uid"] == study.study_uid
    study_id = orthanc.study_id(study.study_uid)
    assert orthanc.get_text(f"/studies/{study_id}/metadata/CandorRouted").startswith("20")
    assert_no_phi(gateway)


def test_stow_rs_destination(tmp_path: Path, node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    orthanc, gateway = node(stow=True)
    study = write_ct_study(tmp_path / "study", n_images=2)
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, study.paths)
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 120, what="results via STOW-RS")
    sent = wait_until(lambda: gateway.hops("sent"), 30, what="sent hop")
    assert sent[0]["destination"].endswith("/dicom-web") and sent[0]["outputs"] == 3


def test_destination_down_during_delivery(tmp_path: Path, node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    orthanc, gateway = node(env={"STANDIN_DELAY": "4"}, extra=["--send-attempts", "50"])
    study = write_ct_study(tmp_path / "study", n_images=2)
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, study.paths)
    wait_until(lambda: gateway.hops("complete"), 60, what="study complete at the gateway")
    orthanc.stop()  # the PACS goes down while the app runs
    wait_until(lambda: [h for h in gateway.hops("failed") if h["stage"] == "send"], 60, what="a failed delivery")
    assert not gateway.hops("sent")
    orthanc.start()  # same storage and ports
    wait_until(lambda: gateway.hops("sent"), 60, what="delivery after the PACS is back")
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 30, what="results in Orthanc")
    assert orthanc.series_modalities(study.study_uid) == {"CT": 2, "SEG": 1, "SR": 1, "OT": 1}


def test_gateway_killed_mid_study_processed_once(tmp_path: Path, models_dir: Path, standin_command: str,
                                                 node: Callable[..., tuple[Orthanc, GatewayProcess]],
                                                 gateway_factory: Callable[..., GatewayProcess]) -> None:
    runlog = tmp_path / "runs.log"
    orthanc, gateway = node(env={"STANDIN_DELAY": "30", "STANDIN_RUNLOG": str(runlog)})
    study = write_ct_study(tmp_path / "study", n_images=3)
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, study.paths)
    wait_until(lambda: runlog.exists() and "start" in runlog.read_text(), 60, what="app running")
    gateway.kill9()
    restarted = gateway_factory(gateway.spool, models_dir, f"PACS@127.0.0.1:{orthanc.dicom_port}", standin_command,
                                port=gateway.port, env={"STANDIN_RUNLOG": str(runlog)},
                                extra=["--quiet-seconds", "1"], log_path=tmp_path / "gateway2.log")
    restarted.start()
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 120, what="results after restart")
    time.sleep(4)
    assert orthanc.series_modalities(study.study_uid) == {"CT": 3, "SEG": 1, "SR": 1, "OT": 1}
    lines = runlog.read_text().split("\n")
    assert sum(line.startswith("done") for line in lines) == 1  # the orphaned first run was killed
    assert len(restarted.hops("sent")) == 1 and len(jobs_to_gateway(orthanc)) == 1


def test_gateway_down_when_routed_then_resubmitted(tmp_path: Path,
                                                   node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    orthanc, gateway = node(start_gateway=False)
    study = write_ct_study(tmp_path / "study", n_images=2)
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, study.paths)
    failed = wait_until(lambda: [j for j in jobs_to_gateway(orthanc) if j["State"] == "Failure"], 60,
                        what="failed routing job")
    study_id = orthanc.study_id(study.study_uid)

    def flag_cleared() -> bool:  # route.lua's OnJobFailure removes the flag
        try:
            orthanc.get_text(f"/studies/{study_id}/metadata/CandorRouted")
            return False
        except urllib.error.HTTPError as error:
            return error.code == 404

    wait_until(flag_cleared, 30, what="routing flag cleared")
    gateway.start()
    orthanc.request("POST", f"/jobs/{failed[0]['ID']}/resubmit", b"{}")  # the operator's retry
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 120, what="results after resubmit")


def test_corrupt_and_unsupported_instances(tmp_path: Path,
                                           node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    orthanc, gateway = node()
    study = write_ct_study(tmp_path / "study", n_images=2)
    corrupt, corrupt_uid = write_truncated_ct(tmp_path / "study", study)
    pdf, pdf_uid = write_pdf_instance(tmp_path / "study", study)
    for path in [*study.paths, corrupt, pdf]:
        orthanc.upload(path)
    wait_until(lambda: results_arrived(orthanc, study.study_uid), 120, what="results for the usable instances")
    wait_until(lambda: gateway.hops("sent"), 30, what="sent hop (the job is then in done/)")
    (rejected,) = gateway.hops("rejected")
    assert rejected["rejected"] == 1 and rejected["study_uid"] == study.study_uid
    processed = gateway.hops("processed")[0]
    assert processed["instances"] == 4 and processed["skipped"] == 1
    done = list((gateway.spool / "done").iterdir())
    record = (done[0] / "job.json").read_text()
    assert corrupt_uid in record and pdf_uid in record
    assert_no_phi(gateway)


def _real_app_missing() -> str | None:
    """Why the real-app variant cannot run yet, or ``None`` if it can."""
    if importlib.util.find_spec("app") is None:
        return "app/ is not importable"
    probe = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    if probe.returncode != 0:
        return f"`python -m app --help` exits {probe.returncode}: {probe.stderr.strip()[-300:]}"
    try:
        from candor.dicom.synthetic import write_op_study  # noqa: F401
    except ImportError as error:
        return f"candor.dicom.synthetic.write_op_study unavailable: {error}"
    return None


def _models_folder(tmp_path: Path) -> Path:
    """``models/`` when it holds ``fundus_vessels``; else a throwaway 5-step model trained into ``tmp_path``.

    The throwaway model (``training.vessels.train``) only proves the plumbing; its results are
    meaningless. It lets this test run before the real weights are committed.
    """
    if (REPO / "models" / "fundus_vessels").is_dir():
        return REPO / "models"
    target = tmp_path / "models"
    result = subprocess.run([sys.executable, "-m", "training.vessels.train", "--out", str(target / "fundus_vessels"),
                             "--steps", "5", "--pool", "4", "--crop", "64", "--working-size", "128", "--batch", "2",
                             "--checkpoint-dir", str(tmp_path / "checkpoints")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip("models/fundus_vessels missing and a throwaway model could not be trained: "
                    + result.stderr.strip()[-300:])
    return target


@pytest.mark.slow
def test_real_app_via_orthanc(tmp_path: Path, node: Callable[..., tuple[Orthanc, GatewayProcess]]) -> None:
    reason = _real_app_missing()
    if reason:
        pytest.skip(f"real Candor app not ready: {reason}")
    from candor.dicom.synthetic import StudyIdentity, synthetic_fundus, write_op_study

    identity = StudyIdentity(patient_name=PATIENT_NAME, patient_id=PATIENT_ID,
                             study_instance_uid="2.25.314159265358979323846264338327950288")
    paths = write_op_study(tmp_path / "op", [synthetic_fundus(seed=1)], identity=identity, laterality="R")
    orthanc, gateway = node(app_command=f"{sys.executable} -m app", models=_models_folder(tmp_path),
                            extra=["--app-timeout", "900", "--app-attempts", "1"],
                            # fewer MC passes and one saliency method: this tests the plumbing, the
                            # app's own tests cover its outputs (and the full run takes ~8 min here)
                            env={"CANDOR_MC_SAMPLES": "4", "CANDOR_SALIENCY_METHODS": "gradient"})
    storescu("127.0.0.1", orthanc.dicom_port, orthanc.aet, paths)
    wait_until(lambda: gateway.hops("sent") or gateway.hops("dead-lettered"), 900, interval=1,
               what="the real app's results")
    dead = gateway.hops("dead-lettered")
    assert not dead, f"{dead}; app.log tail:\n{_app_log_tail(gateway)}"
    sent = gateway.hops("sent")[0]
    classes = gateway.hops("processed")[0]["output_classes"]
    names = {"1.2.840.10008.5.1.4.1.1.66.4": "SEG", "1.2.840.10008.5.1.4.1.1.7": "OT",
             "1.2.840.10008.5.1.4.1.1.88.22": "SR", "1.2.840.10008.5.1.4.1.1.88.33": "SR",
             "1.2.840.10008.5.1.4.1.1.88.34": "SR"}
    wanted = {names.get(uid, "?") for uid in classes}
    assert {"SEG", "OT"} <= wanted and sent["outputs"] == sum(classes.values())
    wait_until(lambda: results_arrived(orthanc, identity.study_instance_uid or "", wanted), 60,
               what=f"{sorted(wanted)} in the source study in Orthanc")
    assert_no_phi(gateway)


def _app_log_tail(gateway: GatewayProcess) -> str:
    logs = sorted(gateway.spool.rglob("app.log"))
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no app.log)"
