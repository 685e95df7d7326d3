# Two commands do everything on a fresh machine (Python 3.11, pip and make):
#   make run        set up .venv and run the default suite
#   make test       set up .venv and run every check CI runs: ruff, mypy, every test
# and one for the contributor's loop:
#   make test-fast  ruff and the tests that need no server, browser or whole suite
# and one for the tests' own strength:
#   make mutate MODULE=bench/scores.py   mutation testing of a core module (docs/mutation.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# one worker process per core
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# test processes (pytest-xdist): one per core; one that runs out of tests takes some of
# another's (worksteal), as the slow tests take from seconds to minutes; the tests marked
# serial run afterwards, by themselves
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

.PHONY: setup run test test-fast lint typecheck mutate clean

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

typecheck: $(STAMP)
	$(BIN)/mypy bench tasks

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy bench tasks
	bash scripts/system-deps.sh
	$(PYTEST) -m "not serial"
	$(BIN)/python -m pytest -m serial

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow"

# one module (MODULE=bench/report/statistics.py) or, without MODULE, every core module
mutate: $(STAMP)
	$(BIN)/python scripts/mutation.py --max-children $(WORKERS) $(MODULE)

clean:
	rm -rf $(VENV) .tox .pytest_cache .ruff_cache .mypy_cache mutants
