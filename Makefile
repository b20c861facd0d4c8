# One command to run the demo, one to run the tests; both set up the environment first.
VENV    ?= .venv
PYTHON  ?= python3
# Pinned: an unpinned torch pulls several GB of CUDA packages on a CPU machine.
TORCH   ?= torch==2.13.0
BIN      = $(VENV)/bin
LINTED   = brats_goat tests scripts

.PHONY: setup demo test lint benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,plots]"
	touch $@

## demo: make phantom cases, then segment them (no download needed)
demo: setup
	$(BIN)/brats-goat synth demo/input --cases 3 --kind mixed --seed 0
	$(BIN)/brats-goat predict demo/input demo/output --save-maps

## test: lint, then the whole test suite (real-data tests run when ../shared/data/real exists)
test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

## benchmark: seconds per case and peak memory of predict on the real cases
benchmark: setup
	$(BIN)/python scripts/benchmark_predict.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
