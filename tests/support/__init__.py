"""What tests share: fixture modules (loaded by tests/conftest.py) and helpers to import."""
