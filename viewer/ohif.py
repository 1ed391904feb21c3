"""Install the prebuilt OHIF Viewer and the browser driver from npm into ``build/``, and configure OHIF.

OHIF is MIT-licensed but 200 MB; it is never committed. ``npm pack
@ohif/app@<version>`` fetches the release tarball whose ``package/dist`` is the
complete viewer (reference §13); it is checked against the integrity hash the
npm registry published for that version, unpacked to
``build/ohif/<version>/dist`` and marked installed. A second call finds the
marker and does nothing, so CI and ``make viewer`` can call it every time.

The browser tests drive Debian's Chromium with ``playwright-core`` (no browser
download): :func:`install_driver` runs ``npm ci`` on ``viewer/browser``'s
``package.json`` and lock file in ``build/ohif/driver``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import string
import subprocess
import tarfile
import tempfile
from pathlib import Path

LOGGER = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
#: ``npm view @ohif/app@3.13.2 dist.integrity``: the tarball must hash to this.
OHIF_INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="

DEFAULT_ROOT = REPO / "build" / "ohif"
APP_CONFIG_TEMPLATE = HERE / "app-config.template.js"
DRIVER_SOURCE = HERE / "browser"

_MARKER = ".candor-installed.json"
_NPM_TIMEOUT_S = 600


class InstallError(RuntimeError):
    """npm is missing, the download failed, or the tarball does not match its published integrity."""


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm is not on PATH; install Node.js (Debian package nodejs/npm)")
    return npm


def _run_npm(arguments: list[str], cwd: Path) -> str:
    command = [_npm(), *arguments, "--no-audit", "--no-fund", "--loglevel=error"]
    LOGGER.info("running %s in %s", " ".join(command), cwd)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise InstallError(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def sri_digest(path: Path) -> str:
    """The Subresource-Integrity string (``sha512-<base64>``) npm publishes for a tarball."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def ohif_dist(root: Path = DEFAULT_ROOT, version: str = OHIF_VERSION) -> Path:
    """Where :func:`install_ohif` puts ``dist`` (it may not exist yet)."""
    return root / version / "dist"


def is_installed(root: Path = DEFAULT_ROOT, version: str = OHIF_VERSION) -> bool:
    marker = root / version / _MARKER
    return marker.is_file() and (ohif_dist(root, version) / "index.html").is_file()


def install_ohif(root: Path = DEFAULT_ROOT, *, version: str = OHIF_VERSION,
                 integrity: str = OHIF_INTEGRITY) -> Path:
    """Install OHIF's prebuilt ``dist`` under ``root/<version>`` (idempotent) and return its path.

    Raises
    ------
    InstallError
        If npm fails or the tarball's hash differs from ``integrity``.
    """
    dist = ohif_dist(root, version)
    if is_installed(root, version):
        LOGGER.debug("OHIF %s already installed in %s", version, dist)
        return dist
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ohif-", dir=root) as scratch:
        scratch_path = Path(scratch)
        output = _run_npm(["pack", f"{OHIF_PACKAGE}@{version}", "--json", "--pack-destination", str(scratch_path)],
                          cwd=scratch_path)
        tarball = scratch_path / json.loads(output)[0]["filename"]
        if not tarball.is_file():
            raise InstallError(f"npm pack reported {tarball.name} but left {list(scratch_path.iterdir())}")
        actual = sri_digest(tarball)
        if actual != integrity:
            raise InstallError(f"{tarball.name}: integrity {actual} differs from the published {integrity}")
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch_path / "unpacked", filter="data")
        unpacked = scratch_path / "unpacked" / "package" / "dist"
        if not (unpacked / "index.html").is_file():
            raise InstallError(f"{tarball.name} holds no package/dist/index.html")
        target = root / version
        if target.exists():
            shutil.rmtree(target)  # a half-finished earlier install (no marker)
        target.mkdir(parents=True)
        unpacked.rename(dist)
        (target / _MARKER).write_text(json.dumps({"package": OHIF_PACKAGE, "version": version,
                                                  "integrity": actual}) + "\n", encoding="utf-8")
    LOGGER.info("installed OHIF %s in %s", version, dist)
    return dist


def driver_dir(root: Path = DEFAULT_ROOT) -> Path:
    """Folder whose ``node_modules`` holds playwright-core (see :func:`install_driver`)."""
    return root / "driver"


def install_driver(root: Path = DEFAULT_ROOT) -> Path:
    """``npm ci`` the browser driver (playwright-core, pinned by ``viewer/browser/package-lock.json``).

    Idempotent: skipped when the installed lock file equals the source one.
    Returns the folder that holds ``node_modules``.
    """
    target = driver_dir(root)
    lock = (DRIVER_SOURCE / "package-lock.json").read_bytes()
    installed_lock = target / "node_modules" / ".candor-lock.json"
    if installed_lock.is_file() and installed_lock.read_bytes() == lock:
        LOGGER.debug("browser driver already installed in %s", target)
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(DRIVER_SOURCE / name, target / name)
    _run_npm(["ci", "--ignore-scripts"], cwd=target)
    installed_lock.write_bytes(lock)
    LOGGER.info("installed the browser driver in %s", target)
    return target


def render_app_config(*, friendly_name: str = "Candor test PACS (Orthanc)", dicomweb_root: str = "/dicom-web",
                      wado_uri_root: str = "/wado", web_workers: int = 2) -> bytes:
    """OHIF's ``app-config.js`` from :data:`APP_CONFIG_TEMPLATE` (every placeholder must be filled).

    ``web_workers`` is OHIF's ``maxNumberOfWebWorkers`` (image decoding); 2
    suits a small machine.
    """
    for name, value in (("friendly_name", friendly_name), ("dicomweb_root", dicomweb_root),
                        ("wado_uri_root", wado_uri_root)):
        if "'" in value or "\\" in value or "\n" in value:
            raise ValueError(f"{name} must not contain quotes, backslashes or newlines: {value!r}")
    if not 1 <= web_workers <= 16:
        raise ValueError(f"web_workers must be 1..16, got {web_workers}")
    template = string.Template(APP_CONFIG_TEMPLATE.read_text(encoding="utf-8"))
    text = template.substitute(friendly_name=friendly_name, dicomweb_root=dicomweb_root,
                               wado_uri_root=wado_uri_root, web_workers=web_workers)
    return text.encode("utf-8")
