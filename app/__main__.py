"""Command line: ``python -m app -i IN -o OUT -m MODELS`` (or HOLOSCAN_INPUT_PATH/…_OUTPUT_PATH/…_MODEL_PATH).

Exit status:
  0  the run completed: every eligible image was processed, or the input held no eligible
     image (a clean no-op). Rejected files are logged and listed in ``candor-report.json``.
  1  an unexpected internal error (a bug): the traceback is logged.
  2  bad usage: an unknown flag or missing input folder (from the SDK's argument parser),
     an invalid setting, or an unusable model folder.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict

from app.logs import configure_logging

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2

logger = logging.getLogger("candor.app")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    from candor.errors import CandorError, SettingsError
    from candor.report import RunReport
    from candor.settings import load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        logger.error("invalid setting: %s", error)
        return EXIT_USAGE

    from app.app import CandorApp

    report = RunReport(settings=asdict(settings))
    args = sys.argv[1:] if argv is None else argv
    # Holoscan drops argv[0] (the interpreter) and the SDK's parser drops the next item (the program).
    app = CandorApp([sys.executable, "app", *args], settings=settings, report=report)
    status = EXIT_OK
    try:
        app.run()
    except CandorError as error:
        logger.error("%s", error)
        status = EXIT_USAGE
    except Exception:  # the last line of defence: log the bug with its traceback and a defined status
        logger.exception("internal error; please report it with this log")
        status = EXIT_INTERNAL
    if app.output_path is not None:
        path = report.write(app.output_path)
        logger.info("%d output(s), %d rejected file(s); report %s", len(report.outputs), len(report.rejected), path)
    return status


if __name__ == "__main__":
    sys.exit(main())
