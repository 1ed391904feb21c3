"""One log format for the app: time, level, logger, message — and no patient identifiers."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    """Log to stderr at ``CANDOR_LOG_LEVEL`` (default INFO)."""
    logging.basicConfig(
        level=(level or os.environ.get("CANDOR_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


#: Libraries whose INFO lines describe their internals rather than what happened to a study.
CHATTY_LIBRARIES = ("highdicom",)


def quiet_chatty_libraries() -> None:
    """Keep only warnings from libraries listed in :data:`CHATTY_LIBRARIES` (called after the SDK's
    own logging set-up, which would otherwise reset levels)."""
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
