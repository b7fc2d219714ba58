# The course's commands. `make lab` and `make test` are all a student needs; each creates
# the virtual environment .venv on first use and reinstalls when pyproject.toml or
# constraints.txt changes. Without make (Windows): see the README's "Without make".
# The first of these that runs and is 3.11+ (a pyenv shim may exist and not run); else python3,
# which tools/check_python.py then rejects with a message.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
    $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v $$p; exit; }; done; echo python3)
VENV   ?= .venv
# Each Python its own environment: an existing .venv is kept whatever PYTHON says. CI also runs the
# unit tests on the newest Python the course admits: `make unit PYTHON=python3.13 VENV=.venv-3.13`
# (.gitignore covers .venv-*).
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# TORCH=cpu: PyTorch's CPU-only build (Linux/Windows without an NVIDIA GPU: about 2 GB instead
# of about 6 GB). Decided when .venv is created: `make clean` first to switch an existing one.
TORCH  ?=
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
# What a student needs: the course and JupyterLab. The tests (`test`), nbgrader (`instructor`), the
# book (`book`) and the browser tests (`browser`) are installed the first time a command needs them.
EXTRAS := lab
# Jupyter looks here first, so the notebooks' "python3" kernel is this environment's Python
# even where another python3 kernel is registered for the user.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter
# CI and `make test` run notebooks one at a time, each using every core: tests never run in
# parallel (two processes that each use both cores measured 6-10x slower on 2 cores).
# COURSE_STRICT=1: a teaching claim that does not hold fails the run (a student's run prints it).
PYTEST := COURSE_STRICT=1 $(BIN)/python -m pytest -p no:cacheprovider
# Extra options for `jupyter lab` (a port, a token, --no-browser), e.g. for the browser test.
LAB_ARGS ?=

.PHONY: lab lab-solutions chapter test test-float32 unit notebooks nbgrader browser-test book book-test bench bench-data bench-distributed train measure fetch student clean

# The environment. The Python version is checked before anything is created; a .venv without
# the completion stamp (an install that failed or was interrupted) is removed, never reused.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) tools/check_python.py; status=$$?; [ $$status -le 1 ] || echo "PYTHON=$(PYTHON) did not run:" \
	    "name one that does, e.g. by its full path (pyenv: ~/.pyenv/versions/VERSION/bin/python3)." >&2; exit $$status
	@case "$(TORCH)" in ""|cpu) ;; *) echo "TORCH=$(TORCH) is not understood: use TORCH=cpu or leave it unset."; exit 1;; esac
	@if [ -d $(VENV) ] && [ ! -f $(STAMP) ]; then \
	    echo "Removing $(VENV): an earlier install did not finish."; rm -rf $(VENV); fi
	@if [ ! -d $(VENV) ]; then echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; fi
	@echo "Installing the course into $(VENV): about $(if $(TORCH),2,6) GB, several minutes on a first install."
	$(BIN)/python -m pip install --upgrade pip
	$(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install -c constraints.txt --extra-index-url $(TORCH_CPU_INDEX) torch torchvision)
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $@

# An extra a command needs, added to the environment once (again after a reinstall of the course).
$(VENV)/.test $(VENV)/.instructor $(VENV)/.book $(VENV)/.papermill: $(VENV)/.%: $(STAMP)
	$(BIN)/python -m pip install -c constraints.txt -e ".[$*]"
	touch $@

lab: $(STAMP)  ## open the course in JupyterLab: the student copies in student/ (solutions out)
	$(BIN)/python tools/lab.py $(LAB_ARGS)

lab-solutions: $(STAMP)  ## open the instructor notebooks in notebooks/, solutions inline
	$(BIN)/python tools/lab.py --solutions $(LAB_ARGS)

# One chapter with other parameter values, through papermill (its `-p NAME VALUE` reaches every value the
# Parameters cell sets), e.g. `make chapter NB=03 PARAMS="-p EPOCHS 25"`; the executed copy: runs/<chapter>.
NB ?=
PARAMS ?=
chapter: $(VENV)/.papermill  ## run one chapter headless with other parameters: make chapter NB=03 PARAMS="-p EPOCHS 25"
	@test -n "$(wildcard notebooks/$(NB)_*.ipynb)" || { echo "NB=$(NB) names no chapter: use its number, e.g. NB=03."; exit 1; }
	@mkdir -p runs
	MPLBACKEND=Agg $(BIN)/python -m papermill $(wildcard notebooks/$(NB)_*.ipynb) runs/$(notdir $(wildcard notebooks/$(NB)_*.ipynb)) $(PARAMS)

