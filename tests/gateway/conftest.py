"""Fixtures of the gateway tests (helpers and classes live in ``gw_harness.py``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # gw_harness, gw_studies, standin_app (names that clash with no other test folder)

from gw_harness import (  # noqa: E402
    ORTHANC_BIN,
    STANDIN_APP,
    FakePacs,
    GatewayProcess,
    Orthanc,
    free_port,
    require_tool,
)


def pytest_configure(config: pytest.Config) -> None:
    # The project-wide pytest config will declare these too; declaring twice is harmless.
    config.addinivalue_line("markers", "integration: needs real processes (Orthanc, dcmtk, gateway subprocess)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def standin_command() -> str:
    """``--app-command`` value running the stand-in app with this interpreter."""
    return f"{sys.executable} {STANDIN_APP}"


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., Orthanc]]:
    """Build (and afterwards stop) Orthanc instances routing to a gateway port."""
    require_tool(ORTHANC_BIN, "Orthanc")
    started: list[Orthanc] = []

    def make(gateway_port: int, gateway_aet: str = "CANDOR", name: str = "orthanc") -> Orthanc:
        instance = Orthanc(tmp_path / name, gateway_port, gateway_aet)
        instance.start()
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def make(*args: Any, **kwargs: Any) -> GatewayProcess:
        process = GatewayProcess(*args, **kwargs)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def fake_pacs() -> Iterator[FakePacs]:
    pacs = FakePacs().start()
    yield pacs
    pacs.stop()


@pytest.fixture
def inproc_gateway(tmp_path: Path, models_dir: Path, standin_command: str, fake_pacs: FakePacs,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Build and start in-process gateways (fast stand-in app, fake PACS destination); stopped afterwards."""
    import shlex

    from gateway.service import Gateway
    from gateway.settings import GatewaySettings, parse_destination

    monkeypatch.setenv("STANDIN_OUTPUTS", "sr")
    monkeypatch.setenv("STANDIN_RUNLOG", str(tmp_path / "runs.log"))
    running: list[Any] = []

    def make(start: bool = True, **overrides: Any) -> Any:
        values: dict[str, Any] = dict(
            spool=tmp_path / "spool", destination=parse_destination(fake_pacs.destination), models=models_dir,
            port=free_port(), bind="127.0.0.1", quiet_seconds=0.4, app_command=tuple(shlex.split(standin_command)),
            backoff_base=0.2, backoff_max=1.0, retention=0.0, min_free_mb=0, app_timeout=60.0, network_timeout=10.0)
        values.update(overrides)
        watermark = values.pop("watermark", None)
        gateway = Gateway(GatewaySettings(**values), watermark=watermark)
        if start:
            gateway.start()
            running.append(gateway)
        return gateway

    yield make
    for gateway in running:
        gateway.stop()
