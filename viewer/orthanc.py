"""Start and stop a throw-away Orthanc (Debian package) on loopback, with its DICOMweb plug-in.

Orthanc is the test PACS of Candor's viewer and conformance checks
(``shared/reference/dicom-outputs-and-pacs.md`` §9). There is no init system, so
:class:`OrthancServer` runs the binary itself:

* the configuration is written as JSON into a work folder of the caller's
  choosing (a pytest temporary folder, ``build/viewer``), next to the storage
  and the log, so nothing outside that folder is touched;
* the HTTP and DICOM ports are free loopback ports picked at start;
* :meth:`OrthancServer.start` returns once ``/system`` answers;
* :meth:`OrthancServer.stop` terminates the process and *waits for it to
  exit*: a new Orthanc on the same storage while the old one still holds the
  SQLite index fails with "database is locked" (reference §11, restart race).

Instances go in either over HTTP (:meth:`OrthancServer.upload`, what the
viewer needs) or over DICOM with a C-STORE from pynetdicom
(:meth:`OrthancServer.c_store`, what a hospital modality or Candor's sender
does); the latter returns the DIMSE status so callers can require 0x0000.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydicom import Dataset, dcmread

LOGGER = logging.getLogger(__name__)

#: Where Debian's orthanc-dicomweb package installs the plug-in.
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

#: Called AE title of the throw-away PACS.
PACS_AET = "CANDORPACS"

_STOP_TIMEOUT_S = 20.0
_PORT_ATTEMPTS = 3


class OrthancError(RuntimeError):
    """Orthanc could not be started, did not answer, or refused a request."""


class _PortInUse(Exception):
    """Orthanc exited at start because one of its ports was taken (message: its log)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a small race remains until it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def orthanc_binary() -> Path:
    """Path of the Orthanc executable (``/usr/sbin`` is not always on a non-root PATH).

    Raises
    ------
    OrthancError
        If Orthanc is not installed (see ``.ci/install-viewer-deps.sh``).
    """
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").is_file() else None)
    if found is None:
        raise OrthancError("Orthanc is not installed; run .ci/install-viewer-deps.sh "
                           "(apt-get install orthanc orthanc-dicomweb)")
    return Path(found)


@dataclass(frozen=True)
class OrthancPorts:
    """The two loopback ports one Orthanc listens on."""

    http: int
    dicom: int


def orthanc_config(storage: Path, ports: OrthancPorts, *, plugins: Iterable[Path],
                   name: str = "Candor test PACS") -> dict[str, Any]:
    """The Orthanc configuration: loopback-only HTTP, no authentication, DICOMweb at ``/dicom-web/``.

    ``DicomWeb.Host`` is left unset so that the plug-in writes BulkDataURIs
    with the ``Host`` header of each request: behind the viewer's same-origin
    proxy (which forwards the browser's ``Host``) they point at the proxy.
    """
    return {
        "Name": name,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": ports.http,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": PACS_AET,
        "DicomPort": ports.dicom,
        "DicomCheckCalledAet": False,
        "UnknownSopClassAccepted": False,
        "OverwriteInstances": True,
        "StableAge": 2,
        "HttpTimeout": 60,
        "Plugins": [str(p) for p in plugins],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "WadoRoot": "/wado",
            "Ssl": False,
            "StudiesMetadata": "Full",
            "SeriesMetadata": "Full",
        },
    }