test: $(VENV)/.test $(VENV)/.instructor $(VENV)/.book  ## unit tests, then every notebook headless in fast mode
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

unit: $(VENV)/.test $(VENV)/.instructor $(VENV)/.book  ## unit tests only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests

notebooks: $(VENV)/.test  ## notebooks only
	COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

# The float32 path most laptops take (no AVX-512-BF16 or AMX), forced on any CPU: the unit tests and
# the training-heavy chapters. CI runs it after `make test`, which takes this machine's own path.
FLOAT32_NOTEBOOKS := notebooks/03_feature_extraction.ipynb notebooks/04_fine_tuning.ipynb notebooks/07_domain_shift.ipynb
test-float32: $(VENV)/.test $(VENV)/.instructor  ## unit tests and chapters 03, 04, 07 with COURSE_PRECISION=float32
	COURSE_PRECISION=float32 COURSE_FAST=1 MPLBACKEND=Agg $(PYTEST) tests $(FLOAT32_NOTEBOOKS) --nbval-lax --nbval-cell-timeout=900 --durations=10

nbgrader: $(VENV)/.test $(VENV)/.instructor  ## the nbgrader round trip (release, autograde) on every chapter, fast mode
	COURSE_FAST=1 COURSE_NBGRADER_ALL=1 MPLBACKEND=Agg $(PYTEST) tests/test_nbgrader.py --durations=15

# The browser test needs Chromium (Debian: `apt-get install chromium`) and Playwright (the
# `browser` extra, installed here once); .ci/run installs Chromium before calling it.
$(VENV)/.browser: $(STAMP)
	$(BIN)/python -m pip install -c constraints.txt -e ".[browser]"
	touch $@

browser-test: $(VENV)/.browser  ## every chapter run in JupyterLab in headless Chromium, fast mode
	$(BIN)/python tools/browser_check.py

# BOOK_ARGS: --fast (a fast-mode run: minutes), --run DIR (the book of a `make measure` run's folder),
# --solutions (the instructor's book). The site: build/book/html (open index.html, or serve the folder).
BOOK_ARGS ?=
book: $(VENV)/.book  ## the course as a static HTML book: every chapter run in full mode (as make measure does), then the site
	$(BIN)/python tools/book.py $(BOOK_ARGS)

book-test: $(VENV)/.browser  ## the built book in headless Chromium: every page, figure, link and ledger record
	$(BIN)/python tools/book_check.py

bench: $(STAMP)  ## time the tutorial's loop against the course's, and the course's against the model's own compute
	$(BIN)/python tools/bench.py

bench-data: $(STAMP)  ## memory and speed of the data path at 400, 2,500 and 25,000 generated images (in /tmp)
	$(BIN)/python tools/bench_data.py

bench-distributed: $(STAMP)  ## train.fit on 1 process against 2 (gloo): seconds per epoch, the equivalence; GPU images/s where present
	$(BIN)/python tools/bench_distributed.py

# ARGS: tools/train.py's arguments, e.g. ARGS="--data data/food101 --strategy features --output runs/f" (docs/scaling.md)
ARGS ?=
train: $(STAMP)  ## train outside a notebook, resumably (tools/train.py $(ARGS)); torchrun for several GPUs: docs/scaling.md
	$(BIN)/python tools/train.py $(ARGS)

# MEASURE_ARGS: e.g. --chapters 01,03 (a subset), --fast (try the command), --timeout 600 (per chapter)
MEASURE_ARGS ?=
# The inline backend, as in JupyterLab: the executed copies keep their figures, so that
# `make book BOOK_ARGS="--run <the run folder>"` turns a measured run into the book.
measure: $(STAMP)  ## run every chapter in full mode, one at a time: seconds, slowest cells, headline numbers, ledger
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/python tools/measure.py $(MEASURE_ARGS)

fetch: $(STAMP)  ## download the dataset and the pretrained weights for an offline lab
	$(BIN)/python tools/fetch.py

# Removes the environment only: student/ holds the students' own work and data/ the dataset.
clean:
	rm -rf $(VENV) .pytest_cache

student: $(STAMP)  ## student copies of the notebooks, solutions removed, into student/ (existing copies kept)
	$(BIN)/python tools/student.py notebooks student
