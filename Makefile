# Two commands on a fresh machine (only Python and the package registry needed):
#   make demo   train the Gaussian VAE on the offline digits data, write pictures and metrics
#   make test   lint (ruff, import contracts, mypy) and run the whole test suite
#   make docs   build the documentation site (runs every example briefly) into docs/_build/html
#   make figures  rerun the README's figures over their seeds; fail when one leaves its range
#   make bench  run every benchmark's quick form (the digits or generated data; minutes)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := runs/demo

.PHONY: demo test lint docs figures figures-quick bench

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
	$(BIN)/lint-imports
	$(BIN)/mypy pyrovae

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

$(VENV)/docs-installed: $(VENV)/installed
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

# warnings are errors; the gallery executes each example for a few steps on the digits
docs: $(VENV)/docs-installed
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@grep -q '_static/mathjax/tex-chtml.js' docs/_build/html/models/vae.html \
		|| { echo "the maths must load the local MathJax (sphinx-mathjax-offline)"; exit 1; }
	@echo "documentation in docs/_build/html/index.html"

# tools/figures.py: every figure README.md states, rerun over seeds 0-2 (about 15 minutes on
# a 2-core VM), results in tools/figures.json; figures-quick is seed 0 of the fast ones, which
# CI runs as tests/test_figures.py (slow)
figures: $(VENV)/installed
	OMP_NUM_THREADS=1 $(BIN)/python tools/figures.py

figures-quick: $(VENV)/installed
	OMP_NUM_THREADS=1 $(BIN)/python tools/figures.py --quick

$(VENV)/bench-installed: $(VENV)/installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

# every benchmark's quick form; results go under the run folders, never into benchmarks/results
bench: $(VENV)/bench-installed
	rm -rf runs/bench
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks all --quick --runs $(CURDIR)/runs/bench
