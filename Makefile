# strangler: the two commands a newcomer needs are `make demo` and `make test`.

# The interpreter the venv is made with: `make PYTHON=/path/to/python3.X` wins;
# otherwise the first of these that runs and is 3.11 or newer. 3.11 comes first
# because CI runs the whole suite on it (SQLite and PostgreSQL), then 3.13 (CI
# runs the SQLite suite on it), then 3.12, then whatever python3 is. Each one is
# run, not just looked up: a pyenv shim exists for versions it will not start.
# Looked for only when a venv is made, once.
PYTHON_CANDIDATES := python3.11 python3.13 python3.12 python3
find_python = $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
ifeq ($(origin PYTHON),undefined)
PYTHON = $(eval PYTHON := $(find_python))$(PYTHON)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080
PLAN ?= migration_plans/00-all-legacy.yaml

.PHONY: install demo test test-sqlite test-unit test-postgres lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { \
		if [ -z "$(PYTHON)" ]; then \
			echo "no Python 3.11 or newer found (tried $(PYTHON_CANDIDATES));" \
				"install one or run make PYTHON=/path/to/python3.X" >&2; exit 1; \
		fi; \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
			echo "$(PYTHON) is not Python 3.11 or newer" >&2; exit 1; }; \
		$(PYTHON) -m venv $(VENV); \
	}
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

# The suite without the tests that start real processes (marker e2e): what CI
# runs on the newest Python, beside the whole suite on the oldest.
test-unit: $(STAMP)
	$(BIN)/pytest -m "not postgres and not e2e"

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
