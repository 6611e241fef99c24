# One task runner for people and CI (.ci/run is `make test`).
#   make run    the stack, migrations, seed data, API replicas behind nginx on
#               http://127.0.0.1:8000 (POLYSHOP_API_REPLICAS, default 2) and the worker
#   make test   the stack (started and stopped again if it was not running), then pytest
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# Evaluated when a recipe runs (after `install` may have just installed uv).
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=

.PHONY: help install web-assets chromium stack-up stack-down stack-status test lint format run stop

help:
	@echo "make install | run | stop | test | lint | format | stack-up | stack-down | stack-status"

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet "uv==$(UV_VERSION)" \
	  || python3 -m pip install --quiet --break-system-packages "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	$(MAKE) --no-print-directory web-assets chromium

# The web pages' JS/CSS: npm packages pinned by web/assets/package-lock.json, bundled by
# esbuild into web/static/dist (git-ignored; about a second).
web-assets:
	cd web/assets && npm ci --no-audit --no-fund --loglevel=error && node build.mjs

# Debian's Chromium for the browser tests (tests/integration/webui); Playwright drives it,
# never `playwright install` (no browser downloads here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] \
	  && { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } \
	  || echo "install Debian's chromium (apt-get install --no-install-recommends chromium) for the browser tests"; }

stack-up: install
	$(UV) run python -m devstack up

stack-down:
	$(UV) run python -m devstack down

stack-status:
	$(UV) run python -m devstack status

# run-tests: `up`, pytest, then stop whatever this invocation started; exits with
# pytest's code. --durations: every CI run lists its 60 slowest tests (the time budget).
# -n/--dist loadgroup: pytest-xdist workers; two of them run the private instances'
# tests (the fault suite; the soak) while the others share the stack (docs/developing.md,
# "CI time budget"). PYTEST_WORKERS=0: one process. With workers and no PYTEST_ARGS the
# fuzz file runs after them in one process (`--then`; its docstring says why).
PYTEST_WORKERS ?= 4
PYTEST_BASE := -p no:cacheprovider -q
FUZZ := tests/integration/test_fuzz_api.py
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup)
FUZZ_PASS = $(if $(XDIST),$(if $(PYTEST_ARGS),,--ignore=$(FUZZ) --then $(PYTEST_BASE) -p no:xdist $(FUZZ)))
test: install
	$(UV) run python -m devstack run-tests -- $(PYTEST_BASE) --durations=60 $(XDIST) \
	  $(PYTEST_ARGS) $(FUZZ_PASS)

lint: install
	$(UV) run ruff check . && $(UV) run ruff format --check . && $(UV) run mypy .

format: install
	$(UV) run ruff format . && $(UV) run ruff check --fix .

run: install
	$(UV) run python -m devstack up
	$(UV) run polyshop migrate
	$(UV) run polyshop seed --if-empty
	@# the seed writes no outbox events: build the index and the analytical copy from Postgres
	$(UV) run polyshop search reindex
	$(UV) run polyshop etl run || [ $$? -eq 75 ]  # 75: the worker's scheduled run holds the lock
	$(UV) run python -m devstack run-app
	@echo "API: http://127.0.0.1:8000/docs (nginx in front of $${POLYSHOP_API_REPLICAS:-2} replicas on 8001..)"
	@echo "logs: uv run python -m devstack logs api_8001 -f   (also api_8002, worker, nginx)"
	@echo "stop everything: make stop"

stop: stack-down
