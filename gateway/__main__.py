"""Command line of the gateway.

``python -m gateway [serve] --port P --ae-title T --destination AE@HOST:PORT --spool DIR -m MODELS``
    run the node (every flag also as ``CANDOR_GATEWAY_<FLAG>``; see ``--help``);
``python -m gateway status [--spool DIR] [--json]``
    queue depth, in-flight studies, last errors (reads the spool; works while it runs);
``python -m gateway requeue [--spool DIR] JOB…``
    send dead-lettered jobs back for another try.

Exit status: 0 success, 2 bad settings, 1 runtime error (e.g. spool locked, port in use).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from gateway import __version__
from gateway.audit import AuditLog
from gateway.deadletter import requeue
from gateway.settings import ENV_PREFIX, GatewaySettingsError, add_arguments, env_name, from_namespace
from gateway.spool import Spool, SpoolLockedError
from gateway.status import format_text, snapshot

LOGGER = logging.getLogger("gateway")

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
_COMMANDS = {"serve", "status", "requeue"}


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # pynetdicom logs every PDU at INFO; keep its chatter at WARNING unless debugging.
    if level.upper() != "DEBUG":
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _spool_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spool", type=Path, default=None, help=f"spool folder [env {env_name('spool')}]")
    parser.add_argument("--audit-log", type=Path, default=None,
                        help=f"audit file (default <spool>/audit.jsonl) [env {env_name('audit-log')}]")


def _resolve_spool(ns: argparse.Namespace) -> tuple[Spool, Path]:
    spool_text = str(ns.spool) if ns.spool else os.environ.get(env_name("spool"), "")
    if not spool_text:
        raise GatewaySettingsError(f"--spool (or {env_name('spool')}) is required")
    root = Path(spool_text).resolve()
    if not root.is_dir():
        raise GatewaySettingsError(f"--spool: {root} is not a folder")
    audit_text = str(ns.audit_log) if ns.audit_log else os.environ.get(env_name("audit-log"), "")
    return Spool(root), Path(audit_text) if audit_text else root / "audit.jsonl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"candor-gateway {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the DICOM node (the default command)", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(serve)
    status = sub.add_parser("status", help="show queue depth, in-flight studies and last errors")
    _spool_arg(status)
    status.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    status.add_argument("--errors", type=int, default=10, help="how many recent errors to show")
    again = sub.add_parser("requeue", help="move dead-lettered jobs back for another try")
    _spool_arg(again)
    again.add_argument("jobs", nargs="+", help="job ids (folder names under dead-letter/)")
    return parser


def _serve(ns: argparse.Namespace) -> int:
    from gateway.service import Gateway  # imports pynetdicom; keep `status` light

    settings = from_namespace(ns)
    _configure_logging(settings.log_level)
    gateway = Gateway(settings)
    try:
        gateway.serve_forever()
    except SpoolLockedError as error:
        LOGGER.error("%s", error)
        return EXIT_RUNTIME
    except OSError as error:
        LOGGER.error("cannot start: %s", error)
        return EXIT_RUNTIME
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] not in _COMMANDS and args[0] != "--version"):
        args.insert(0, "serve")  # `python -m gateway --port …` means serve
    parser = build_parser()
    ns = parser.parse_args(args)
    try:
        if ns.command == "serve":
            return _serve(ns)
        _configure_logging(os.environ.get(ENV_PREFIX + "LOG_LEVEL", "WARNING"))
        spool, audit_path = _resolve_spool(ns)
        if ns.command == "status":
            snap = snapshot(spool, audit_path, errors=ns.errors)
            print(json.dumps(snap, indent=1) if ns.json else format_text(snap))
            return EXIT_OK
        audit = AuditLog(audit_path)
        for job_id in ns.jobs:
            target = requeue(spool, audit, job_id)
            print(f"{job_id} -> {target}")
        return EXIT_OK
    except GatewaySettingsError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as error:
        print(f"gateway: {error.args[0]}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
