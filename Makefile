# The course's commands. `make lab` and `make test` are all a student needs; each creates
# the virtual environment .venv on first use and reinstalls when pyproject.toml or
# constraints.txt changes. Without make (Windows): see the README's "Without make".
# The first of these that runs and is 3.11+ (a pyenv shim may exist and not run); else python3,
# which tools/check_python.py then rejects with a message.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
    $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; exit; }; done; echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# TORCH=cpu: PyTorch's CPU-only build (Linux/Windows without an NVIDIA GPU: about 1 GB instead
# of about 5.5 GB). Decided when .venv is created: `make clean` first to switch an existing one.
TORCH  ?=
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
EXTRAS := lab,test,instructor
# Jupyter looks here first, so the notebooks' "python3" kernel is this environment's Python
# even where another python3 kernel is registered for the user.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter
# CI and `make test` run notebooks one at a time, each using every core: tests never run in
# parallel (two processes that each use both cores measured 6-10x slower on 2 cores).
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# Extra options for `jupyter lab` (a port, a token, --no-browser), e.g. for the browser test.
LAB_ARGS ?=

.PHONY: lab lab-solutions test unit notebooks nbgrader browser-test bench bench-data measure fetch student clean

# The environment. The Python version is checked before anything is created; a .venv without
# the completion stamp (an install that failed or was interrupted) is removed, never reused.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) tools/check_python.py
	@case "$(TORCH)" in ""|cpu) ;; *) echo "TORCH=$(TORCH) is not understood: use TORCH=cpu or leave it unset."; exit 1;; esac
	@if [ -d $(VENV) ] && [ ! -f $(STAMP) ]; then \
	    echo "Removing $(VENV): an earlier install did not finish."; rm -rf $(VENV); fi
	@if [ ! -d $(VENV) ]; then echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; fi
	@echo "Installing the course into $(VENV): about $(if $(TORCH),1,5.5) GB, several minutes on a first install."
	$(BIN)/python -m pip install --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install -c constraints.txt --extra-index-url $(TORCH_CPU_INDEX) torch torchvision)
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $@

lab: $(STAMP)  ## open the course in JupyterLab: the student copies in student/ (solutions out)
	$(BIN)/python tools/lab.py $(LAB_ARGS)

lab-solutions: $(STAMP)  ## open the instructor notebooks in notebooks/, solutions inline
	$(BIN)/python tools/lab.py --solutions $(LAB_ARGS)

test: $(STAMP)  ## unit tests, then every notebook headless in fast mode
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

unit: $(STAMP)  ## unit tests only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests

notebooks: $(STAMP)  ## notebooks only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

nbgrader: $(STAMP)  ## the nbgrader round trip (release, autograde) on every chapter, fast mode
	COURSE_FAST=1 COURSE_NBGRADER_ALL=1 MPLBACKEND=Agg $(PYTEST) tests/test_nbgrader.py --durations=15

# The browser test needs Chromium (Debian: `apt-get install chromium`) and Playwright (the
# `browser` extra, installed here once); .ci/run installs Chromium before calling it.
$(VENV)/.browser: $(STAMP)
	$(BIN)/python -m pip install -c constraints.txt -e ".[browser]"
	touch $@

browser-test: $(VENV)/.browser  ## every chapter run in JupyterLab in headless Chromium, fast mode
	$(BIN)/python tools/browser_check.py

bench: $(STAMP)  ## time the tutorial's loop against the course's, and the course's against the model's own compute
	$(BIN)/python tools/bench.py

bench-data: $(STAMP)  ## memory and speed of the data path at 400, 2,500 and 25,000 generated images (in /tmp)
	$(BIN)/python tools/bench_data.py

# MEASURE_ARGS: e.g. --chapters 01,03 (a subset), --fast (try the command), --timeout 600 (per chapter)
MEASURE_ARGS ?=
measure: $(STAMP)  ## run every chapter in full mode, one at a time: seconds, slowest cells, headline numbers, ledger
	MPLBACKEND=Agg $(BIN)/python tools/measure.py $(MEASURE_ARGS)

fetch: $(STAMP)  ## download the dataset and the pretrained weights for an offline lab
	$(BIN)/python tools/fetch.py

# Removes the environment only: student/ holds the students' own work and data/ the dataset.
clean:
	rm -rf $(VENV) .pytest_cache

student: $(STAMP)  ## student copies of the notebooks, solutions removed, into student/ (existing copies kept)
	$(BIN)/python tools/student.py notebooks student
