# Two commands on a fresh clone: `make demo` (smoke sweep end to end) and `make test`.
# Both create the environment in .venv/ first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch first, pinned: on a CPU-only machine with a local 2.13.0 CPU wheel pip takes that file; elsewhere
# PyPI's build of the same version (CUDA on Linux). pyproject's range is then already met.
TORCH_SPEC ?= torch==2.13.0
# HH data: $SHAREDREP_HH_DIR if set, else the shared copy beside the repository when it exists.
SHAREDREP_HH_DIR ?= $(abspath $(wildcard ../shared/data/hh-rlhf))
export SHAREDREP_HH_DIR
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

RUN_DIR ?= runs/smoke

.PHONY: env demo small traits test lint lab clean-runs paper-dryrun

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: env
	$(PY) -m sharedrep_utils run --profile smoke --seeds 42 --proportions 0.1 --ks 2 16 --run-dir $(RUN_DIR)

# The experiment on a CPU: 3 seeds x 3 minority proportions x K 2, 16, every method (about 45 minutes on 2 cores)
small: env
	$(PY) -m sharedrep_utils run --profile small --run-dir runs/small

# Shared traits (issue 20): 4 groups mixing 3 traits, 5 seeds, matched and tuned budgets x raw and centred min,
# two stage runs at a time (README "Shared traits")
traits: env
	$(PY) -m sharedrep_utils run --profile traits --run-dir runs/traits --jobs 2

# The paper profile end to end on locally built same-class stand-ins of its hub models (offline, CPU, minutes);
# the overrides it makes (model ids, sizes, counts) are printed first (sharedrep_utils/standins.py)
paper-dryrun: env
	$(PY) -m sharedrep_utils paper-dryrun --run-dir runs/paper-dryrun

test: env
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check sharedrep_utils tests

# Jupyter refuses to start as root unless told; containers and CI machines often are root
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: env
	$(PY) -m pip install --quiet -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab $(LAB_ROOT) notebooks/

clean-runs:
	rm -rf runs/smoke runs/small runs/traits
