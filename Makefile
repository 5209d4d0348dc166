# One target per workflow; CI runs `make test`, exactly as on a laptop.
# Every target creates .venv and installs the pinned requirements on first use only.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# nbgrader calls alembic and jupyter through PATH.
export PATH := $(abspath $(BIN)):$(PATH)
# Never pick up a GUI backend when building or testing.
export MPLBACKEND := Agg

.DEFAULT_GOAL := help
.PHONY: help venv book book-strict test lint format lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip check
	@touch $@

venv: $(STAMP) ## create .venv with the pinned requirements (done by every target)

book: $(STAMP) ## build the HTML book into _build/html (cached: fast when nothing changed)
	$(BIN)/jupyter-book build .
	@echo "Open the book: $(abspath _build/html/index.html)"

book-strict: $(STAMP) ## build the book from clean, failing on any warning (as CI does)
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going

test: $(STAMP) ## everything CI checks: lint, the strict book build, the test suite
	$(BIN)/ruff check .
	$(MAKE) book-strict
	$(BIN)/python -m pytest

lint: $(STAMP) ## check the Python style
	$(BIN)/ruff check .

format: $(STAMP) ## fix what the linter can fix
	$(BIN)/ruff check --fix .

lab: $(STAMP) ## open the exercises in JupyterLab
	$(BIN)/jupyter lab exercises/

clean: ## remove build output (keeps .venv)
	rm -rf _build .pytest_cache .hypothesis
