# One target per workflow; CI runs `make test`, exactly as on a laptop.
# Every target creates .venv and installs the pinned requirements on first use only.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# nbgrader calls alembic and jupyter through PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help venv book book-strict test lint format lab clean chapter-times
.PHONY: system-deps site-assets screenshots linkcheck-external

# npm packages (tests/site/package.json): MathJax, served with the book so math renders
# offline, and axe-core for the accessibility tests. MathJax is copied into _vendor/,
# which _config.yml lists in html_static_path.
NODE_DIR     := tests/site
NODE_STAMP   := $(NODE_DIR)/node_modules/.installed
MATHJAX      := _vendor/mathjax
MATHJAX_DIST := $(NODE_DIR)/node_modules/mathjax/es5

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip check
	@touch $@

venv: $(STAMP) ## create .venv with the pinned requirements (done by every target)

book: $(STAMP) site-assets ## build the HTML book into _build/html (cached: fast when nothing changed)
	$(BIN)/jupyter-book build .
	@echo "Open the book: $(abspath _build/html/index.html)"

book-strict: $(STAMP) site-assets ## build the book from clean, failing on any warning (as CI does)
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

chapter-times: $(STAMP) ## execute each chapter as on Colab and print how long it takes
	$(BIN)/python -m pytest tests/test_chapters.py -k runs -s -q

lab: $(STAMP) ## open the exercises in JupyterLab
	$(BIN)/jupyter lab exercises/

# Grading: python -m autograder (see README.md). GRADING is the working folder.
AUTOGRADER := $(BIN)/python -m autograder --grading-dir $(or $(GRADING),grading)
.PHONY: exercises release collect grade feedback export benchmark-grading
exercises: release ## regenerate the student notebooks in exercises/ from solutions/

release: $(STAMP) ## student versions into exercises/, assignments into the gradebook
	$(AUTOGRADER) release

collect: $(STAMP) ## import submissions: make collect SOURCE=folder-or-lms-export.zip
	@test -n "$(SOURCE)" || { echo "usage: make collect SOURCE=folder-or-zip"; exit 2; }
	$(AUTOGRADER) collect "$(SOURCE)"

grade: $(STAMP) ## autograde every collected submission in the sandbox
	$(AUTOGRADER) grade

feedback: $(STAMP) ## an HTML feedback page per student and assignment
	$(AUTOGRADER) feedback

export: $(STAMP) ## grades.csv: a row per student, a column per graded part
	$(AUTOGRADER) export

benchmark-grading: $(STAMP) ## grade a synthetic class with plain nbgrader and with the CLI
	$(BIN)/python -m tests.benchmark_grading --students $(or $(STUDENTS),60)

clean: ## remove build output (keeps .venv)
	rm -rf _build .pytest_cache .hypothesis

system-deps: ## install Debian's chromium (browser tests) and bubblewrap (grading sandbox); root
	@test -x /usr/bin/chromium -a -x /usr/bin/bwrap || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium bubblewrap >/dev/null; }
	@/usr/bin/chromium --version 2>/dev/null
	@/usr/bin/bwrap --version

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

$(MATHJAX)/.copied: $(NODE_STAMP)
	rm -rf $(MATHJAX) && mkdir -p $(MATHJAX)
	cp $(MATHJAX_DIST)/../LICENSE $(MATHJAX_DIST)/tex-mml-chtml.js $(MATHJAX)/
	cd $(MATHJAX_DIST) && cp -r --parents output/chtml input/tex/extensions ui a11y sre \
		$(abspath $(MATHJAX))/
	@touch $@

site-assets: $(MATHJAX)/.copied ## install the npm packages and copy MathJax into _vendor/

screenshots: book ## screenshots of the built site, phone and desktop, into screenshots/
	$(BIN)/python tests/site/screenshots.py _build/html screenshots

linkcheck-external: book ## check the built site's external links (needs the internet)
	$(BIN)/linkchecker --no-status --check-extern _build/html/index.html
