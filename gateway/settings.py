"""The gateway's settings: one validated, immutable object built from flags and environment variables.

Every command-line flag has an environment variable ``CANDOR_GATEWAY_<NAME>`` (the flag
name upper-cased, dashes as underscores); a flag given on the command line wins over
the variable, the variable over the default. Validation happens once at start-up and
fails with a message naming the flag and the variable, so a misconfigured node stops
before it accepts any study.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ENV_PREFIX = "CANDOR_GATEWAY_"

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: 16 chars, no backslash/control


class GatewaySettingsError(ValueError):
    """A setting is missing or invalid; the message names the flag and its environment variable."""


@dataclass(frozen=True)
class DimseDestination:
    """A C-STORE SCP to send results to, written ``AE@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    def describe(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class StowDestination:
    """A DICOMweb service root (e.g. ``http://pacs:8042/dicom-web``); results go to ``<root>/studies``."""

    url: str

    def describe(self) -> str:
        return self.url


Destination = DimseDestination | StowDestination


def env_name(flag: str) -> str:
    """Return the environment variable that backs ``--flag``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def check_ae_title(value: str, what: str) -> str:
    """Validate an AE title (1–16 printable characters, no backslash) and return it stripped."""
    title = value.strip()
    if not _AE_RE.match(title):
        raise GatewaySettingsError(f"{what}: {value!r} is not a valid AE title (1-16 characters, no backslash)")
    return title


def parse_destination(value: str) -> Destination:
    """Parse ``AE@HOST:PORT`` (DIMSE C-STORE) or ``http(s)://…`` (DICOMweb STOW-RS service root)."""
    text = value.strip()
    if text.startswith(("http://", "https://")):
        parsed = urlparse(text)
        if not parsed.netloc:
            raise GatewaySettingsError(f"--destination: {value!r} has no host")
        return StowDestination(url=text.rstrip("/"))
    match = re.match(r"^(?P<ae>[^@]+)@(?P<host>[^:@]+):(?P<port>\d+)$", text)
    if not match:
        raise GatewaySettingsError(
            f"--destination ({env_name('destination')}): {value!r} is neither AE@HOST:PORT nor an http(s) URL"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise GatewaySettingsError(f"--destination: port {port} out of range")
    return DimseDestination(check_ae_title(match["ae"], "--destination"), match["host"], port)


@dataclass(frozen=True)
class GatewaySettings:
    """Validated gateway settings. Field docs give meaning and default; see ``docs/gateway.md``."""

    spool: Path
    """Spool folder holding all durable state (instances, jobs, audit log). Required."""
    destination: Destination
    """Where results go: ``AE@HOST:PORT`` or a DICOMweb root URL. Required."""
    models: Path
    """Model folder handed to the app as ``-m``. Required; must exist."""
    port: int = 11112
    """TCP port of the C-STORE SCP."""
    ae_title: str = "CANDOR"
    """Our AE title (called AE for incoming, calling AE for outgoing associations)."""
    bind: str = "0.0.0.0"
    """Address the SCP listens on (``127.0.0.1`` for loopback only)."""
    allowed_callers: tuple[str, ...] = ()
    """Calling AE titles allowed to associate; empty = any."""
    quiet_seconds: float = 5.0
    """A study is complete after this long without a new instance (reset by every instance)."""
    workers: int = 1
    """App runs in parallel (one at a time by default: the app may hold the GPU)."""
    app_command: tuple[str, ...] = (sys.executable, "-m", "app")
    """Command of the app; ``-i IN -o OUT -m MODELS`` are appended."""
    app_cwd: Path | None = None
    """Working folder of the app (default: the gateway's)."""
    app_timeout: float = 1800.0
    """Seconds before an app run is killed and counted as failed."""
    app_attempts: int = 2
    """App runs per study (internal error or interrupted run) before it is dead-lettered."""
    send_attempts: int = 8
    """Failed deliveries of a study before it is dead-lettered."""
    backoff_base: float = 2.0
    """First retry delay in seconds; doubles after every failed delivery."""
    backoff_max: float = 300.0
    """Upper bound of the retry delay in seconds."""
    retention: float = 3600.0
    """Seconds a delivered study stays in ``done/`` before its files are deleted (0 = at once)."""
    min_free_mb: int = 1024
    """Disk watermark: below this much free space in the spool, new associations are refused."""
    status_port: int | None = None
    """If set, serve ``GET /status`` (JSON) on 127.0.0.1 at this port."""
    audit_log: Path | None = None
    """JSON-lines audit file (default ``<spool>/audit.jsonl``)."""
    max_associations: int = 10
    """Concurrent incoming associations."""
    network_timeout: float = 60.0
    """Seconds of silence before an association is dropped (incoming and outgoing)."""
    dedupe: bool = True
    """Skip a re-sent study whose instances were all processed already (see docs)."""
    log_level: str = "INFO"
    """Level of the operational log (stderr)."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise GatewaySettingsError(f"--port ({env_name('port')}): {self.port} out of range 1-65535")
        check_ae_title(self.ae_title, f"--ae-title ({env_name('ae-title')})")
        for caller in self.allowed_callers:
            check_ae_title(caller, f"--allowed-callers ({env_name('allowed-callers')})")
        if not self.models.is_dir():
            raise GatewaySettingsError(f"--models ({env_name('models')}): {self.models} is not a folder")
        positive = {"quiet-seconds": self.quiet_seconds, "app-timeout": self.app_timeout,
                    "backoff-base": self.backoff_base, "backoff-max": self.backoff_max,
                    "network-timeout": self.network_timeout}
        for name, value in positive.items():
            if not value > 0:
                raise GatewaySettingsError(f"--{name} ({env_name(name)}) must be > 0, got {value}")
        counts = {"workers": self.workers, "app-attempts": self.app_attempts,
                  "send-attempts": self.send_attempts, "max-associations": self.max_associations}
        for name, count in counts.items():
            if count < 1:
                raise GatewaySettingsError(f"--{name} ({env_name(name)}) must be >= 1, got {count}")
        if self.retention < 0 or self.min_free_mb < 0:
            raise GatewaySettingsError("--retention and --min-free-mb must be >= 0")
        if not self.app_command:
            raise GatewaySettingsError(f"--app-command ({env_name('app-command')}) is empty")
        if self.status_port is not None and not 1 <= self.status_port <= 65535:
            raise GatewaySettingsError(f"--status-port: {self.status_port} out of range")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise GatewaySettingsError(f"--log-level: {self.log_level!r} is not DEBUG/INFO/WARNING/ERROR")

    @property
    def audit_path(self) -> Path:
        """Where audit lines go."""
        return self.audit_log if self.audit_log is not None else self.spool / "audit.jsonl"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


# (flag, type, help). Defaults come from GatewaySettings so they live in one place.
_OPTIONS: list[tuple[str, str, str]] = [
    ("--port", "int", "TCP port of the C-STORE SCP"),
    ("--ae-title", "str", "our AE title"),
    ("--bind", "str", "listen address (127.0.0.1 = loopback only)"),
    ("--destination", "str", "results go to AE@HOST:PORT (C-STORE) or http(s)://…/dicom-web (STOW-RS)"),
    ("--spool", "path", "spool folder (all durable state)"),
    ("--models", "path", "model folder handed to the app as -m"),
    ("--allowed-callers", "str", "comma-separated calling AE titles allowed to associate (default: any)"),
    ("--quiet-seconds", "float", "quiet period that completes a study"),
    ("--workers", "int", "parallel app runs"),
    ("--app-command", "str", "app command line (shell-quoted); -i/-o/-m are appended"),
    ("--app-cwd", "path", "working folder of the app"),
    ("--app-timeout", "float", "seconds before an app run is killed"),
    ("--app-attempts", "int", "app runs per study before dead-letter"),
    ("--send-attempts", "int", "failed deliveries before dead-letter"),
    ("--backoff-base", "float", "first retry delay (s), doubling"),
    ("--backoff-max", "float", "maximum retry delay (s)"),
    ("--retention", "float", "seconds delivered studies stay in done/ (0 = delete at once)"),
    ("--min-free-mb", "int", "refuse associations below this free space (MiB) in the spool"),
    ("--status-port", "int", "serve GET /status on 127.0.0.1:PORT"),
    ("--audit-log", "path", "JSON-lines audit file (default <spool>/audit.jsonl)"),
    ("--max-associations", "int", "concurrent incoming associations"),
    ("--network-timeout", "float", "seconds of network silence before an association is dropped"),
    ("--dedupe", "bool", "skip re-sent studies whose instances were all processed"),
    ("--log-level", "str", "DEBUG, INFO, WARNING or ERROR"),
]
_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "path": Path, "bool": _bool}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting as a flag; defaults are taken later, so absent flags stay ``None``."""
    for flag, kind, help_text in _OPTIONS:
        short = ["-m"] if flag == "--models" else []
        parser.add_argument(*short, flag, type=_TYPES[kind], default=None,
                            help=f"{help_text} [env {env_name(flag)}]")


def from_namespace(ns: argparse.Namespace, environ: dict[str, str] | None = None) -> GatewaySettings:
    """Merge parsed flags, environment variables and defaults into validated settings."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for flag, kind, _help in _OPTIONS:
        attr = flag.lstrip("-").replace("-", "_")
        raw = getattr(ns, attr, None)
        if raw is None and env.get(env_name(flag), "").strip():
            try:
                raw = _TYPES[kind](env[env_name(flag)])
            except (ValueError, argparse.ArgumentTypeError) as error:
                raise GatewaySettingsError(f"{env_name(flag)}={env[env_name(flag)]!r}: {error}") from error
        if raw is not None:
            values[attr] = raw
    for required in ("spool", "destination", "models"):
        if required not in values:
            flag = "--" + required
            raise GatewaySettingsError(f"{flag} (or {env_name(flag)}) is required")
    values["destination"] = parse_destination(str(values["destination"]))
    if "allowed_callers" in values:
        values["allowed_callers"] = tuple(c.strip() for c in str(values["allowed_callers"]).split(",") if c.strip())
    if "app_command" in values:
        values["app_command"] = tuple(shlex.split(str(values["app_command"])))
    values["spool"] = Path(str(values["spool"])).resolve()
    values["models"] = Path(str(values["models"])).resolve()
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    return GatewaySettings(**values)  # type: ignore[arg-type]
