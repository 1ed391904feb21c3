"""Spool primitives, audit log and the quiet timer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.audit import AuditLog, read_audit
from gateway.delivery import backoff_delay
from gateway.fsutil import read_json, safe_uid, write_json_atomic
from gateway.quiet import QuietTimer
from gateway.spool import COMPLETE, INCOMING, PROCESSING, Spool, SpoolLockedError


def test_safe_uid() -> None:
    assert safe_uid("1.2.840.10008.1") == "1.2.840.10008.1"
    assert "/" not in safe_uid("../../etc/passwd")
    with pytest.raises(ValueError):
        safe_uid("...")


def test_atomic_json_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_spool_transitions_and_lock(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.acquire()
    try:
        with pytest.raises(SpoolLockedError):
            Spool(tmp_path / "spool").acquire()
        record = spool.create_job("1.2.3", "PACS")
        assert spool.find(record.job_id) == INCOMING
        spool.move(record.job_id, INCOMING, COMPLETE)
        assert spool.find(record.job_id) == COMPLETE
        assert spool.load(COMPLETE, record.job_id).study_uid == "1.2.3"
        with pytest.raises(FileNotFoundError):
            spool.move(record.job_id, INCOMING, PROCESSING)
        later = spool.create_job("1.2.3", "PACS")
        spool.move(later.job_id, INCOMING, COMPLETE)
        assert spool.list_jobs(COMPLETE) == [record.job_id, later.job_id]  # oldest first
    finally:
        spool.release()
    Spool(tmp_path / "spool").acquire()  # released: free again


def test_delivered_and_ledger(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.create()
    record = spool.create_job("1.2.3", "PACS")
    spool.mark_delivered(INCOMING, record.job_id, ["1.9.1"])
    spool.mark_delivered(INCOMING, record.job_id, ["1.9.2"])
    assert set(spool.delivered(INCOMING, record.job_id)) == {"1.9.1", "1.9.2"}
    assert not spool.already_processed("1.2.3", {"1.1"})
    spool.add_to_ledger("1.2.3", {"1.1", "1.2"})
    assert spool.already_processed("1.2.3", {"1.1"})
    assert not spool.already_processed("1.2.3", {"1.1", "1.3"})
    assert not spool.already_processed("1.2.3", set())


def test_audit_rejects_unknown_fields_and_hops(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.record("received", job="j", study_uid="1.2")
    with pytest.raises(ValueError, match="possible PHI"):
        audit.record("received", patient_name="Doe^John")
    with pytest.raises(ValueError, match="unknown audit hop"):
        audit.record("teleported")
    with pytest.raises(TypeError):
        audit.record("sent", outputs=object())
    with (tmp_path / "audit.jsonl").open("a") as handle:
        handle.write('{"ts": "torn')  # a writer killed mid-line
    lines = read_audit(tmp_path / "audit.jsonl")
    assert [line["hop"] for line in lines] == ["received"]
    assert json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[0])["study_uid"] == "1.2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_quiet_timer_resets_and_waits_for_open_associations() -> None:
    clock = FakeClock()
    timer = QuietTimer(5.0, clock)
    timer.touch("job", association="A")
    clock.now += 4
    timer.touch("job", association="A")  # every instance resets the period
    clock.now += 4
    assert timer.due() == []
    clock.now += 2
    assert timer.due() == []  # quiet, but association A is still open
    timer.association_closed("A")
    assert timer.due() == ["job"]
    timer.forget("job")
    assert timer.due() == [] and timer.tracked() == []


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_delay(n, 2.0, 30.0) for n in range(0, 7)] == [0.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
