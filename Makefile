# Conduit: `make help` lists the targets. Everything runs from the project's own .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lock fmt lint test test-unit test-integration test-e2e check up bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned dependencies (requirements.lock)

lock: ## re-resolve requirements.lock from pyproject.toml (needs `pip install uv`)
	uv pip compile pyproject.toml --extra embedded --group dev --generate-hashes --python-version 3.11 --no-header -o requirements.lock

fmt: install ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install ## ruff, formatting, mypy, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --diff .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: install ## unit tests (no sockets)
	$(BIN)/pytest tests/unit $(PYTEST_FLAGS)

test-integration: install ## integration tests (real redis-server, Celery worker, API)
	$(BIN)/pytest tests/integration $(PYTEST_FLAGS)

test-e2e: install ## end-to-end tests with official SDKs as clients
	$(BIN)/pytest tests/e2e $(PYTEST_FLAGS)

test: install ## every test tier
	$(BIN)/pytest tests $(PYTEST_FLAGS)

check: lint test ## lint, then test

up: install ## run Redis (embedded if needed), a worker and the API in the foreground
	$(BIN)/conduit up

bench: install ## the performance benchmark (prints a table)
	$(BIN)/python -m tests.bench

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
