# GeoGrid: `make demo` loads the demo county; `make test` installs everything and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install demo test lint format bench serve demo-data clean

help:
	@echo "make demo    load the demo county into the embedded SpatiaLite database, then serve it (Ctrl-C stops)"
	@echo "make test    install everything needed (Python and Debian packages) and run every test"
	@echo "make lint    ruff and mypy"
	@echo "make bench   benchmarks, side by side with their peers"
	@echo "make serve   run the HTTP API on http://127.0.0.1:8000/"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	scripts/system-deps.sh spatialite
	$(BIN)/geogrid demo
	$(BIN)/geogrid serve --host $(HOST) --port $(PORT)

test: install
	scripts/system-deps.sh spatialite postgis chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check geogrid api tests boundaries benchmarks
	$(BIN)/ruff format --check geogrid api tests boundaries benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format geogrid api tests boundaries benchmarks
	$(BIN)/ruff check --fix geogrid api tests boundaries benchmarks

bench: install
	scripts/system-deps.sh spatialite postgis wrk
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/bench_index.py
	$(BIN)/python benchmarks/bench_topology.py
	$(BIN)/python benchmarks/bench_reach.py
	$(BIN)/python benchmarks/bench_coverage.py
	$(BIN)/python benchmarks/bench_geocode.py
	$(BIN)/python benchmarks/bench_http.py

serve: install
	scripts/system-deps.sh spatialite
	$(BIN)/geogrid serve --host $(HOST) --port $(PORT)

demo-data: install
	$(BIN)/python boundaries/demo/generate.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
