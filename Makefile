# Two commands on a fresh machine (only Python and the package registry needed):
#   make demo   train the Gaussian VAE on the offline digits data, write pictures and metrics
#   make test   lint (ruff) and run the whole test suite
#   make docs   build the documentation site (runs every example briefly) into docs/_build/html
#   make bench  run every benchmark's quick form (the digits or generated data; minutes)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := runs/demo

.PHONY: demo test lint docs bench

$(VENV)/installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/installed
	$(BIN)/pyrovae train --dataset digits --latent-dim 2 --epochs 150 --batch-size 100 \
		--warmup-epochs 10 --out $(DEMO) --overwrite --quiet
	$(BIN)/pyrovae evaluate $(DEMO) --num-samples 1000 > $(DEMO)/evaluation.json
	@cat $(DEMO)/evaluation.json
	@echo "pictures and metrics in $(DEMO)/"

lint: $(VENV)/installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

$(VENV)/docs-installed: $(VENV)/installed
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

# warnings are errors; the gallery executes each example for a few steps on the digits
docs: $(VENV)/docs-installed
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "documentation in docs/_build/html/index.html"

$(VENV)/bench-installed: $(VENV)/installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

# every benchmark's quick form; results go under the run folders, never into benchmarks/results
bench: $(VENV)/bench-installed
	rm -rf runs/bench
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks all --quick --runs $(CURDIR)/runs/bench
