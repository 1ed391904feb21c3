"""Test harness of the gateway tests: Orthanc and gateway processes, a fake PACS, DICOM client helpers.

Orthanc runs from the Debian package on loopback with a configuration generated from
``examples/orthanc/orthanc.json`` and ``examples/orthanc/route.lua`` in a temporary
folder. Stopping it waits for the process to exit before anything reuses its storage
(reference §11: a restart racing the old process corrupts the SQLite index).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STANDIN_APP = HERE / "standin_app.py"
EXAMPLES = REPO / "examples" / "orthanc"
ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def require_tool(path: str, what: str) -> None:
    """Skip (or fail when ``CANDOR_REQUIRE_INTEGRATION=1``) if an external tool is missing."""
    if shutil.which(path) or Path(path).exists():
        return
    message = f"{what} not installed ({path}); run .ci/install-gateway-deps.sh"
    if os.environ.get("CANDOR_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


# -- Orthanc -------------------------------------------------------------------------------------
class Orthanc:
    """One Orthanc process on loopback with a generated configuration folder."""

    def __init__(self, root: Path, gateway_port: int, gateway_aet: str = "CANDOR", aet: str = "PACS") -> None:
        self.root = root
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.config_dir = root / "config"
        self.storage = root / "db"
        self.log_path = root / "orthanc.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = json.loads((EXAMPLES / "orthanc.json").read_text())
        lua = self.config_dir / "route.lua"
        shutil.copy(EXAMPLES / "route.lua", lua)
        config.update({
            "Name": "CandorTestPACS", "StorageDirectory": str(self.storage), "IndexDirectory": str(self.storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": aet, "StableAge": 2,
            "DicomModalities": {"CANDOR": [gateway_aet, "127.0.0.1", gateway_port]},
            "LuaScripts": [str(lua)], "HttpTimeout": 30, "DicomScuTimeout": 10,
        })
        (self.config_dir / "orthanc.json").write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([ORTHANC_BIN, "--verbose", str(self.config_dir)], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(self._alive, 30, what="Orthanc HTTP /system")

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Orthanc exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        try:
            self.get("/system")
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM and wait for the process to exit (its SQLite index must be closed before reuse)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- REST helpers ------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": content_type} if body is not None else {})
        with urllib.request.urlopen(req, timeout=30) as response:
            payload = response.read()
        return json.loads(payload) if payload.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return str(response.read().decode())

    def upload(self, path: Path) -> Any:
        return self.request("POST", "/instances", path.read_bytes(), "application/dicom")

    def study_id(self, study_uid: str) -> str | None:
        found = self.request("POST", "/tools/lookup", study_uid.encode(), "text/plain")
        for item in found or []:
            if item["Type"] == "Study":
                return str(item["ID"])
        return None

    def series_modalities(self, study_uid: str) -> dict[str, int]:
        """Modality → instance count in the study (sums over series)."""
        study = self.study_id(study_uid)
        if study is None:
            return {}
        counts: dict[str, int] = {}
        for series in self.get(f"/studies/{study}/series"):
            modality = series["MainDicomTags"].get("Modality", "")
            counts[modality] = counts.get(modality, 0) + len(series["Instances"])
        return counts

    def sop_instance_uids(self, study_uid: str) -> list[str]:
        study = self.study_id(study_uid)
        if study is None:
            return []
        return [i["MainDicomTags"]["SOPInstanceUID"] for i in self.get(f"/studies/{study}/instances")]


# -- gateway subprocess --------------------------------------------------------------------------
class GatewayProcess:
    """``python -m gateway`` as a child process, with its log in a file (grepped by the PHI test)."""

    def __init__(self, spool: Path, models: Path, destination: str, app_command: str, *, port: int | None = None,
                 ae_title: str = "CANDOR", env: dict[str, str] | None = None, extra: list[str] | None = None,
                 log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.spool = spool
        self.ae_title = ae_title
        self.log_path = log_path or spool.parent / "gateway.log"
        self.argv = [sys.executable, "-m", "gateway", "--port", str(self.port), "--ae-title", ae_title,
                     "--bind", "127.0.0.1", "--destination", destination, "--spool", str(spool), "-m", str(models),
                     "--app-command", app_command, *(extra or [])]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env)
        log.close()
        wait_until(self._ready, 60, what="gateway C-ECHO")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log_tail()}")
        return echo("127.0.0.1", self.port, self.ae_title)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=10)
        self.proc = None
        return code

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def audit(self) -> list[dict[str, Any]]:
        path = self.spool / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def hops(self, hop: str) -> list[dict[str, Any]]:
        return [entry for entry in self.audit() if entry["hop"] == hop]


# -- DICOM client helpers ----------------------------------------------------------------------------
def echo(host: str, port: int, ae_title: str) -> bool:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title="GWTEST")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.connection_timeout = 2
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def send_files(host: str, port: int, ae_title: str, paths: list[Path], calling_ae: str = "GWTEST") -> list[int]:
    """C-STORE ``paths`` over one association; return the status of each (-1 = no response)."""
    import pydicom
    from pynetdicom import AE

    datasets = [pydicom.dcmread(p) for p in paths]
    ae = AE(ae_title=calling_ae)
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class)
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        raise ConnectionError(f"association with {ae_title}@{host}:{port} not established")
    statuses = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
    finally:
        assoc.release()
    return statuses


def storescu(host: str, port: int, ae_title: str, paths: list[Path], calling_ae: str = "MODALITY") -> None:
    """Send with dcmtk's storescu (``-R``: propose only the files' SOP classes, needed for SEG/SR)."""
    require_tool("/usr/bin/storescu", "dcmtk")
    subprocess.run(["/usr/bin/storescu", "-R", "-aet", calling_ae, "-aec", ae_title, host, str(port),
                    *map(str, paths)], check=True, capture_output=True, timeout=120)


# -- in-process fakes ------------------------------------------------------------------------------
class FakePacs:
    """A pynetdicom C-STORE SCP standing in for the destination: records what arrives and what was proposed."""

    def __init__(self, ae_title: str = "PACS", port: int | None = None, status: int = 0x0000) -> None:
        self.ae_title = ae_title
        self.port = port or free_port()
        self.status = status
        self.received: dict[str, int] = {}      # SOP Instance UID -> times received
        self.modalities: dict[str, str] = {}    # SOP Instance UID -> Modality
        self.studies: dict[str, str] = {}       # SOP Instance UID -> StudyInstanceUID
        self.proposed: list[list[str]] = []     # per association: abstract syntaxes proposed
        self._server: Any = None

    def start(self) -> FakePacs:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts

        def on_requested(event: Any) -> None:
            contexts = event.assoc.requestor.primitive.presentation_context_definition_list
            self.proposed.append([str(cx.abstract_syntax) for cx in contexts])

        def on_store(event: Any) -> int:
            ds = event.dataset
            uid = str(ds.SOPInstanceUID)
            self.received[uid] = self.received.get(uid, 0) + 1
            self.modalities[uid] = str(ds.get("Modality", ""))
            self.studies[uid] = str(ds.get("StudyInstanceUID", ""))
            return self.status

        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_REQUESTED, on_requested),
                                                     (evt.EVT_C_STORE, on_store)])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"


def app_runs(tmp_path: Path, event: str = "done") -> list[str]:
    """Study UIDs of stand-in runs that reached ``event`` (from its run log)."""
    path = tmp_path / "runs.log"
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith(event + " ")]


def audit_lines(spool: Path, hop: str | None = None) -> list[dict[str, Any]]:
    path = spool / "audit.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if hop is None or line["hop"] == hop]
