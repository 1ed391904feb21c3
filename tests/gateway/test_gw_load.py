"""The bounded loopback load test (bench/gateway_load.py): 50 studies over 5 concurrent associations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gw_harness import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_fifty_studies_five_associations_none_lost_or_duplicated(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_OUTPUTS", "sr")  # one result per study keeps the run near two minutes
    spec = importlib.util.spec_from_file_location("gateway_load", REPO / "bench" / "gateway_load.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "load.json"
    code = bench.main(["--studies", "50", "--associations", "5", "--direct-sample", "3", "--quiet-seconds", "1",
                       "--timeout", "600", "--json-out", str(out)])
    result = json.loads(out.read_text())
    assert code == 0, result["checks"]
    assert all(result["checks"].values())
    assert result["figures"]["studies_per_minute"] > 0
