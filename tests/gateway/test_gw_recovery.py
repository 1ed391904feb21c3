"""Crash recovery: a spool left in every intermediate state resumes correctly at start-up.

The states are built the way a killed gateway leaves them (``kill -9`` tests with real
processes are in ``test_gw_process.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from gw_harness import FakePacs, app_runs, audit_lines, wait_until
from gw_studies import Study, write_ct_study

from gateway.runner import process_start_ticks
from gateway.spool import COMPLETE, DEAD_LETTER, INCOMING, INSTANCES, OUT, OUTBOX, PROCESSING, Spool


def make_job(spool_root: Path, study: Study, state: str, **fields: Any) -> str:
    """Create a job holding ``study``'s instances in ``state`` (as a crash would leave it)."""
    spool = Spool(spool_root)
    spool.create()
    record = spool.create_job(study.study_uid, "PACS")
    folder = spool.job_dir(INCOMING, record.job_id)
    for path, uid in zip(study.paths, study.sop_uids, strict=True):
        shutil.copy(path, folder / INSTANCES / f"{uid}.dcm")
    record.instances = len(study.paths)
    record.complete_at = time.time()
    for key, value in fields.items():
        setattr(record, key, value)
    spool.save(INCOMING, record)
    if state != INCOMING:
        spool.move(record.job_id, INCOMING, state)
    return record.job_id


def test_interrupted_app_run_is_rerun_once(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                           fake_pacs: FakePacs) -> None:
    study = write_ct_study(tmp_path / "study", n_images=2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    job_id = make_job(tmp_path / "spool", study, PROCESSING, app_attempts=1, app_pid=dead.pid, app_pid_start=1)
    (tmp_path / "spool" / PROCESSING / job_id / OUT).mkdir()
    (tmp_path / "spool" / PROCESSING / job_id / OUT / "half-written.dcm").write_bytes(b"partial")
    gateway = inproc_gateway(app_attempts=2)
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    assert [line["state"] for line in audit_lines(gateway.spool.root, "recovered")] == [PROCESSING]
    assert app_runs(tmp_path) == [study.study_uid]
    assert list(fake_pacs.received.values()) == [1]  # the half-written file was discarded, not sent
    assert audit_lines(gateway.spool.root, "processed")[0]["attempt"] == 2


def test_orphaned_app_is_killed_before_rerun(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    study = write_ct_study(tmp_path / "study", n_images=1)
    orphan = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        ticks = process_start_ticks(orphan.pid)
        make_job(tmp_path / "spool", study, PROCESSING, app_attempts=1, app_pid=orphan.pid, app_pid_start=ticks)
        gateway = inproc_gateway(app_attempts=2)
        assert orphan.wait(timeout=10) == -9  # killed by recovery (SIGKILL)
        wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 60, what="sent")
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_crash_loop_is_dead_lettered(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    study = write_ct_study(tmp_path / "study", n_images=1)
    make_job(tmp_path / "spool", study, PROCESSING, app_attempts=2)
    gateway = inproc_gateway(app_attempts=2)
    (line,) = audit_lines(gateway.spool.root, "dead-lettered")
    assert "interrupted" in line["reason"] and gateway.spool.list_jobs(DEAD_LETTER)
    assert app_runs(tmp_path, "start") == []


def test_partial_delivery_sends_only_the_rest(tmp_path: Path, inproc_gateway: Callable[..., Any],
                                              fake_pacs: FakePacs) -> None:
    study = write_ct_study(tmp_path / "study", n_images=1)
    results = write_ct_study(tmp_path / "results", n_images=3, tag="study")  # same study: valid "outputs"
    job_id = make_job(tmp_path / "spool", study, OUTBOX)
    spool = Spool(tmp_path / "spool")
    out = spool.job_dir(OUTBOX, job_id) / OUT
    out.mkdir()
    outputs = []
    for path, uid in zip(results.paths, results.sop_uids, strict=True):
        shutil.copy(path, out / path.name)
        outputs.append({"file": path.name, "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "sop_instance_uid": uid,
                        "transfer_syntax": "1.2.840.10008.1.2.1"})
    record = spool.load(OUTBOX, job_id)
    record.outputs = outputs
    spool.save(OUTBOX, record)
    spool.mark_delivered(OUTBOX, job_id, [results.sop_uids[0]])  # acknowledged before the crash
    gateway = inproc_gateway()
    wait_until(lambda: audit_lines(gateway.spool.root, "sent"), 30, what="sent")
    assert fake_pacs.received == {uid: 1 for uid in results.sop_uids[1:]}
    assert app_runs(tmp_path, "start") == []


def test_incoming_and_complete_jobs_resume(tmp_path: Path, inproc_gateway: Callable[..., Any]) -> None:
    first = write_ct_study(tmp_path / "a", n_images=1, tag="a")
    second = write_ct_study(tmp_path / "b", n_images=1, tag="b")
    make_job(tmp_path / "spool", first, INCOMING)
    make_job(tmp_path / "spool", second, COMPLETE)
    (tmp_path / "spool" / "tmp").mkdir(exist_ok=True)
    (tmp_path / "spool" / "tmp" / "x.part").write_bytes(b"never acknowledged")
    gateway = inproc_gateway()
    wait_until(lambda: len(audit_lines(gateway.spool.root, "sent")) == 2, 60, what="both sent")
    assert sorted(app_runs(tmp_path)) == sorted([first.study_uid, second.study_uid])
    assert list(gateway.spool.tmp.iterdir()) == []
