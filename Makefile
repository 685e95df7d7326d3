# Two commands do everything on a fresh machine (Python 3.11, pip and make):
#   make run    set up .venv and run the default suite
#   make test   set up .venv and run every check CI runs
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# one worker process per core
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: any other spec can pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/gradbench run --workers $(WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .tox .pytest_cache .ruff_cache
