"""Bounded loopback load test of the gateway: N studies over K concurrent associations.

    .venv/bin/python bench/gateway_load.py [--studies 50] [--associations 5] [--json-out FILE]

What it does, all on 127.0.0.1:

1. writes ``--studies`` small synthetic CT studies (``--images`` slices each);
2. starts an in-process C-STORE sink as the destination, and ``python -m gateway`` as a
   subprocess with a fresh spool (app: ``--app-command``, default the stand-in app of the
   gateway tests);
3. sends the studies over ``--associations`` concurrent associations (one association per
   sender thread, ``studies / associations`` studies each);
4. waits until every study's results reached the sink (bounded by ``--timeout``), then checks
   that nothing was lost or duplicated (audit: one ``complete``/``processed``/``sent`` per
   study; sink: every result SOP Instance UID received exactly once);
5. runs the same app directly (``-i/-o/-m``, no gateway) on ``--direct-sample`` of the studies,
   half before and half after the gateway run, and reports studies per minute and the
   gateway's overhead per study against that.

Overhead is reported three ways: ``overhead_s_per_study`` (wall time per study through the
gateway minus the direct app time per study), ``non_app_s_per_study`` (wall time per study
minus the app time measured inside the same run: robust to load changes on shared machines)
and the per-hop latencies from the audit log. Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "gateway"))
sys.path.insert(0, str(REPO))

from gw_studies import Study, write_ct_study  # noqa: E402  (test-data builder shared with the tests)
from pynetdicom import AE, AllStoragePresentationContexts, evt  # noqa: E402

LOGGER = logging.getLogger("gateway_load")
MAX_STUDIES = 500
STANDIN = REPO / "tests" / "gateway" / "standin_app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    """Destination C-STORE SCP counting every result it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: dict[str, int] = {}
        self.by_study: dict[str, set[str]] = {}
        self.last_arrival = 0.0
        self._lock = threading.Lock()
        ae = AE(ae_title="SINK")
        ae.supported_contexts = AllStoragePresentationContexts
        ae.maximum_associations = 20
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, self._on_store)])

    def _on_store(self, event: Any) -> int:
        ds = event.dataset
        with self._lock:
            uid = str(ds.SOPInstanceUID)
            self.received[uid] = self.received.get(uid, 0) + 1
            self.by_study.setdefault(str(ds.StudyInstanceUID), set()).add(uid)
            self.last_arrival = time.monotonic()
        return 0x0000

    def studies_done(self, expected_per_study: int) -> int:
        with self._lock:
            return sum(len(uids) >= expected_per_study for uids in self.by_study.values())

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()


def send_batch(port: int, studies: list[Study], errors: list[str]) -> None:
    """Send several studies over one association (a PACS pushing a worklist)."""
    import pydicom

    ae = AE(ae_title="LOADGEN")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")     # CT Image Storage
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.77.1.5.1")  # Ophthalmic Photography 8 Bit
    assoc = ae.associate("127.0.0.1", port, ae_title="CANDOR")
    if not assoc.is_established:
        errors.append("association not established")
        return
    try:
        for study in studies:
            for path in study.paths:
                status = assoc.send_c_store(pydicom.dcmread(path))
                if not status or status.Status != 0:
                    errors.append(f"{path.name}: status {status.get('Status') if status else None}")
    finally:
        assoc.release()


def write_op_study_for_load(folder: Path, *, n_images: int, tag: str) -> Study:
    """An Ophthalmic Photography study of ``n_images`` synthetic fundus images (the real app's input)."""
    import pydicom
    from candor.dicom.synthetic import StudyIdentity, synthetic_fundus, write_op_study

    identity = StudyIdentity(patient_id=f"LOAD-{tag}", accession_number=tag[-16:])
    number = int(tag.rsplit("-", 1)[-1])
    images = [synthetic_fundus(seed=number * 100 + i) for i in range(n_images)]
    paths = write_op_study(folder, images, identity=identity)
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    return Study(identity.resolved_study_uid(), paths, uids)


