# One entry point for people and CI. Every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run chain demo test test-fast check lint types pytest migrate bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

## run: API + worker in one process on the embedded PostgreSQL (or LOGFILL_DATABASE_URL)
run: $(STAMP)
	$(BIN)/logfill run

## chain: anvil on 127.0.0.1:8545 with the demo's tokens and transfers, for `make run`;
## prints the LOGFILL_CHAINS line to use and stays up until Ctrl-C (`ARGS="--port 8546"`)
chain: $(STAMP) node_modules/.installed
	$(BIN)/python -m demo --chain-only $(ARGS)

## demo: the whole mission end to end on a local chain; `make demo ARGS=--keep` stays up
demo: $(STAMP) node_modules/.installed
	$(BIN)/python -m demo $(ARGS)

migrate: $(STAMP)
	$(BIN)/logfill migrate

## test: lint, types and the test suite (what CI runs)
test: lint types pytest

## test-fast: the unit and database tiers only (no node, no processes), for the edit loop
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/db $(PYTEST_ARGS)

check: test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# Node tooling (anvil, solcjs, OpenZeppelin) for tests/chain and the demo, pinned by
# package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

pytest: $(STAMP) node_modules/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

## screenshots: the dashboard's browser tests, then the README's screenshots from build/screenshots
screenshots: $(STAMP) node_modules/.installed
	$(BIN)/pytest -q tests/browser
	mkdir -p docs/screenshots
	cp build/screenshots/request-desktop.png docs/screenshots/request.png
	cp build/screenshots/request-phone.png docs/screenshots/request-phone.png

## bench: every benchmark under bench/ (the side-by-side of a bare pipeline, logfill and Ponder
## first, the worker's memory last), then bench/results/latest.json and latest.md and the table
## in README.md's Performance section (`ARGS="--only side_by_side"`, `ARGS=--collect-only`)
bench: $(STAMP) node_modules/.installed
	$(BIN)/python -m bench.report $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
