"""Tests against a real anvil node or the scripted fake provider (with PostgreSQL as needed)."""
