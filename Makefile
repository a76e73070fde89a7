# sharegraph entry points; each target bootstraps .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STATE ?= $(CURDIR)/state
export SHAREGRAPH_STATE := $(STATE)
export DAGSTER_HOME := $(STATE)/dagster

.PHONY: demo test test-fast browser bench lint dev clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	# bytecode for the project's own modules: pip compiles site-packages, not an editable
	# install, and where PYTHONDONTWRITEBYTECODE is set every run would compile them again
	$(BIN)/python -m compileall -q sharegraph assets pipelines >/dev/null
	touch $@

# pyspark (~490 MB) only for the tests and --engine spark, never for `make demo`
$(BIN)/.installed-spark: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[test,bench,spark]'
	touch $@

demo: $(BIN)/.installed  ## generate the demo world, run the pipeline, print where the results are
	$(BIN)/sharegraph demo

browser:  ## install Debian's chromium + driver + CJK fonts for the browser tests, when missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || ./.ci/install-browser

test: $(BIN)/.installed-spark browser  ## the full test suite (what CI runs)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: $(BIN)/.installed  ## unit tests only, no browser or process-killing tests
	$(BIN)/python -m pytest -n 2 -q -m "not browser and not slow"

bench: $(BIN)/.installed  ## scale benchmarks with side-by-side peers (minutes; writes bench-out/)
	$(BIN)/python benchmarks/run_all.py

lint: $(BIN)/.installed
	$(BIN)/ruff check sharegraph assets pipelines tests benchmarks

# `dg dev` reads [tool.dg] in pyproject.toml. DAGSTER_HOME is the repository root: dagster.yaml
# there is the instance's configuration as it stands, its storage under state/dagster.
# VIRTUAL_ENV names the project's venv for dg; exec leaves no shell behind, so Ctrl-C reaches
# dg, which stops the webserver, the daemon and the code server before it exits.
dev: $(BIN)/.installed  ## the Dagster UI (dg dev) with the code location loaded; Ctrl-C stops it
	DAGSTER_HOME=$(CURDIR) VIRTUAL_ENV=$(CURDIR)/$(VENV) exec $(BIN)/dg dev

clean:
	rm -rf $(STATE) bench-out
