"""Settings: flags, environment variables, defaults and validation messages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from gateway.settings import (DimseDestination, GatewaySettingsError, StowDestination, add_arguments, env_name,
                              from_namespace, parse_destination)


def parse(argv: list[str], env: dict[str, str] | None = None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_namespace(parser.parse_args(argv), environ=env or {})


def test_flags(tmp_path: Path, models_dir: Path) -> None:
    s = parse(["--port", "11113", "--ae-title", "NODE", "--destination", "PACS@pacs.local:4242",
               "--spool", str(tmp_path / "spool"), "-m", str(models_dir), "--allowed-callers", "PACS, MOD1",
               "--app-command", "python3 /opt/app.py --flag 'a b'", "--workers", "2"])
    assert s.port == 11113 and s.ae_title == "NODE" and s.workers == 2
    assert s.destination == DimseDestination("PACS", "pacs.local", 4242)
    assert s.allowed_callers == ("PACS", "MOD1")
    assert s.app_command == ("python3", "/opt/app.py", "--flag", "a b")
    assert s.audit_path == (tmp_path / "spool").resolve() / "audit.jsonl"


def test_environment_and_precedence(tmp_path: Path, models_dir: Path) -> None:
    env = {env_name("port"): "2000", env_name("destination"): "http://127.0.0.1:8042/dicom-web/",
           env_name("spool"): str(tmp_path), env_name("models"): str(models_dir), env_name("quiet-seconds"): "1.5",
           env_name("dedupe"): "false"}
    s = parse([], env)
    assert s.port == 2000 and s.quiet_seconds == 1.5 and s.dedupe is False
    assert s.destination == StowDestination("http://127.0.0.1:8042/dicom-web")
    assert parse(["--port", "3000"], env).port == 3000  # the flag wins over the variable


def test_defaults(tmp_path: Path, models_dir: Path) -> None:
    s = parse(["--destination", "A@h:1", "--spool", str(tmp_path), "-m", str(models_dir)])
    assert s.quiet_seconds == 5.0 and s.workers == 1 and s.port == 11112
    assert s.app_command == (sys.executable, "-m", "app")


@pytest.mark.parametrize("missing", ["spool", "destination", "models"])
def test_required_names_flag_and_variable(tmp_path: Path, models_dir: Path, missing: str) -> None:
    values = {"spool": str(tmp_path), "destination": "A@h:1", "models": str(models_dir)}
    del values[missing]
    argv = [item for key, value in values.items() for item in (f"--{key}", value)]
    with pytest.raises(GatewaySettingsError, match=f"--{missing}.*{env_name(missing)}"):
        parse(argv)


@pytest.mark.parametrize("text", ["PACS@host", "host:104", "PACS@host:0", "TOOLONGAETITLE1234@h:1", "A\\B@h:1"])
def test_bad_destination(text: str) -> None:
    with pytest.raises(GatewaySettingsError):
        parse_destination(text)


def test_validation(tmp_path: Path, models_dir: Path) -> None:
    base = ["--destination", "A@h:1", "--spool", str(tmp_path)]
    with pytest.raises(GatewaySettingsError, match="not a folder"):
        parse([*base, "-m", str(tmp_path / "nope")])
    with pytest.raises(GatewaySettingsError, match="quiet-seconds"):
        parse([*base, "-m", str(models_dir), "--quiet-seconds", "0"])
    with pytest.raises(GatewaySettingsError, match="workers"):
        parse([*base, "-m", str(models_dir), "--workers", "0"])
    with pytest.raises(GatewaySettingsError, match=env_name("port")):
        parse([*base, "-m", str(models_dir)], {env_name("port"): "eleven"})
