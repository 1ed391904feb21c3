"""Same-origin web server for OHIF: the prebuilt viewer plus Orthanc's DICOMweb behind one port.

OHIF's ``index.html`` loads ``/app-config.js`` and its bundles by absolute path,
and routes such as ``/viewer?StudyInstanceUIDs=…`` exist only in the browser
(single-page application). A browser also refuses cross-origin DICOMweb calls
unless the PACS sends CORS headers. This server (stdlib ``http.server``)
solves both on one loopback port:

* ``/dicom-web/…`` and ``/wado…`` are forwarded to Orthanc (GET, HEAD, POST;
  request headers such as ``Accept`` and ``Content-Type`` and the browser's
  ``Host`` pass through, so BulkDataURIs that Orthanc writes point here);
* ``/app-config.js`` (and any other path in ``overrides``) is served from
  memory, so the installed ``dist/`` stays untouched;
* any other path is a file under ``dist/``; a path that names no file and has
  no extension gets ``index.html`` (SPA fallback), one with an extension 404.
"""

from __future__ import annotations

import http.client
import logging
import mimetypes
import posixpath
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

LOGGER = logging.getLogger(__name__)

#: Path prefixes forwarded to Orthanc.
PROXIED_PREFIXES = ("/dicom-web", "/wado")

#: Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "proxy-connection"}

_EXTRA_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript",
                ".json": "application/json", ".svg": "image/svg+xml", ".woff2": "font/woff2"}

_COPY_CHUNK = 1 << 16


def content_type(path: Path) -> str:
    """MIME type of a served file (``.wasm`` must be ``application/wasm`` for streaming compilation)."""
    return _EXTRA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


class _Handler(BaseHTTPRequestHandler):
    """Request handler; its class attributes are set per server by :class:`ViewerServer`."""

    protocol_version = "HTTP/1.1"
    dist: Path
    overrides: dict[str, tuple[bytes, str]]
    orthanc_host: str
    orthanc_port: int

    # -- dispatch ------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_POST(self) -> None:
        if self._is_proxied():
            self._proxy(send_body=True)
        else:
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, b"only DICOMweb paths accept POST\n")

    def _is_proxied(self) -> bool:
        path = urllib.parse.urlsplit(self.path).path
        return any(path == prefix or path.startswith(prefix + "/") for prefix in PROXIED_PREFIXES)

    def _dispatch(self, *, send_body: bool) -> None:
        if self._is_proxied():
            self._proxy(send_body=send_body)
        else:
            self._static(send_body=send_body)

    # -- static files --------------------------------------------------------------------------------
    def _static(self, *, send_body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path in self.overrides:
            body, mime = self.overrides[path]
            self._send(HTTPStatus.OK, body, mime, send_body=send_body, cache=False)
            return
        target = self._resolve(path)
        if target is None:
            if posixpath.splitext(path)[1]:
                self._plain(HTTPStatus.NOT_FOUND, f"no such file: {path}\n".encode(), send_body=send_body)
                return
            target = self.dist / "index.html"  # SPA route such as /viewer
        self._send(HTTPStatus.OK, target.read_bytes(), content_type(target), send_body=send_body,
                   cache=target.name != "index.html")

    def _resolve(self, path: str) -> Path | None:
        """The file under ``dist`` that ``path`` names, or None (never a file outside ``dist``)."""
        relative = posixpath.normpath(path).lstrip("/")
        if relative in ("", "."):
            return None
        candidate = (self.dist / relative).resolve()
        if not candidate.is_relative_to(self.dist) or not candidate.is_file():
            return None
        return candidate

    # -- proxy -----------------------------------------------------------------------------------------
    def _proxy(self, *, send_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(self.orthanc_host, self.orthanc_port, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()  # de-chunked; re-sent with a Content-Length
        except (OSError, http.client.HTTPException) as error:
            LOGGER.error("proxy %s %s to Orthanc failed: %s", self.command, self.path, error)
            self._plain(HTTPStatus.BAD_GATEWAY, f"Orthanc unreachable: {error}\n".encode(), send_body=send_body)
            return
        finally:
            connection.close()
        if response.status >= 400:
            LOGGER.warning("Orthanc answered %d to %s %s", response.status, self.command, self.path)
        self.send_response(response.status)
        for name, value in response.getheaders():
            # send_response() already wrote Server and Date; Content-Length is recomputed below
            if name.lower() not in _HOP_BY_HOP | {"content-length", "server", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(payload)

    # -- helpers ---------------------------------------------------------------------------------------
    def _send(self, status: HTTPStatus, body: bytes, mime: str, *, send_body: bool, cache: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()
        if send_body:
            for start in range(0, len(body), _COPY_CHUNK):
                self.wfile.write(body[start:start + _COPY_CHUNK])

    def _plain(self, status: HTTPStatus, body: bytes, *, send_body: bool = True) -> None:
        self._send(status, body, "text/plain; charset=utf-8", send_body=send_body, cache=False)

    def log_message(self, format: str, *args: object) -> None:
        LOGGER.debug("%s %s", self.address_string(), format % args)


class ViewerServer:
    """The OHIF + DICOMweb server on ``127.0.0.1:port``, run in a background thread.

    Parameters
    ----------
    dist
        The prebuilt OHIF ``dist/`` folder.
    orthanc_url
        ``http://127.0.0.1:<port>`` of Orthanc's HTTP server.
    overrides
        URL path → (body, MIME type) served instead of files, e.g. ``/app-config.js``.
    port
        0 picks a free port.
    """

    def __init__(self, dist: str | Path, orthanc_url: str, *, overrides: dict[str, tuple[bytes, str]] | None = None,
                 port: int = 0) -> None:
        dist = Path(dist).resolve()
        if not (dist / "index.html").is_file():
            raise FileNotFoundError(f"{dist} holds no index.html; install OHIF first (python -m viewer install)")
        parsed = urllib.parse.urlsplit(orthanc_url)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"orthanc_url must be http://host:port, got {orthanc_url!r}")
        handler = type("ViewerHandler", (_Handler,), {
            "dist": dist, "overrides": dict(overrides or {}),
            "orthanc_host": parsed.hostname, "orthanc_port": parsed.port,
        })
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ohif-server", daemon=True)
        self._thread.start()
        LOGGER.info("OHIF served on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (waits for the serving thread)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
