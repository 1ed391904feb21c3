"""The whole node in-process: SCP → spool → quiet timer → stand-in app → delivery to a fake PACS.

The stand-in app runs as a real subprocess (``STANDIN_OUTPUTS=sr``: one SR per study, fast).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from collections.abc import Callable
from typing import Any

import pytest
from gw_harness import FakePacs, app_runs, audit_lines, send_files, wait_until
from gw_studies import (PATIENT_ID, PATIENT_NAME, ct_instance, uid_from, write_ct_study, write_pdf_instance,
                        write_truncated_ct)
from pynetdicom import AE

from gateway.deadletter import requeue
from gateway.scp import STATUS_CANNOT_UNDERSTAND
from gateway.spool import DEAD_LETTER, DONE, INCOMING, STATES
from gateway.watermark import DiskState, Watermark

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"


def hops(spool: Path) -> list[str]:
    return [line["hop"] for line in audit_lines(spool)]


def send_study(gateway: Any, paths: list[Path], calling_ae: str = "PACS") -> list[int]:
    return send_files("127.0.0.1", gateway.settings.port, gateway.settings.ae_title, paths, calling_ae)


def test_round_trip(tmp_path: Path, inproc_gateway: Callable[..., Any], fake_pacs: FakePacs) -> None:
    gateway = inproc_gateway()
    study = write_ct_study(tmp_path / "study", n_images=3)
    assert send_study(gateway, study.paths) == [0, 0, 0]
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    assert len(fake_pacs.received) == 1 and list(fake_pacs.received.values()) == [1]
    (result_uid,) = fake_pacs.received
    assert fake_pacs.studies[result_uid] == study.study_uid and fake_pacs.modalities[result_uid] == "SR"
    assert fake_pacs.proposed == [[SR_CLASS]]  # only the SOP classes being sent
    assert hops(gateway.spool.root) == ["received", "complete", "processed", "sent"]
    complete, processed, sent = (audit_lines(gateway.spool.root, h)[0] for h in ("complete", "processed", "sent"))
    assert complete["instances"] == 3 and complete["quiet_ms"] >= 400
    assert processed["outputs"] == 1 and processed["app_ms"] > 0 and processed["output_classes"] == {SR_CLASS: 1}
    assert sent["send_ms"] >= 0 and sent["total_ms"] >= processed["app_ms"]
    assert all(line["study_uid"] == study.study_uid for line in audit_lines(gateway.spool.root))
    # retention 0: the spool is clean, the ledger remembers the study
    wait_until(lambda: all(gateway.spool.list_jobs(state) == [] for state in STATES), 10, what="clean spool")
    assert gateway.spool.already_processed(study.study_uid, set(study.sop_uids))
    assert app_runs(tmp_path) == [study.study_uid]


def test_acknowledged_means_on_disk(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    import pydicom

    gateway = inproc_gateway(quiet_seconds=60)
    study = write_ct_study(tmp_path / "study", n_images=2)
    assert send_study(gateway, study.paths) == [0, 0]
    (job_id,) = gateway.spool.list_jobs(INCOMING)
    files = sorted((gateway.spool.job_dir(INCOMING, job_id) / "instances").iterdir())
    assert sorted(f.stem for f in files) == sorted(study.sop_uids)
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == study.study_uid and len(ds.PixelData) == 32 * 32 * 2
    assert list(gateway.spool.tmp.iterdir()) == []


def test_duplicate_and_late_arrivals(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    gateway = inproc_gateway()
    study = write_ct_study(tmp_path / "study", n_images=2)
    send_study(gateway, study.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    send_study(gateway, study.paths)  # the PACS re-sends the same study
    wait_until(lambda: audit_lines(gateway.spool.root, "duplicate"), 30, what="duplicate")
    assert len(app_runs(tmp_path)) == 1
    ds = ct_instance(study.study_uid, uid_from(study.study_uid, "series"), 7)  # a new slice arrives late
    path = tmp_path / "late.dcm"
    ds.save_as(path, enforce_file_format=True)
    send_study(gateway, [path])
    wait_until(lambda: len(audit_lines(gateway.spool.root, "sent")) == 2, 60, what="second job sent")
    assert len(app_runs(tmp_path)) == 2
    jobs = {line["job"] for line in audit_lines(gateway.spool.root, "complete")}
    assert len(jobs) == 3  # original, duplicate, late arrival: three jobs of one study


def test_allowed_callers(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    gateway = inproc_gateway(allowed_callers=("PACS",))
    study = write_ct_study(tmp_path / "study", n_images=1)
    with pytest.raises(ConnectionError):
        send_study(gateway, study.paths, calling_ae="INTRUDER")
    assert send_study(gateway, study.paths, calling_ae="PACS") == [0]
    (refused,) = audit_lines(gateway.spool.root, "refused")
    assert refused["calling_ae"] == "INTRUDER" and "not allowed" in refused["reason"]


class LowDisk(Watermark):
    def check(self) -> DiskState:
        return DiskState(free_mb=10, min_free_mb=100)


def test_watermark_refuses_associations(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    gateway = inproc_gateway(watermark=LowDisk(tmp_path, 100))
    ae = AE(ae_title="PACS")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", gateway.settings.port, ae_title="CANDOR")
    assert assoc.is_rejected
    (refused,) = audit_lines(gateway.spool.root, "refused")
    assert refused["reason"] == "disk below watermark" and refused["free_mb"] == 10


class _Event:
    """Minimal stand-in for a pynetdicom C-STORE event whose dataset cannot be decoded."""

    def __init__(self, data: bytes) -> None:
        self.assoc = SimpleNamespace(requestor=SimpleNamespace(ae_title="PACS"))
        self.request = SimpleNamespace(AffectedSOPInstanceUID="1.2.3.4")
        self._data = data

    def encoded_dataset(self, include_meta: bool = True) -> bytes:
        return self._data

    @property
    def dataset(self) -> Any:
        raise ValueError("cannot decode")


def test_undecodable_and_studyless_instances_quarantined(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    gateway = inproc_gateway(quiet_seconds=60)
    assert gateway.scp._on_store(_Event(b"\x00garbage")) == STATUS_CANNOT_UNDERSTAND
    study = write_ct_study(tmp_path / "study", n_images=1)
    import pydicom

    ds = pydicom.dcmread(study.paths[0])
    del ds.StudyInstanceUID
    path = tmp_path / "nostudy.dcm"
    ds.save_as(path)
    assert send_study(gateway, [path]) == [STATUS_CANNOT_UNDERSTAND]
    assert len(list(gateway.spool.quarantine.glob("*.dcm"))) == 2
    reasons = sorted(line["reason"] for line in audit_lines(gateway.spool.root, "rejected"))
    assert reasons == ["no StudyInstanceUID", "undecodable dataset (ValueError)"]
    assert gateway.spool.list_jobs(INCOMING) == []


def test_app_failure_is_retried(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_FAIL_FIRST", str(tmp_path / "failed-once"))
    gateway = inproc_gateway(app_attempts=2)
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_study(gateway, study.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent after a retry")
    (failed,) = audit_lines(gateway.spool.root, "failed")
    assert failed["stage"] == "app" and failed["exit_code"] == 1 and failed["attempt"] == 1
    assert audit_lines(gateway.spool.root, "processed")[0]["attempt"] == 2


def test_bad_settings_dead_letters_and_node_keeps_serving(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           fake_pacs: FakePacs) -> None:
    monkeypatch.setenv("STANDIN_EXIT", "2")
    gateway = inproc_gateway(retention=600.0)
    first = write_ct_study(tmp_path / "a", n_images=1, tag="a")
    send_study(gateway, first.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "dead-lettered"), 60, what="dead-letter")
    (job_id,) = gateway.spool.list_jobs(DEAD_LETTER)
    record = gateway.spool.load(DEAD_LETTER, job_id)
    assert "exit 2" in (record.dead_letter_reason or "") and record.app_attempts == 1
    monkeypatch.delenv("STANDIN_EXIT")
    second = write_ct_study(tmp_path / "b", n_images=1, tag="b")
    send_study(gateway, second.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="next study sent")
    assert requeue(gateway.spool, gateway.audit, job_id) == "complete"  # what the CLI does; the node rescans
    wait_until(lambda: len(audit_lines(gateway.spool.root, "sent")) == 2, 60, what="requeued study sent")
    assert {fake_pacs.studies[uid] for uid in fake_pacs.received} == {first.study_uid, second.study_uid}


def test_app_timeout_kills_it(tmp_path: Path, inproc_gateway: Callable[..., Any],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_DELAY", "60")
    gateway = inproc_gateway(app_timeout=3.0, app_attempts=1)
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_study(gateway, study.paths)
    line = wait_until(lambda: audit_lines(gateway.spool.root, "dead-lettered"), 60, what="dead-letter")[0]
    assert "timed out" in line["reason"]
    assert app_runs(tmp_path) == []  # killed before it finished (it may not even have reached "start")


def test_destination_down_backoff_dead_letter_requeue(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                                      fake_pacs: FakePacs) -> None:
    fake_pacs.stop()
    gateway = inproc_gateway(send_attempts=3, backoff_base=0.2)
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_study(gateway, study.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "dead-lettered"), 60, what="dead-letter")
    failed = audit_lines(gateway.spool.root, "failed")
    assert [(f["attempt"], f["retry_in_s"]) for f in failed] == [(1, 0.2), (2, 0.4)]
    (job_id,) = gateway.spool.list_jobs(DEAD_LETTER)
    assert "gave up after 3" in (gateway.spool.load(DEAD_LETTER, job_id).dead_letter_reason or "")
    back = FakePacs(port=fake_pacs.port).start()
    try:
        assert requeue(gateway.spool, gateway.audit, job_id) == "outbox"
        wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 30, what="delivered after requeue")
        assert list(back.received.values()) == [1]
        assert len(app_runs(tmp_path)) == 1  # not re-processed, only re-sent
    finally:
        back.stop()


def test_destination_back_before_giving_up(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                           fake_pacs: FakePacs) -> None:
    fake_pacs.stop()
    gateway = inproc_gateway(send_attempts=20, backoff_base=0.3)
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_study(gateway, study.paths)
    wait_until(lambda: audit_lines(gateway.spool.root, "failed"), 60, what="a failed delivery")
    back = FakePacs(port=fake_pacs.port).start()
    try:
        wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 30, what="delivery")
        assert list(back.received.values()) == [1]
    finally:
        back.stop()


def test_corrupt_and_unsupported_reported_rest_processed(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                                         fake_pacs: FakePacs) -> None:
    gateway = inproc_gateway(retention=600.0)
    study = write_ct_study(tmp_path / "study", n_images=2)
    corrupt, corrupt_uid = write_truncated_ct(tmp_path / "study", study)
    pdf, pdf_uid = write_pdf_instance(tmp_path / "study", study)
    assert send_study(gateway, [*study.paths, corrupt, pdf]) == [0, 0, 0, 0]
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    (rejected,) = audit_lines(gateway.spool.root, "rejected")
    assert rejected["rejected"] == 1 and "shorter" in rejected["reason"]
    assert audit_lines(gateway.spool.root, "processed")[0]["skipped"] == 1
    (job_id,) = gateway.spool.list_jobs(DONE)
    record = gateway.spool.load(DONE, job_id)
    by = {r["sop_instance_uid"]: r["by"] for r in record.rejected}
    assert by == {corrupt_uid: "gateway", pdf_uid: "app"}
    assert len(fake_pacs.received) == 1


def test_no_patient_data_in_audit_logs_or_metadata(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="gateway")
    gateway = inproc_gateway(retention=600.0, send_attempts=1)
    study = write_ct_study(tmp_path / "study", n_images=2)
    corrupt, _ = write_truncated_ct(tmp_path / "study", study)
    send_study(gateway, [*study.paths, corrupt])
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    texts = {"log": caplog.text}
    for path in gateway.spool.root.rglob("*"):
        if path.is_file() and path.suffix != ".dcm":
            texts[str(path)] = path.read_text(errors="replace")
    assert any("audit.jsonl" in name for name in texts) and any("job.json" in name for name in texts)
    needles = [PATIENT_ID, *PATIENT_NAME.split("^")]
    leaks = [(name, needle) for name, text in texts.items() for needle in needles if needle in text]
    assert leaks == []
    # sanity: the patient data really is in the spooled instances
    assert any(PATIENT_ID.encode() in p.read_bytes() for p in gateway.spool.root.rglob("*.dcm"))


def test_status_endpoint(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    import urllib.request

    from gw_harness import free_port

    port = free_port()
    gateway = inproc_gateway(status_port=port, quiet_seconds=60)
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_study(gateway, study.paths)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
        snap = json.loads(response.read())
    assert snap["receiving"] == 1 and snap["queue_depth"] == 0 and snap["gateway"]["running"]
    assert snap["gateway"]["pid"] == os.getpid() and snap["disk_free_mb"] > 0
