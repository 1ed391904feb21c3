#!/usr/bin/env bash
# Install the Debian packages the gateway's integration tests need: Orthanc (the test PACS),
# its DICOMweb plug-in (STOW-RS destination tests) and dcmtk (storescu, the "modality").
# Idempotent: skips apt entirely when every package is already installed.
# Needs root (or sudo) and access to a Debian mirror. No init system is assumed: the tests
# start Orthanc by hand with a config in a temporary folder.
set -euo pipefail

PACKAGES=(orthanc orthanc-dicomweb dcmtk)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-gateway-deps: all present (${PACKAGES[*]})"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-gateway-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# --no-install-recommends keeps the footprint small; Orthanc's recommended plug-ins are not needed.
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

# The Debian package may try to start the service through an init system; the tests run their
# own instance, so a service instance (if any was started) is left alone here.
command -v Orthanc >/dev/null || { echo "install-gateway-deps: Orthanc not on PATH after install" >&2; exit 1; }
command -v storescu >/dev/null || { echo "install-gateway-deps: storescu not on PATH after install" >&2; exit 1; }
echo "install-gateway-deps: done"
