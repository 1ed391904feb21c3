"""The gateway as a real process: CLI, environment configuration, ``kill -9`` and restart.

The destination is an in-process fake PACS; the Orthanc tests are in ``test_gw_orthanc.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from collections.abc import Callable

import pytest
from gw_harness import REPO, FakePacs, GatewayProcess, echo, free_port, send_files, wait_until
from gw_studies import write_ct_study

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=60)


def runs(path: Path, event: str) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith(event)]


def test_missing_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run_cli("--port", "11112", "--spool", str(tmp_path))
    assert result.returncode == 2
    assert "--destination (or CANDOR_GATEWAY_DESTINATION) is required" in result.stderr


def test_environment_only_and_status_cli(tmp_path: Path, models_dir: Path, standin_command: str,
                                         fake_pacs: FakePacs) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "CANDOR_GATEWAY_PORT": str(port),
           "CANDOR_GATEWAY_AE_TITLE": "ENVNODE", "CANDOR_GATEWAY_BIND": "127.0.0.1",
           "CANDOR_GATEWAY_DESTINATION": fake_pacs.destination, "CANDOR_GATEWAY_SPOOL": str(tmp_path / "spool"),
           "CANDOR_GATEWAY_MODELS": str(models_dir), "CANDOR_GATEWAY_APP_COMMAND": standin_command,
           "CANDOR_GATEWAY_QUIET_SECONDS": "60"}
    log = (tmp_path / "gw.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: echo("127.0.0.1", port, "ENVNODE"), 60, what="C-ECHO")
        study = write_ct_study(tmp_path / "study", n_images=2)
        send_files("127.0.0.1", port, "ENVNODE", study.paths)
        status = run_cli("status", "--json", env={"CANDOR_GATEWAY_SPOOL": str(tmp_path / "spool")})
        snap = json.loads(status.stdout)
        assert snap["gateway"]["running"] and snap["gateway"]["ae_title"] == "ENVNODE"
        assert snap["receiving"] == 1 and snap["queue_depth"] == 0
        text = run_cli("status", "--spool", str(tmp_path / "spool")).stdout
        assert "gateway: running" in text and "receiving: 1" in text
        second = run_cli("--port", str(free_port()), "--destination", fake_pacs.destination, "--spool",
                         str(tmp_path / "spool"), "-m", str(models_dir))
        assert second.returncode == 1 and "another gateway" in second.stderr
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        log.close()
    assert "NOT running" in run_cli("status", "--spool", str(tmp_path / "spool")).stdout


def test_kill9_during_app_run_processes_once(tmp_path: Path, models_dir: Path, standin_command: str,
                                             fake_pacs: FakePacs,
                                             gateway_factory: Callable[..., GatewayProcess]) -> None:
    runlog = tmp_path / "runs.log"
    env = {"STANDIN_RUNLOG": str(runlog), "STANDIN_OUTPUTS": "sr", "STANDIN_DELAY": "30"}
    spool = tmp_path / "spool"
    first = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, env=env,
                            extra=["--quiet-seconds", "0.5"])
    first.start()
    study = write_ct_study(tmp_path / "study", n_images=2)
    send_files("127.0.0.1", first.port, "CANDOR", study.paths)
    wait_until(lambda: runs(runlog, "start"), 60, what="app started")
    first.kill9()  # the app (30 s delay) is orphaned mid-run
    second = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, port=first.port,
                             env={**env, "STANDIN_DELAY": "0"}, extra=["--quiet-seconds", "0.5"])
    second.start()
    wait_until(lambda: second.hops("sent"), 60, what="sent after restart")
    assert list(fake_pacs.received.values()) == [1]
    assert runs(runlog, "start") == [study.study_uid] * 2 and runs(runlog, "done") == [study.study_uid]
    assert [h["state"] for h in second.hops("recovered")] == ["processing"]


def test_kill9_mid_receive_then_resend_is_one_job(tmp_path: Path, models_dir: Path, standin_command: str,
                                                  fake_pacs: FakePacs,
                                                  gateway_factory: Callable[..., GatewayProcess]) -> None:
    env = {"STANDIN_OUTPUTS": "sr"}
    spool = tmp_path / "spool"
    extra = ["--quiet-seconds", "3"]
    first = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, env=env, extra=extra)
    first.start()
    study = write_ct_study(tmp_path / "study", n_images=4)
    send_files("127.0.0.1", first.port, "CANDOR", study.paths[:2])  # half the study, then the node dies
    first.kill9()
    second = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, port=first.port, env=env,
                             extra=extra)
    second.start()
    send_files("127.0.0.1", second.port, "CANDOR", study.paths)  # the sender retries the whole study
    wait_until(lambda: second.hops("sent"), 60, what="sent")
    (complete,) = second.hops("complete")
    assert complete["instances"] == 4
    assert len(second.hops("processed")) == 1 and list(fake_pacs.received.values()) == [1]


def test_sigterm_during_app_run_resumes_without_using_an_attempt(
        tmp_path: Path, models_dir: Path, standin_command: str, fake_pacs: FakePacs,
        gateway_factory: Callable[..., GatewayProcess]) -> None:
    runlog = tmp_path / "runs.log"
    env = {"STANDIN_RUNLOG": str(runlog), "STANDIN_OUTPUTS": "sr", "STANDIN_DELAY": "30"}
    spool = tmp_path / "spool"
    extra = ["--quiet-seconds", "0.5", "--app-attempts", "1"]
    first = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, env=env, extra=extra)
    first.start()
    study = write_ct_study(tmp_path / "study", n_images=1)
    send_files("127.0.0.1", first.port, "CANDOR", study.paths)
    wait_until(lambda: runs(runlog, "start"), 60, what="app started")
    assert first.stop() == 0
    second = gateway_factory(spool, models_dir, fake_pacs.destination, standin_command, port=first.port,
                             env={**env, "STANDIN_DELAY": "0"}, extra=extra)
    second.start()
    wait_until(lambda: second.hops("sent"), 60, what="sent after restart")
    assert not second.hops("dead-lettered")
