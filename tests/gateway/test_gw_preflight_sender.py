"""Pre-flight checks, output collection and the two senders (DIMSE against a fake PACS, STOW against a fake server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pytest
from gw_harness import FakePacs, free_port
from gw_studies import write_ct_study, write_pdf_instance, write_truncated_ct

from gateway.outputs import collect_outputs, report_rejections
from gateway.preflight import check_instance, preflight
from gateway.sender import DimseSender, OutputFile, SendError, StowSender, presentation_contexts
from gateway.settings import DimseDestination, StowDestination


def test_preflight_sets_aside_corrupt_and_foreign(tmp_path: Path) -> None:
    study = write_ct_study(tmp_path / "in", n_images=2)
    truncated, _ = write_truncated_ct(tmp_path / "in", study)
    pdf, _ = write_pdf_instance(tmp_path / "in", study)
    other = write_ct_study(tmp_path / "other", n_images=1, tag="other")
    (tmp_path / "in" / "foreign.dcm").write_bytes(other.paths[0].read_bytes())
    (tmp_path / "in" / "junk.dcm").write_bytes(b"not dicom at all")
    assert check_instance(study.paths[0], study.study_uid) is None
    assert check_instance(pdf, study.study_uid) is None  # valid DICOM: eligibility is the app's call
    assert "shorter" in (check_instance(truncated, study.study_uid) or "")
    rejections = preflight(tmp_path / "in", tmp_path / "rejected", study.study_uid)
    reasons = {r.sop_instance_uid: r.reason for r in rejections}
    assert set(reasons) == {"corrupt", "foreign", "junk"}
    assert "differs" in reasons["foreign"] and "Part-10" in reasons["junk"]
    assert sorted(p.name for p in (tmp_path / "rejected").iterdir()) == ["corrupt.dcm", "foreign.dcm", "junk.dcm"]


def test_collect_outputs_refuses_other_study(tmp_path: Path) -> None:
    study = write_ct_study(tmp_path / "out", n_images=2)
    other = write_ct_study(tmp_path / "x", n_images=1, tag="other")
    (tmp_path / "out" / "sub").mkdir()
    (tmp_path / "out" / "sub" / "other.dcm").write_bytes(other.paths[0].read_bytes())
    (tmp_path / "out" / "notes.txt").write_text("hello")
    (tmp_path / "out" / "candor-report.json").write_text("{}")
    found = collect_outputs(tmp_path / "out", study.study_uid)
    assert sorted(o["sop_instance_uid"] for o in found.outputs) == sorted(study.sop_uids)
    assert len(found.problems) == 2
    report = {"rejected": [{"path": "/x/1.2.3.dcm", "reason": "unsupported"}]}
    assert report_rejections(report) == [{"sop_instance_uid": "1.2.3", "reason": "unsupported", "by": "app"}]


def _outputs(paths: list[Path]) -> list[OutputFile]:
    files = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        files.append(OutputFile(path, str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID)))
    return files


def test_presentation_contexts_only_sent_classes(tmp_path: Path) -> None:
    study = write_ct_study(tmp_path, n_images=2)
    contexts = presentation_contexts(_outputs(study.paths))
    assert list(contexts) == ["1.2.840.10008.5.1.4.1.1.2"]
    assert contexts["1.2.840.10008.5.1.4.1.1.2"][0] == "1.2.840.10008.1.2.1"  # the file's own syntax first


def test_dimse_sender_delivers_and_reports_each(tmp_path: Path, fake_pacs: FakePacs) -> None:
    study = write_ct_study(tmp_path, n_images=3)
    delivered: list[str] = []
    sender = DimseSender(DimseDestination("PACS", "127.0.0.1", fake_pacs.port), "CANDOR", 10)
    assert sender.send(_outputs(study.paths), delivered.extend) == []
    assert delivered == study.sop_uids
    assert fake_pacs.received == {uid: 1 for uid in study.sop_uids}
    assert fake_pacs.proposed == [["1.2.840.10008.5.1.4.1.1.2"]]


def test_dimse_sender_errors(tmp_path: Path) -> None:
    study = write_ct_study(tmp_path, n_images=1)
    down = DimseSender(DimseDestination("PACS", "127.0.0.1", free_port()), "CANDOR", 3)
    with pytest.raises(SendError, match="association"):
        down.send(_outputs(study.paths), lambda uids: None)
    refusing = FakePacs(status=0xA700).start()
    try:
        sender = DimseSender(DimseDestination("PACS", "127.0.0.1", refusing.port), "CANDOR", 5)
        delivered: list[str] = []
        with pytest.raises(SendError, match="0xA700"):
            sender.send(_outputs(study.paths), delivered.extend)
        assert delivered == []
    finally:
        refusing.stop()


class _StowHandler(BaseHTTPRequestHandler):
    parts: list[bytes] = []
    content_type = ""
    reply: tuple[int, dict[str, Any]] = (200, {})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).content_type = self.headers["Content-Type"]
        boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
        type(self).parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
        code, doc = type(self).reply
        payload = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stow_server() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_stow_sender(tmp_path: Path, stow_server: Any) -> None:
    study = write_ct_study(tmp_path, n_images=2)
    url = f"http://127.0.0.1:{stow_server.server_address[1]}/dicom-web"
    sender = StowSender(StowDestination(url), 10)
    delivered: list[str] = []
    _StowHandler.reply = (200, {})
    sender.send(_outputs(study.paths), delivered.extend)
    assert delivered == study.sop_uids
    assert len(_StowHandler.parts) == 2 and 'type="application/dicom"' in _StowHandler.content_type
    _StowHandler.reply = (202, {"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]}}]}})
    with pytest.raises(SendError, match="1 instance"):
        sender.send(_outputs(study.paths), delivered.extend)
    with pytest.raises(SendError):
        StowSender(StowDestination(f"http://127.0.0.1:{free_port()}/dicom-web"), 3).send(
            _outputs(study.paths), delivered.extend)
