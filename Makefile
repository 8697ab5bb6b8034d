# pneumocxr — every set-up step a fresh machine needs is here.
#   make demo          install, link/download data, train the demo config; notebooks + report into reports/demo/
#   make test          install, link/download data, DCMTK and Orthanc if missing, lint, run the test suite (slow tests included)
#   make deliverables  refresh the committed notebooks and FDA_Submission.md/.pdf from RUN (default runs/kermany-cpu)
#   make bench-scale   NIH input path at 112,120 rows: prepare, epoch from shards vs PNGs (not in make test)
#   make bench-gpu     on a GPU: VGG16 train-step img/s vs shard input img/s (skips cleanly without one)
#   make fuzz          10,000 fuzz cases: mutated DICOM bytes, file names through check and predict (docs/benchmarks.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/pneumocxr
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg

.PHONY: install data system-packages lint format-check test test-fast demo deliverables bench bench-scale bench-gpu fuzz clean
RUN ?= runs/kermany-cpu

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

data: install
	$(CLI) data setup

# Debian packages the tests use as independent references and real components: DCMTK's dcmj2pnm (the
# reference rendering of the DICOM tests) and Orthanc (the real PACS the `pneumocxr serve` tests start on
# 127.0.0.1 with a temporary config; the system service is never used). Installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@missing=""; command -v dcmj2pnm >/dev/null || missing="$$missing dcmtk"; \
	command -v Orthanc >/dev/null || missing="$$missing orthanc"; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

lint: install
	$(VENV)/bin/ruff check .

# The formatter's check; part of `make test`, like the linter.
format-check: install
	$(VENV)/bin/ruff format --check .

test: data system-packages lint format-check
	$(PY) -m pytest -q --durations=15

test-fast: data system-packages
	$(PY) -m pytest -q -m "not slow"

demo: data
	$(CLI) demo

deliverables: data
	$(CLI) deliverables $(RUN)

bench: data system-packages
	$(PY) bench/run.py
	$(PY) bench/serve.py

bench-scale: data
	$(PY) bench/scale.py

bench-gpu: data
	if command -v nvidia-smi >/dev/null; then $(PY) -m pip install --quiet "tensorflow[and-cuda]==2.21.0"; fi
	$(PY) bench/gpu.py

fuzz: data
	PNEUMOCXR_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -m fuzz --hypothesis-show-statistics tests

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
