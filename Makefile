# The course's commands. `make lab` and `make test` are all a student needs; each creates
# the virtual environment .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Jupyter looks here first, so the notebooks' "python3" kernel is this environment's Python
# even where another python3 kernel is registered for the user.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter
# CI and `make test` run notebooks one at a time, each using every core: tests never run in
# parallel (two processes that each use both cores measured 6-10x slower on 2 cores).
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# Extra options for `jupyter lab` (a port, a token, --no-browser), e.g. for the browser test.
LAB_ARGS ?=

.PHONY: lab test unit notebooks bench fetch student clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $@

lab: $(STAMP)  ## open the course in JupyterLab
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(STAMP)  ## unit tests, then every notebook headless in fast mode
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

unit: $(STAMP)  ## unit tests only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests

notebooks: $(STAMP)  ## notebooks only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

bench: $(STAMP)  ## time the tutorial's loop against the course's (not part of make test)
	$(BIN)/python tools/bench.py

fetch: $(STAMP)  ## download the dataset and the pretrained weights for an offline lab
	$(BIN)/python tools/fetch.py

clean:
	rm -rf $(VENV) student .pytest_cache

student: $(STAMP)  ## student copies of the notebooks, solutions removed, into student/
	$(BIN)/python tools/student.py notebooks student
