# strangler: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PLAN ?= migration_plans/00-all-legacy.yaml

.PHONY: install demo test test-sqlite test-postgres lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Migrates and seeds the monolith (first run), then starts the monolith, the
# extracted services and the proxy with the first tutorial plan. Ctrl-C stops all.
demo: $(STAMP)
	$(BIN)/strangler up --plan $(PLAN) --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole suite on SQLite; then, when STRANGLER_TEST_POSTGRES holds a server
# URL (.ci/run sets it), every database test again on PostgreSQL.
test: lint test-sqlite test-postgres

test-sqlite: $(STAMP)
	$(BIN)/pytest -m "not postgres"

test-postgres: $(STAMP)
	@if [ -n "$$STRANGLER_TEST_POSTGRES" ]; then \
		DATABASE_URL="$$STRANGLER_TEST_POSTGRES" $(BIN)/pytest -m "postgres or database"; \
	else \
		echo "STRANGLER_TEST_POSTGRES is not set: PostgreSQL tests not run"; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