class OrthancServer:
    """One Orthanc process with its configuration, storage and log in ``workdir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, workdir: str | Path, *, ports: OrthancPorts | None = None) -> None:
        self.workdir = Path(workdir)
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    # -- life cycle -------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "orthanc.log"

    @property
    def base_url(self) -> str:
        if self.ports is None:
            raise OrthancError("Orthanc has not been started")
        return f"http://127.0.0.1:{self.ports.http}"

    def start(self, timeout: float = 60.0) -> Self:
        """Write the configuration, start Orthanc and wait until ``/system`` answers.

        When the ports were picked here and another process took one of them
        between the pick and Orthanc's bind (the machine is shared), Orthanc
        exits with "already in use"; it is then started again on fresh ports,
        at most :data:`_PORT_ATTEMPTS` times, each retry logged.

        Raises
        ------
        OrthancError
            If the binary or the DICOMweb plug-in is missing, or Orthanc exits or
            does not answer within ``timeout`` seconds (the log tail is included).
        """
        if self.process is not None:
            raise OrthancError("this Orthanc is already running")
        if not DICOMWEB_PLUGIN.is_file():
            raise OrthancError(f"{DICOMWEB_PLUGIN} is missing; install the Debian package orthanc-dicomweb")
        pick_ports = self.ports is None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if pick_ports:
                self.ports = OrthancPorts(http=free_port(), dicom=free_port())
            try:
                return self._start_once(timeout)
            except _PortInUse as error:
                if not pick_ports or attempt == _PORT_ATTEMPTS:
                    raise OrthancError(f"Orthanc could not bind its ports {self.ports}:\n{error}") from None
                LOGGER.warning("Orthanc port %s taken meanwhile (attempt %d); retrying on fresh ports",
                               self.ports, attempt)
        raise OrthancError("unreachable: the start loop returns or raises")

    def _start_once(self, timeout: float) -> Self:
        """One start on ``self.ports``; raises :class:`_PortInUse` when Orthanc cannot bind them."""
        if self.ports is None:
            raise OrthancError("no ports chosen")
        binary = orthanc_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "db"
        storage.mkdir(exist_ok=True)
        config_dir = self.workdir / "config"
        config_dir.mkdir(exist_ok=True)
        # A name of its own: /system must come from this process, not from another Orthanc that took the port.
        name = f"Candor test PACS {uuid.uuid4().hex[:12]}"
        config = orthanc_config(storage, self.ports, plugins=[DICOMWEB_PLUGIN], name=name)
        (config_dir / "orthanc.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        log_offset = self.log_path.stat().st_size if self.log_path.is_file() else 0
        self._log_handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(binary), str(config_dir / "orthanc.json")],
            stdout=self._log_handle, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        LOGGER.info("started Orthanc pid %d (HTTP %d, DICOM %d), log %s",
                    self.process.pid, self.ports.http, self.ports.dicom, self.log_path)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                status = self.process.returncode
                self._close_log()
                self.process = None
                new_log = self.log_path.read_bytes()[log_offset:].decode("utf-8", errors="replace")
                if "already in use" in new_log:
                    raise _PortInUse(new_log[-2000:])
                raise OrthancError(f"Orthanc exited with status {status} while starting:\n{self.log_tail()}")
            try:
                system = self.get_json("/system")
            except (urllib.error.URLError, ConnectionError, OSError):
                system = None
            if system is not None and system.get("Name") == name:
                LOGGER.info("Orthanc %s answers on %s", system.get("Version"), self.base_url)
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise OrthancError(f"Orthanc did not answer /system within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Terminate Orthanc and wait until the process has exited (killing it after ``timeout``)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                LOGGER.warning("Orthanc pid %d did not stop within %.0f s; killing it", process.pid, timeout)
                process.kill()
                process.wait(timeout=timeout)
        LOGGER.info("Orthanc pid %d exited with status %s", process.pid, process.returncode)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def log_tail(self, characters: int = 4000) -> str:
        """The end of Orthanc's log, for error messages."""
        if not self.log_path.is_file():
            return "(no log)"
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- REST ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> bytes:
        """One REST call; returns the body. Raises :class:`OrthancError` on an HTTP error status."""
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:1000]
            raise OrthancError(f"Orthanc {method} {path} answered {error.code}: {detail}") from None

    def get_json(self, path: str) -> Any:
        return json.loads(self.request("GET", path, timeout=5.0))

    def upload(self, path: str | Path) -> dict[str, Any]:
        """Store one Part-10 file through ``POST /instances``; returns Orthanc's answer (ID, Status)."""
        answer = json.loads(self.request("POST", "/instances", Path(path).read_bytes(),
                                         {"Content-Type": "application/dicom"}))
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise OrthancError(f"Orthanc did not store {path}: {answer}")
        return answer

    def c_store(self, paths: Iterable[str | Path], *, calling_aet: str = "CANDOR") -> dict[Path, int]:
        """Send Part-10 files with DICOM C-STORE in one association; returns the DIMSE status of each.

        One presentation context is proposed per (SOP class, transfer syntax)
        pair found in the files, so compressed files travel as they are.

        Raises
        ------
        OrthancError
            If the association is refused or a C-STORE gets no response.
        """
        from pynetdicom import AE

        if self.ports is None:
            raise OrthancError("Orthanc has not been started")
        datasets: list[tuple[Path, Dataset]] = [(Path(p), dcmread(p)) for p in paths]
        ae = AE(ae_title=calling_aet)
        contexts = sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets})
        for sop_class, syntax in contexts:
            ae.add_requested_context(sop_class, [syntax])
        association = ae.associate("127.0.0.1", self.ports.dicom, ae_title=PACS_AET)
        if not association.is_established:
            raise OrthancError(f"Orthanc refused the association for contexts {contexts}:\n{self.log_tail()}")
        statuses: dict[Path, int] = {}
        try:
            for path, dataset in datasets:
                response = association.send_c_store(dataset)
                if "Status" not in response:
                    raise OrthancError(f"no C-STORE response for {path.name} (association aborted?):\n"
                                       f"{self.log_tail()}")
                statuses[path] = int(response.Status)
        finally:
            association.release()
        return statuses
