"""The viewer's parts without a browser: the same-origin server, app-config, the Orthanc launcher, screen maths."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from screens import displayed_mask, fit_placement, overlay_agreement

from viewer.ohif import render_app_config, sri_digest
from viewer.proxy import ViewerServer


class _Echo(BaseHTTPRequestHandler):
    """Stand-in for Orthanc: answers every request with what it received, as JSON, chunked."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"method": self.command, "path": self.path, "host": self.headers.get("Host"),
                           "accept": self.headers.get("Accept"), "type": self.headers.get("Content-Type"),
                           "body": self.rfile.read(length).decode() if length else ""}).encode()
        self.send_response(200 if not self.path.startswith("/dicom-web/missing") else 404)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        half = len(body) // 2
        for part in (body[:half], body[half:]):
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>OHIF index</html>")
    (dist / "app.bundle.js").write_text("console.log('bundle')")
    (dist / "assets" / "codec.wasm").write_bytes(b"\0asm")
    (tmp_path / "secret.txt").write_text("outside dist")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    server = ViewerServer(dist, f"http://127.0.0.1:{upstream.server_address[1]}",
                          overrides={"/app-config.js": (b"window.config = {};", "text/javascript")}).start()
    yield server.url
    server.stop()
    upstream.shutdown()
    upstream.server_close()


def _get(url: str, **kwargs: object) -> tuple[int, str, str]:
    request = urllib.request.Request(url, **kwargs)  # type: ignore[arg-type]
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def test_static_files_spa_fallback_and_overrides(served: str) -> None:
    assert _get(served + "/")[2] == "<html>OHIF index</html>"
    assert _get(served + "/viewer?StudyInstanceUIDs=1.2.3")[2] == "<html>OHIF index</html>"  # SPA route
    assert _get(served + "/app.bundle.js")[1] == "text/javascript"
    assert _get(served + "/assets/codec.wasm")[1] == "application/wasm"
    assert _get(served + "/app-config.js")[2] == "window.config = {};"
    assert _get(served + "/missing.bundle.js")[0] == 404  # a missing asset is not the index page
    status, _, body = _get(served + "/../secret.txt")
    assert "outside dist" not in body and status in (200, 404)


def test_dicomweb_and_wado_are_forwarded_with_headers_and_body(served: str) -> None:
    status, mime, body = _get(served + "/dicom-web/studies?PatientID=X", headers={"Accept": "application/dicom+json"})
    echoed = json.loads(body)
    assert status == 200 and mime == "application/dicom+json"
    assert echoed["path"] == "/dicom-web/studies?PatientID=X"
    assert echoed["accept"] == "application/dicom+json"
    assert echoed["host"] == served.removeprefix("http://")  # BulkDataURIs then point at the proxy
    echoed = json.loads(_get(served + "/dicom-web/studies", data=b"payload", method="POST",
                             headers={"Content-Type": "multipart/related; type=application/dicom"})[2])
    assert (echoed["method"], echoed["body"], echoed["type"]) == ("POST", "payload",
                                                                  "multipart/related; type=application/dicom")
    assert json.loads(_get(served + "/wado?requestType=WADO&studyUID=1")[2])["path"].startswith("/wado?")
    assert _get(served + "/dicom-web/missing")[0] == 404  # upstream errors pass through


def test_post_outside_dicomweb_is_refused(served: str) -> None:
    assert _get(served + "/index.html", data=b"x", method="POST")[0] == 405


def test_app_config_points_every_root_at_the_same_origin() -> None:
    text = render_app_config().decode()
    assert "$" not in text.split("*/", 1)[1]  # every placeholder filled
    for line in ("qidoRoot: '/dicom-web'", "wadoRoot: '/dicom-web'", "wadoUriRoot: '/wado'",
                 "imageRendering: 'wadors'", "omitQuotationForMultipartRequest: true"):
        assert line in text, line
    with pytest.raises(ValueError):
        render_app_config(friendly_name="it's")
    with pytest.raises(ValueError):
        render_app_config(web_workers=0)


def test_sri_digest_matches_npm_format(tmp_path: Path) -> None:
    path = tmp_path / "x.tgz"
    path.write_bytes(b"abc")
    # SHA-512 of "abc" (FIPS 180-2 test vector), base64 as npm's "integrity" field writes it
    assert sri_digest(path) == ("sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslP"
                                "pUyknw==")


def test_screen_maths_find_a_displayed_mask_and_reject_a_shifted_one() -> None:
    mask = np.zeros((50, 100), bool)
    mask[10:20, 60:90] = True
    placement = fit_placement((300, 400), 50, 100)  # 4× scale, letterboxed vertically
    assert (placement.x0, placement.y0, placement.scale) == (0.0, 50.0, 4.0)
    expected = displayed_mask(mask, placement, (300, 400))
    assert expected[50 + 4 * 15, 4 * 75] and not expected[50 + 4 * 15, 4 * 10]
    perfect = overlay_agreement(expected, expected)
    assert perfect.precision == 1.0 and perfect.recall == 1.0
    shifted = overlay_agreement(np.roll(expected, 60, axis=1), expected)
    assert shifted.precision < 0.6 and shifted.recall < 0.6


@pytest.mark.integration
def test_orthanc_restarts_on_its_storage_after_stop_waits_for_exit(tmp_path: Path) -> None:
    """stop() returns only once the process has exited, so a new Orthanc can open the same index at once."""
    from candor.dicom.synthetic_sources import write_source
    from viewer.orthanc import OrthancServer

    source = write_source("dx_mono2", tmp_path / "src")
    first = OrthancServer(tmp_path / "pacs").start()
    process = first.process
    assert first.c_store([source]) == {source: 0}
    first.stop()
    assert process is not None and process.poll() is not None
    second = OrthancServer(tmp_path / "pacs").start()
    try:
        assert len(second.get_json("/instances")) == 1
    finally:
        second.stop()
