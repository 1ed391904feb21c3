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
