# pneumocxr — every set-up step a fresh machine needs is here.
#   make demo          install, link/download data, train the demo config; notebooks + report into reports/demo/
#   make test          install, link/download data, lint, run the test suite (slow tests included)
#   make deliverables  refresh the committed notebooks and FDA_Submission.md/.pdf from RUN (default runs/kermany-cpu)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/pneumocxr
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg

.PHONY: install data lint format-check test test-fast demo deliverables bench fuzz clean
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

lint: install
	$(VENV)/bin/ruff check .

# Not part of `test` until the tree has been formatted once (`ruff format .`, by the lead after the merges).
format-check: install
	$(VENV)/bin/ruff format --check .

test: data lint
	$(PY) -m pytest -q --durations=15

test-fast: data
	$(PY) -m pytest -q -m "not slow"

demo: data
	$(CLI) demo

deliverables: data
	$(CLI) deliverables $(RUN)

bench: data
	$(PY) bench/run.py

fuzz: data
	PNEUMOCXR_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -m fuzz tests

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
