# The README's two commands live here: `make demo` and `make test`.
# Both create or reuse .venv, install torch==2.13.0 first (a CPU build; letting another package
# pull torch in would fetch a multi-GB CUDA build), then the project with all its extras.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.esplora-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
# The demo keeps its store inside the checkout unless ESPLORA_HOME says otherwise.
DEMO_HOME ?= $(CURDIR)/var/demo

.PHONY: demo test lint typecheck layers unit bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[workers,ui,training,demo,dev]'
	touch $(STAMP)

demo: $(STAMP)
	ESPLORA_HOME=$${ESPLORA_HOME:-$(DEMO_HOME)} $(BIN)/esplora demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy platform/esplora workers/esplora_workers ui/esplora_ui training/esplora_training

layers: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck layers
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_rules.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
