"""Operators' view: queue depth, in-flight studies and the last errors, from the spool itself.

The snapshot is computed from the folders and the audit log, so ``python -m gateway
status --spool DIR`` works whether the gateway runs or not (it then says so). A running
gateway also writes ``gateway.json`` (pid, heartbeat) and can serve the same snapshot
as JSON over HTTP on loopback (``--status-port``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Callable
from typing import Any

from gateway.audit import read_audit
from gateway.fsutil import read_json
from gateway.spool import COMPLETE, DEAD_LETTER, DONE, INCOMING, OUTBOX, PROCESSING, STATES, Spool

LOGGER = logging.getLogger(__name__)

HEARTBEAT_FILE = "gateway.json"
HEARTBEAT_STALE_S = 15.0
ERROR_HOPS = {"failed", "dead-lettered", "rejected", "refused"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _job_summary(spool: Spool, state: str, job_id: str) -> dict[str, Any]:
    try:
        record = spool.load(state, job_id)
    except (FileNotFoundError, json.JSONDecodeError):  # moved or being written between listing and reading
        return {"job": job_id, "state": state}
    summary: dict[str, Any] = {"job": job_id, "state": state, "study_uid": record.study_uid,
                               "instances": record.instances, "app_attempts": record.app_attempts,
                               "send_attempts": record.send_attempts}
    if state == OUTBOX and record.next_send_at:
        summary["next_send_in_s"] = round(max(0.0, record.next_send_at - time.time()), 1)
    if state == DEAD_LETTER:
        summary["reason"] = record.dead_letter_reason
    if record.errors:
        summary["last_error"] = record.errors[-1]["reason"]
    return summary


def snapshot(spool: Spool, audit_path: Path, errors: int = 10) -> dict[str, Any]:
    """Everything ``status`` shows, as a JSON-ready dict."""
    counts = {state: len(spool.list_jobs(state)) for state in STATES}
    gateway: dict[str, Any] = {"running": False}
    heartbeat_path = spool.root / HEARTBEAT_FILE
    if heartbeat_path.exists():
        try:
            beat = read_json(heartbeat_path)
        except (json.JSONDecodeError, OSError) as error:
            LOGGER.warning("unreadable %s: %s", heartbeat_path, error)
            beat = {}
        age = time.time() - float(beat.get("heartbeat_at", 0))
        alive = bool(beat.get("pid")) and _pid_alive(int(beat["pid"])) and age < HEARTBEAT_STALE_S
        gateway = {**beat, "running": alive, "heartbeat_age_s": round(age, 1)}
    in_flight = [_job_summary(spool, PROCESSING, j) for j in spool.list_jobs(PROCESSING)]
    awaiting = [_job_summary(spool, OUTBOX, j) for j in spool.list_jobs(OUTBOX)]
    dead = [_job_summary(spool, DEAD_LETTER, j) for j in spool.list_jobs(DEAD_LETTER)[-errors:]]
    quarantined = len(list(spool.quarantine.glob("*.dcm"))) if spool.quarantine.is_dir() else 0
    return {
        "gateway": gateway,
        "queue_depth": counts[COMPLETE],
        "receiving": counts[INCOMING],
        "counts": counts,
        "in_flight": in_flight,
        "awaiting_delivery": awaiting,
        "dead_letter": dead,
        "delivered_kept": counts[DONE],
        "quarantined_instances": quarantined,
        "last_errors": read_audit(audit_path, hops=ERROR_HOPS, limit=errors),
    }


def format_text(snap: dict[str, Any]) -> str:
    """Human-readable rendering of :func:`snapshot` for the terminal."""
    gw = snap["gateway"]
    lines = [f"gateway: {'running' if gw.get('running') else 'NOT running'}"
             + (f" (pid {gw.get('pid')}, AE {gw.get('ae_title')}, port {gw.get('port')}, "
                f"destination {gw.get('destination')})" if gw.get("pid") else ""),
             f"receiving: {snap['receiving']}  queue depth: {snap['queue_depth']}  "
             f"in flight: {len(snap['in_flight'])}  awaiting delivery: {len(snap['awaiting_delivery'])}  "
             f"dead-letter: {snap['counts'][DEAD_LETTER]}  quarantined: {snap['quarantined_instances']}"]
    for title, jobs in (("in flight", snap["in_flight"]), ("awaiting delivery", snap["awaiting_delivery"]),
                        ("dead-letter", snap["dead_letter"])):
        for job in jobs:
            extra = job.get("reason") or job.get("last_error") or ""
            retry = f" retry in {job['next_send_in_s']} s" if "next_send_in_s" in job else ""
            lines.append(f"  [{title}] {job.get('study_uid', '?')} job {job['job']}{retry} {extra}".rstrip())
    if snap["last_errors"]:
        lines.append("last errors:")
        for entry in snap["last_errors"]:
            lines.append(f"  {entry.get('ts')} {entry.get('hop')} {entry.get('stage', '')} "
                         f"{entry.get('study_uid', entry.get('calling_ae', ''))}: {entry.get('reason', '')}")
    return "\n".join(lines)


class StatusServer:
    """Serves ``GET /status`` (the snapshot) and ``GET /healthz`` on 127.0.0.1."""

    def __init__(self, port: int, provider: Callable[[], dict[str, Any]]) -> None:
        provider_ref = provider

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path.rstrip("/") == "/status":
                    body, code = json.dumps(provider_ref(), indent=1).encode(), 200
                elif self.path.rstrip("/") == "/healthz":
                    body, code = b'{"ok": true}', 200
                else:
                    body, code = b'{"error": "not found"}', 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # route access logs to logging
                LOGGER.debug("status http: " + format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
