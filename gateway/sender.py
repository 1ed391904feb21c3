"""Send result files to the destination: DIMSE C-STORE (SCU) or DICOMweb STOW-RS.

Both clients report each acknowledged instance through ``on_delivered`` as soon as the
destination confirms it, so a crash mid-delivery resends only what is missing. Any
failure raises :class:`SendError`; retries and dead-lettering are the caller's policy.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from gateway.settings import Destination, DimseDestination, StowDestination

LOGGER = logging.getLogger(__name__)

#: C-STORE statuses that mean "stored" (PS3.4 Table B.2-1): success and the three warnings.
STORED_STATUSES = {0x0000: None, 0xB000: "coercion of data elements", 0xB006: "elements discarded",
                   0xB007: "data set does not match SOP class"}
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association


class SendError(RuntimeError):
    """Delivery failed; the message says why (shown in the audit and the dead-letter reason)."""


@dataclass(frozen=True)
class OutputFile:
    """One result file and the header fields the sender needs."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


class Sender(Protocol):
    def send(self, files: list[OutputFile], on_delivered: Callable[[list[str]], None]) -> list[str]:
        """Deliver ``files``; return warnings; raise :class:`SendError` on failure."""
        ...


def _transfer_syntaxes(file_syntax: str) -> list[str]:
    """What to propose for a file: its own syntax, plus both little-endian ones if uncompressed."""
    syntax = UID(file_syntax)
    proposed = [str(syntax)]
    if not syntax.is_compressed:
        proposed += [s for s in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if s != syntax]
    return proposed


def presentation_contexts(files: list[OutputFile]) -> dict[str, list[str]]:
    """SOP class → transfer syntaxes to propose: exactly the classes being sent.

    Proposing every storage class is a classic way to get rejected by picky PACS; proposing
    only what we send also makes "no presentation context accepted" errors specific.
    """
    contexts: dict[str, list[str]] = {}
    for item in files:
        syntaxes = contexts.setdefault(item.sop_class_uid, [])
        for syntax in _transfer_syntaxes(item.transfer_syntax):
            if syntax not in syntaxes:
                syntaxes.append(syntax)
    if len(contexts) > MAX_CONTEXTS:
        raise SendError(f"{len(contexts)} SOP classes exceed the {MAX_CONTEXTS} presentation contexts limit")
    return contexts


class DimseSender:
    """C-STORE SCU to one destination, one association per delivery."""

    def __init__(self, destination: DimseDestination, calling_ae: str, timeout_s: float) -> None:
        self.destination = destination
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s

    def send(self, files: list[OutputFile], on_delivered: Callable[[list[str]], None]) -> list[str]:
        if not files:
            return []
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.connection_timeout = self.timeout_s
        for sop_class, syntaxes in presentation_contexts(files).items():
            ae.add_requested_context(sop_class, syntaxes)
        dest = self.destination
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
        if not assoc.is_established:
            state = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "not established"
            raise SendError(f"association with {dest.describe()} {state}")
        warnings: list[str] = []
        try:
            for item in files:
                try:
                    status = assoc.send_c_store(item.path)
                except (ValueError, AttributeError, RuntimeError, OSError) as error:
                    # ValueError: no accepted context for this SOP class / transfer syntax
                    raise SendError(f"cannot send {item.sop_instance_uid}: {error}") from error
                code = status.get("Status") if status else None
                if code is None:
                    raise SendError(f"no C-STORE response for {item.sop_instance_uid} (association lost)")
                if code not in STORED_STATUSES:
                    raise SendError(f"{dest.describe()} refused {item.sop_instance_uid}: status 0x{code:04X}")
                if STORED_STATUSES[code]:
                    warnings.append(f"{item.sop_instance_uid}: 0x{code:04X} {STORED_STATUSES[code]}")
                on_delivered([item.sop_instance_uid])
        finally:
            if assoc.is_established:
                assoc.release()
        return warnings


class StowSender:
    """DICOMweb STOW-RS client (PS3.18 §10.5): one multipart/related POST per delivery."""

    def __init__(self, destination: StowDestination, timeout_s: float) -> None:
        self.destination = destination
        self.timeout_s = timeout_s

    def send(self, files: list[OutputFile], on_delivered: Callable[[list[str]], None]) -> list[str]:
        if not files:
            return []
        boundary = f"candor-{uuid.uuid4().hex}"
        body = bytearray()
        for item in files:
            body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
            body += item.path.read_bytes()
            body += b"\r\n"
        body += f"--{boundary}--\r\n".encode("ascii")
        url = f"{self.destination.url}/studies"
        request = urllib.request.Request(url, data=bytes(body), method="POST", headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            raise SendError(f"STOW-RS {url}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError) as error:
            raise SendError(f"STOW-RS {url}: {error}") from error
        failed = _failed_sop_uids(payload)
        if status != 200 or failed:
            raise SendError(f"STOW-RS {url}: HTTP {status}, {len(failed)} instance(s) failed")
        on_delivered([item.sop_instance_uid for item in files])
        return []


def _failed_sop_uids(payload: bytes) -> list[str]:
    """SOP Instance UIDs listed in the Failed SOP Sequence (0008,1198) of a STOW-RS response."""
    if not payload.strip():
        return []
    try:
        doc = json.loads(payload)
    except json.JSONDecodeError:
        LOGGER.warning("STOW-RS response is not JSON; relying on the HTTP status")
        return []
    failed = doc.get("00081198", {}).get("Value", []) if isinstance(doc, dict) else []
    return [str(item.get("00081155", {}).get("Value", ["?"])[0]) for item in failed]


def make_sender(destination: Destination, calling_ae: str, timeout_s: float) -> Sender:
    """The sender for a configured destination."""
    if isinstance(destination, DimseDestination):
        return DimseSender(destination, calling_ae, timeout_s)
    return StowSender(destination, timeout_s)
