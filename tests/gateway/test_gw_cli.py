"""The ``status`` and ``requeue`` commands, run in-process on a spool built by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from gw_harness import audit_lines

from gateway.__main__ import main
from gateway.audit import AuditLog
from gateway.spool import COMPLETE, DEAD_LETTER, OUTBOX, Spool


def _spool_with_jobs(root: Path) -> tuple[Spool, str, str]:
    spool = Spool(root)
    spool.create()
    audit = AuditLog(root / "audit.jsonl")
    waiting = spool.create_job("1.2.3.1", "PACS")
    spool.move(waiting.job_id, "incoming", COMPLETE)
    dead = spool.create_job("1.2.3.2", "PACS")
    record = spool.load("incoming", dead.job_id)
    record.dead_letter_reason, record.dead_letter_stage = "destination refused: 0xA700", "send"
    record.outputs = [{"file": "x.dcm", "sop_class_uid": "1.2", "sop_instance_uid": "1.2.9", "transfer_syntax": "1.2"}]
    record.send_attempts = 8
    spool.save("incoming", record)
    spool.move(dead.job_id, "incoming", DEAD_LETTER)
    audit.record("dead-lettered", job=dead.job_id, study_uid="1.2.3.2", stage="send", reason="destination refused")
    return spool, waiting.job_id, dead.job_id


def test_status_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_jobs(tmp_path)
    assert main(["status", "--spool", str(tmp_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["queue_depth"] == 1 and snap["counts"][DEAD_LETTER] == 1 and not snap["gateway"]["running"]
    assert snap["dead_letter"][0]["reason"] == "destination refused: 0xA700"
    assert snap["last_errors"][0]["hop"] == "dead-lettered"
    assert main(["status", "--spool", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "NOT running" in text and "queue depth: 1" in text and "destination refused" in text


def test_status_sees_a_stale_heartbeat_as_not_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spool_with_jobs(tmp_path)
    (tmp_path / "gateway.json").write_text(json.dumps({"pid": 1, "heartbeat_at": time.time() - 3600}))
    main(["status", "--spool", str(tmp_path), "--json"])
    assert json.loads(capsys.readouterr().out)["gateway"]["running"] is False


def test_requeue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool, _, dead = _spool_with_jobs(tmp_path)
    assert main(["requeue", "--spool", str(tmp_path), dead]) == 0
    assert capsys.readouterr().out.strip() == f"{dead} -> {OUTBOX}"
    record = spool.load(OUTBOX, dead)
    assert record.send_attempts == 0 and record.dead_letter_reason is None
    assert audit_lines(tmp_path, "requeued")[0]["state"] == OUTBOX
    assert main(["requeue", "--spool", str(tmp_path), "no-such-job"]) == 2
    assert "no dead-lettered job" in capsys.readouterr().err


def test_missing_spool_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDOR_GATEWAY_SPOOL", raising=False)
    assert main(["status"]) == 2
    assert "CANDOR_GATEWAY_SPOOL" in capsys.readouterr().err
