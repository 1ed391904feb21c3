"""``python -m viewer`` (``make viewer``): Orthanc + OHIF on loopback with the demo studies loaded.

Commands:

``python -m viewer [serve]``
    install OHIF if needed (npm, cached in ``build/ohif``), build the demo
    studies (a synthetic fundus photograph run through ``python -m app``, and
    a chest radiograph, both processed by the app — see :mod:`viewer.studies`), start a
    fresh Orthanc in ``build/viewer/orthanc``, load the studies, serve OHIF and
    DICOMweb on one port, print the URL, and run until Ctrl-C (or SIGTERM),
    then stop Orthanc and wait for it to exit.
``python -m viewer install``
    install OHIF and the browser-test driver only (what CI runs).

The fundus study needs a fundus-vessel model: ``--models`` (default
``models/``) when it holds ``fundus_vessels``; otherwise an untrained
stand-in model is built and a warning says that its predictions mean nothing.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

from app.logs import configure_logging, quiet_chatty_libraries

LOGGER = logging.getLogger("viewer")
REPO = Path(__file__).resolve().parents[1]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m viewer", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("serve", "install"), default="serve")
    parser.add_argument("--port", type=int, default=3000, help="viewer port on 127.0.0.1 (default 3000; 0 = any free)")
    parser.add_argument("--models", type=Path, default=REPO / "models",
                        help="model folders for the app (default models/; without fundus_vessels: a stand-in)")
    parser.add_argument("--size", type=int, default=768, help="side of the synthetic fundus photograph in pixels")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "viewer",
                        help="studies, Orthanc storage, logs (default build/viewer)")
    return parser.parse_args(argv)


def _models(requested: Path, workdir: Path) -> tuple[Path, bool]:
    """The models folder to run the app with, and whether it is the untrained stand-in."""
    from viewer.studies import stand_in_model

    if (requested / "fundus_vessels" / "configs" / "metadata.json").is_file():
        return requested, False
    LOGGER.warning("%s holds no fundus_vessels model; using an UNTRAINED stand-in: the fundus SEG and maps "
                   "show the pipeline and the viewer, not real predictions", requested)
    folder = workdir / "stand-in-models"
    if not (folder / "fundus_vessels").is_dir():
        stand_in_model(folder)
    return folder, True


def serve(args: argparse.Namespace) -> int:
    """Build, load and serve; blocks until interrupted."""
    from viewer.ohif import install_ohif, render_app_config
    from viewer.orthanc import OrthancServer
    from viewer.proxy import ViewerServer
    from viewer.studies import build_chest_study, build_fundus_study

    dist = install_ohif()
    workdir = args.workdir.resolve()
    models, stand_in = _models(args.models, workdir)
    studies = [build_fundus_study(workdir / "studies" / "fundus", models, size=args.size),
               build_chest_study(workdir / "studies" / "chest", models)]

    orthanc_dir = workdir / "orthanc"
    shutil.rmtree(orthanc_dir / "db", ignore_errors=True)  # a fresh PACS each time: only these studies
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    with OrthancServer(orthanc_dir) as orthanc:
        for study in studies:
            for path in study.files:
                orthanc.upload(path)
        try:
            server = ViewerServer(dist, orthanc.base_url, port=args.port,
                                  overrides={"/app-config.js": (render_app_config(), "text/javascript")})
        except OSError as error:
            LOGGER.error("cannot listen on 127.0.0.1:%d (%s); choose another with --port (0 = any free)",
                         args.port, error)
            return 1
        with server:
            print(f"\nCandor viewer: {server.url}/  (OHIF study list; Ctrl-C stops Orthanc and the viewer)")
            for study in studies:
                link = f"{server.url}/viewer?StudyInstanceUIDs={study.study_instance_uid}"
                print(f"  {study.name:7s} {link}")
                # opening the SR first avoids an OHIF 3.13 race that can leave a double-clicked SR undrawn
                print(f"  {study.name + ' SR':7s} {link}&initialSeriesInstanceUID={study.series_uid('SR')}  "
                      "(answer No to 'continue tracking')")
            print(f"  Orthanc  {orthanc.base_url}/app/explorer.html   (log {orthanc.log_path})")
            if stand_in:
                print("  NOTE: fundus results come from an untrained stand-in model (no models/fundus_vessels).")
            print("  Results are from synthetic images; research use only.", flush=True)
            stop.wait()
    LOGGER.info("viewer stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    configure_logging()
    quiet_chatty_libraries()
    if args.command == "install":
        from viewer.ohif import install_driver, install_ohif

        print(install_ohif())
        print(install_driver())
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