def read_audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_direct(app_command: list[str], studies: list[Study], models: Path, work: Path) -> list[float]:
    """Wall seconds of the app run directly on each study (the baseline)."""
    times = []
    work.mkdir(parents=True, exist_ok=True)
    for n, study in enumerate(studies):
        out = work / f"direct-out-{n}"
        started = time.monotonic()
        subprocess.run([*app_command, "-i", str(study.paths[0].parent), "-o", str(out), "-m", str(models)],
                       check=True, capture_output=True, timeout=600)
        times.append(time.monotonic() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--associations", type=int, default=5)
    parser.add_argument("--images", type=int, default=3, help="instances per study")
    parser.add_argument("--op", action="store_true",
                        help="synthetic fundus OP studies (candor.dicom.synthetic) instead of CT: for the real app")
    parser.add_argument("--workers", type=int, default=1, help="gateway --workers")
    parser.add_argument("--quiet-seconds", type=float, default=2.0)
    parser.add_argument("--app-command", default=f"{sys.executable} {STANDIN}")
    parser.add_argument("--models", type=Path, default=None, help="model folder (default: an empty temp folder)")
    parser.add_argument("--outputs-per-study", type=int, default=None,
                        help="results the app writes per study (default: measured on the direct runs)")
    parser.add_argument("--direct-sample", type=int, default=10, help="studies run directly for the baseline")
    parser.add_argument("--timeout", type=float, default=900.0, help="overall bound in seconds")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # the start-up probe logs refused connections
    if not 1 <= args.studies <= MAX_STUDIES or not 1 <= args.associations <= args.studies:
        parser.error(f"need 1 <= associations <= studies <= {MAX_STUDIES}")

    work = Path(tempfile.mkdtemp(prefix="gateway-load-"))
    models = args.models or work / "models"
    models.mkdir(exist_ok=True)
    app_command = shlex.split(args.app_command)
    LOGGER.info("work folder %s", work)
    build = write_op_study_for_load if args.op else write_ct_study
    studies = [build(work / "studies" / f"s{n:03d}", n_images=args.images, tag=f"load-{n}")
               for n in range(args.studies)]

    # The baseline is measured half before and half after the gateway run, so that a change in
    # machine load during the run (shared CI cores) shows up as a before/after difference.
    sample = studies[: args.direct_sample]
    direct_before = run_direct(app_command, sample[: (len(sample) + 1) // 2], models, work / "before")
    per_study = args.outputs_per_study or len(list((work / "before" / "direct-out-0").glob("*.dcm")))
    LOGGER.info("direct app: %.2f s/study (n=%d), %d result(s) per study", statistics.mean(direct_before),
                len(direct_before), per_study)

    sink = Sink()
    gw_port = free_port()
    spool = work / "spool"
    gateway_log = (work / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--port", str(gw_port), "--bind", "127.0.0.1", "--ae-title", "CANDOR",
         "--destination", f"SINK@127.0.0.1:{sink.port}", "--spool", str(spool), "-m", str(models),
         "--app-command", args.app_command, "--quiet-seconds", str(args.quiet_seconds),
         "--workers", str(args.workers), "--retention", "0", "--max-associations", str(args.associations + 2),
         "--min-free-mb", "256"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=gateway_log, stderr=subprocess.STDOUT)
    errors: list[str] = []
    result: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while not _echo(gw_port):
            if time.monotonic() > deadline or gateway.poll() is not None:
                raise RuntimeError("gateway did not start; see " + str(work / "gateway.log"))
            time.sleep(0.2)
        batches = [studies[i:: args.associations] for i in range(args.associations)]
        started = time.monotonic()
        threads = [threading.Thread(target=send_batch, args=(gw_port, batch, errors)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_s = time.monotonic() - started
        LOGGER.info("sent %d studies over %d associations in %.1f s", len(studies), len(batches), sent_s)
        deadline = started + args.timeout
        while sink.studies_done(per_study) < len(studies) and time.monotonic() < deadline:
            if gateway.poll() is not None:
                raise RuntimeError("gateway exited during the run")
            time.sleep(0.5)
        wall = (sink.last_arrival or time.monotonic()) - started
        time.sleep(max(2.0, args.quiet_seconds + 1))  # let late duplicates, if any, show up
        audit = read_audit(spool / "audit.jsonl")
        gateway.terminate()
        gateway.wait(timeout=60)
        direct_after = run_direct(app_command, sample[(len(sample) + 1) // 2:], models, work / "after")
        result = report(args, studies, sink, audit, (direct_before, direct_after), wall, sent_s, per_study, errors)
    finally:
        if gateway.poll() is None:
            gateway.terminate()
            gateway.wait(timeout=60)
        gateway_log.close()
        sink.stop()
    print(json.dumps(result, indent=1))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    if not args.keep and result.get("ok"):
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0 if result.get("ok") else 1


def _echo(port: int) -> bool:
    ae = AE(ae_title="LOADGEN")
    ae.add_requested_context("1.2.840.10008.1.1")
    ae.connection_timeout = 2
    assoc = ae.associate("127.0.0.1", port, ae_title="CANDOR")
    if assoc.is_established:
        assoc.release()
        return True
    return False


def _mean(values: list[float]) -> float | None:
    return round(statistics.mean(values), 1) if values else None


def report(args: argparse.Namespace, studies: list[Study], sink: Sink, audit: list[dict[str, Any]],
           direct_runs: tuple[list[float], list[float]], wall: float, sent_s: float, per_study: int,
           errors: list[str]) -> dict[str, Any]:
    """Checks and figures of one run.

    ``overhead_s_per_study`` compares with the direct runs (different moments, so machine load
    can differ); ``non_app_s_per_study`` compares with the app time measured inside the same
    gateway run (same load), i.e. the wall time per study not spent in the app.
    """
    direct = [*direct_runs[0], *direct_runs[1]]
    uids = {s.study_uid for s in studies}
    hop_counts = {hop: [line["study_uid"] for line in audit if line["hop"] == hop]
                  for hop in ("complete", "processed", "sent", "failed", "dead-lettered", "duplicate")}
    duplicates_at_sink = {uid: n for uid, n in sink.received.items() if n > 1}
    complete_per_study = {uid: hop_counts["complete"].count(uid) for uid in uids}
    checks = {
        "all_sends_acknowledged": not errors,
        "every_study_complete_once": all(n == 1 for n in complete_per_study.values()),
        "every_study_processed_once": sorted(hop_counts["processed"]) == sorted(uids),
        "every_study_sent_once": sorted(hop_counts["sent"]) == sorted(uids),
        "all_results_at_destination": sink.studies_done(per_study) == len(studies),
        "no_duplicate_results": not duplicates_at_sink,
        "nothing_dead_lettered": not hop_counts["dead-lettered"],
    }
    processed = [line for line in audit if line["hop"] == "processed"]
    sent = [line for line in audit if line["hop"] == "sent"]
    complete = [line for line in audit if line["hop"] == "complete"]
    direct_mean = statistics.mean(direct)
    per_study_wall = wall / len(studies)
    app_in_gateway_s = statistics.mean([p["app_ms"] for p in processed]) / 1000 if processed else 0.0
    return {
        "ok": all(checks.values()),
        "checks": checks,
        "errors": errors[:10],
        "setup": {"studies": len(studies), "kind": "OP" if args.op else "CT", "associations": args.associations,
                  "instances_per_study": args.images,
                  "results_per_study": per_study, "workers": args.workers, "quiet_seconds": args.quiet_seconds,
                  "app_command": args.app_command, "cpus": os.cpu_count(), "machine": platform.platform()},
        "figures": {
            "wall_s": round(wall, 1),
            "send_all_s": round(sent_s, 1),
            "studies_per_minute": round(len(studies) / wall * 60, 1),
            "direct_app_s_per_study": round(direct_mean, 2),
            "direct_app_s_before_after": [round(statistics.mean(r), 2) if r else None for r in direct_runs],
            "gateway_wall_s_per_study": round(per_study_wall, 2),
            "overhead_s_per_study": round(per_study_wall - direct_mean / max(1, args.workers), 2),
            "overhead_pct": round(100 * (per_study_wall * max(1, args.workers) / direct_mean - 1), 1),
            "non_app_s_per_study": round(per_study_wall - app_in_gateway_s / max(1, args.workers), 2),
            "mean_ms": {"receive": _mean([c["receive_ms"] for c in complete]),
                        "quiet": _mean([c["quiet_ms"] for c in complete]),
                        "queue": _mean([p["queue_ms"] for p in processed]),
                        "app_in_gateway": _mean([p["app_ms"] for p in processed]),
                        "send": _mean([s["send_ms"] for s in sent]),
                        "total_latency": _mean([s["total_ms"] for s in sent])},
        },
        "failed_hops": len(hop_counts["failed"]),
    }


if __name__ == "__main__":
    sys.exit(main())
