# Two commands do everything on a fresh machine:
#   make demo   builds synthetic fundus, chest and microscopy studies, runs Candor on them, prints the outputs
#   make test   runs the test suite (unit + integration)
#   make viewer starts Orthanc + OHIF with the demo studies loaded and prints the URL
# Both create the local virtual environment .venv on first use.

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Holoscan recommends a 32 MB stack (MONAI Deploy SDK docs); the MAP runner uses 64 MB.
STACK   = ulimit -s 32768 2>/dev/null || true

.PHONY: install demo test test-unit viewer clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(STACK); $(PY) -m app.demo --out build/demo

test: $(STAMP)
	$(STACK); $(PY) -m pytest

test-unit: $(STAMP)
	$(STACK); $(PY) -m pytest -m "not integration"

# Orthanc + OHIF on loopback with the demo studies loaded (needs .ci/install-viewer-deps.sh once).
viewer: $(STAMP)
	$(STACK); $(PY) -m viewer

clean:
	rm -rf build .pytest_cache
