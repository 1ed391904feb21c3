"""The C-STORE / C-ECHO service class provider: acknowledge only what is safely on disk.

Handlers stay protocol-only and fast: decode the two UIDs needed for grouping, hand the
encoded bytes (as received, never re-encoded) to :class:`gateway.intake.Intake`, and
return a DIMSE status. Association requests are refused when the caller is not allowed
or the spool is below its disk watermark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from gateway.audit import AuditLog
from gateway.fsutil import safe_uid, write_json_atomic
from gateway.intake import Intake
from gateway.settings import GatewaySettings
from gateway.spool import Spool
from gateway.watermark import Watermark

LOGGER = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700   # PS3.4 Table B.2-1: Refused: Out of Resources
STATUS_CANNOT_UNDERSTAND = 0xC210  # PS3.4 Table B.2-1: Error: Cannot understand

# A-ASSOCIATE-RJ parameters (PS3.8 Table 9-21): (result, source, diagnostic)
REJECT_CALLER = (0x01, 0x01, 0x03)      # permanent, service user, calling AE title not recognised
REJECT_CONGESTION = (0x02, 0x03, 0x01)  # transient, presentation, temporary congestion


def _reject(event: Any, result_source_diagnostic: tuple[int, int, int]) -> None:
    """Send an A-ASSOCIATE-RJ and end the association once the PDU is out (as pynetdicom's ACSE does)."""
    event.assoc.acse.send_reject(*result_source_diagnostic)
    event.assoc.kill()  # waits for the DUL to flush the reject before the socket is closed


class StoreSCP:
    """pynetdicom server that feeds :class:`Intake`."""

    def __init__(self, settings: GatewaySettings, spool: Spool, intake: Intake, watermark: Watermark,
                 audit: AuditLog, accepting: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.spool = spool
        self.intake = intake
        self.watermark = watermark
        self.audit = audit
        self.accepting = accepting
        self._server: ThreadedAssociationServer | None = None

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        # Accept every storage class in every transfer syntax: we keep the bytes as sent and let
        # the app decide what it can read (a refused context would fail the PACS's whole store job).
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.maximum_associations = self.settings.max_associations
        ae.network_timeout = self.settings.network_timeout
        ae.acse_timeout = min(30.0, self.settings.network_timeout)
        ae.dimse_timeout = self.settings.network_timeout
        ae.maximum_pdu_size = 0  # no limit on what we accept
        return ae

    def start(self) -> None:
        """Start listening (non-blocking)."""
        ae = self._build_ae()
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        self._server = ae.start_server((self.settings.bind, self.settings.port), block=False,
                                       evt_handlers=handlers)
        LOGGER.info("SCP %s listening on %s:%d", self.settings.ae_title, self.settings.bind, self.settings.port)

    def stop(self) -> None:
        """Stop listening and close open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- handlers (run in the association's thread) ------------------------------------------
    def _on_requested(self, event: Any) -> None:
        calling = str(event.assoc.requestor.primitive.calling_ae_title).strip()
        allowed = self.settings.allowed_callers
        if allowed and calling not in allowed:
            LOGGER.warning("refusing association from %r: calling AE title not allowed", calling)
            self.audit.record("refused", calling_ae=calling, reason="calling AE title not allowed")
            _reject(event, REJECT_CALLER)
            return
        if not self.accepting():
            self.audit.record("refused", calling_ae=calling, reason="gateway shutting down")
            _reject(event, REJECT_CONGESTION)
            return
        disk = self.watermark.check()
        if not disk.ok:
            LOGGER.error("refusing association from %r: %d MiB free < watermark %d MiB", calling,
                         disk.free_mb, disk.min_free_mb)
            self.audit.record("refused", calling_ae=calling, reason="disk below watermark", free_mb=disk.free_mb)
            _reject(event, REJECT_CONGESTION)

    def _on_echo(self, event: Any) -> int:
        return STATUS_SUCCESS

    def _on_close(self, event: Any) -> None:
        self.intake.association_closed(event.assoc)

    def _on_store(self, event: Any) -> int:
        calling = str(event.assoc.requestor.ae_title).strip()
        request_sop = str(event.request.AffectedSOPInstanceUID)
        disk = self.watermark.check()
        if not disk.ok:
            LOGGER.error("refusing instance %s: disk below watermark (%d MiB free)", request_sop, disk.free_mb)
            return STATUS_OUT_OF_RESOURCES
        data = event.encoded_dataset(include_meta=True)
        try:
            dataset = event.dataset
            study_uid = str(dataset.get("StudyInstanceUID", "") or "").strip()
            sop_uid = str(dataset.get("SOPInstanceUID", "") or "").strip() or request_sop
        except Exception as error:  # any decoding failure of peer-controlled bytes: quarantine, tell the peer
            return self._quarantine(data, request_sop, calling, f"undecodable dataset ({type(error).__name__})")
        if not study_uid:
            return self._quarantine(data, request_sop, calling, "no StudyInstanceUID")
        if sop_uid != request_sop:
            LOGGER.warning("instance %s: dataset SOPInstanceUID differs from the C-STORE request", request_sop)
        try:
            self.intake.store(study_uid, sop_uid, data, calling, event.assoc)
        except (OSError, ValueError) as error:
            LOGGER.error("cannot spool instance %s of study %s: %s", sop_uid, study_uid, error)
            self.audit.record("failed", stage="receive", study_uid=study_uid, sop_instance_uid=sop_uid,
                              reason=f"spool write failed: {type(error).__name__}")
            return STATUS_OUT_OF_RESOURCES
        return STATUS_SUCCESS

    def _quarantine(self, data: bytes, sop_uid: str, calling: str, reason: str) -> int:
        """Keep an instance we cannot group for the operator, report it, and refuse it."""
        name = f"{safe_uid(sop_uid or 'unknown')}_{time.time_ns():x}"
        try:
            (self.spool.quarantine / f"{name}.dcm").write_bytes(data)
            write_json_atomic(self.spool.quarantine / f"{name}.json",
                              {"sop_instance_uid": sop_uid, "calling_ae": calling, "reason": reason,
                               "received_at": time.time()})
        except OSError as error:
            LOGGER.error("cannot quarantine instance %s: %s", sop_uid, error)
        LOGGER.warning("rejected instance %s from %r: %s", sop_uid, calling, reason)
        self.audit.record("rejected", sop_instance_uid=sop_uid, calling_ae=calling, reason=reason, stage="receive")
        return STATUS_CANNOT_UNDERSTAND
