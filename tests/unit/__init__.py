"""Pure tests: no database, no node, no subprocess (with tests/db: `pytest tests/unit tests/db`)."""
