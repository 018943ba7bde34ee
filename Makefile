# One entry point for people and CI. Every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test check lint types pytest migrate bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

## run: API + worker in one process on the embedded PostgreSQL (or LOGFILL_DATABASE_URL)
run: $(STAMP)
	$(BIN)/logfill run

migrate: $(STAMP)
	$(BIN)/logfill migrate

## test: lint, types and the test suite (what CI runs)
test: lint types pytest

check: test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# Test-only node tooling (anvil, solcjs) for tests/chain, pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

pytest: $(STAMP) node_modules/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

## bench: benchmarks under bench/ (figures printed and written to bench/results/)
bench: $(STAMP) node_modules/.installed
	$(BIN)/python -m bench.rpc_scan
	$(BIN)/python -m bench.backfill_e2e

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
