# persona-pipeline: `make run` runs the whole pipeline on demo data, `make test` runs the test suite.
# Everything installs into .venv in this folder; nothing is downloaded at run time.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DAGSTER_HOME := $(CURDIR)/.dagster
DEMO_DIR := data/demo
DEMO_CUSTOMERS ?= 5000
DEMO_SEED ?= 7
# Eight months: churn is judged on the last 30 days (predict.horizon_days); customer value on the last 90
# (predict.clv_eval_days), with as many days before them to fit on (docs/predictions.md).
DEMO_DAYS ?= 240
WAREHOUSE := warehouse/warehouse.duckdb

.PHONY: install system-deps run demo test test-fast lint ui bench clean

install: $(INSTALLED) system-deps

# Debian's chromium (report test) and fonts-noto-cjk (Chinese in PNG charts); a no-op once installed.
system-deps:
	@bash scripts/install-system-deps.sh

# Reinstall when the dependency list changes.
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(DEMO_DIR)/order_lines.csv

$(DEMO_DIR)/order_lines.csv: | $(INSTALLED)
	$(BIN)/persona generate --out $(DEMO_DIR) --customers $(DEMO_CUSTOMERS) --days $(DEMO_DAYS) --seed $(DEMO_SEED) \
		--daily-files

run: $(INSTALLED) system-deps demo
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/persona run --config examples/demo.yaml --warehouse $(WAREHOUSE)

# Two workers, a test file each at a time (--dist loadfile keeps a file's shared fixtures in one process): the
# whole suite took 10 min 51 s this way on the 2-core machine, against about 17 min serially.
test: $(INSTALLED) system-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Unit and graph tests only (no CLI processes, nightly runs, crash recovery or browser), a test file per core:
# under 2 minutes on a 2-core machine.
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/unit tests/graph

lint: $(INSTALLED)
	$(BIN)/ruff check .

# The Dagster UI with the lineage of every asset, on this machine only.
# `exec` keeps make the parent of dagster dev, which scripts/ui.py makes stop when make does (SIGTERM, Ctrl-C).
ui: $(INSTALLED)
	@mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	exec env DAGSTER_HOME=$(DAGSTER_HOME) PERSONA_CONFIG=$(CURDIR)/examples/demo.yaml \
		PERSONA_WAREHOUSE=$(CURDIR)/$(WAREHOUSE) $(BIN)/python scripts/ui.py -h 127.0.0.1 -p 3000

# Pipeline vs one pandas + scikit-learn script vs DuckDB alone, sizes S and M; BENCH_ARGS=--large adds L.
# Prints a table, writes bench/results/<date>.json; the last line is the M summary.
bench: $(INSTALLED)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(DAGSTER_HOME) $(DEMO_DIR) $(WAREHOUSE) warehouse/reports warehouse/work warehouse/.versions warehouse/.current warehouse/.previous
