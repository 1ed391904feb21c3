#!/usr/bin/env bash
# Install what the viewer and conformance tests need (tests/viewer, tests/test_conformance.py, make viewer):
#   Debian: orthanc + orthanc-dicomweb (test PACS with DICOMweb), dcmtk, chromium (headless browser tests);
#   npm:    the prebuilt OHIF viewer (@ohif/app, integrity-checked) and playwright-core, both into build/ohif.
# Idempotent: apt runs only for missing packages; the npm step finds its install markers and does nothing.
# Needs root (or sudo), a Debian mirror and the npm registry. No init system is assumed: the tests start
# Orthanc themselves, and the Debian service (if the package started one) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(orthanc orthanc-dicomweb dcmtk chromium fonts-dejavu-core)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "install-viewer-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-viewer-deps: Debian packages present (${PACKAGES[*]})"
fi

for tool in Orthanc chromium node npm; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "install-viewer-deps: $tool not found after install" >&2
        exit 1
    }
done
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || {
    echo "install-viewer-deps: the Orthanc DICOMweb plug-in is missing" >&2
    exit 1
}

# viewer.ohif and viewer.__main__'s install command use the standard library only, so any python3 runs them
# (the project's virtual environment may not exist yet when CI calls this script).
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m viewer install
echo "install-viewer-deps: done"
