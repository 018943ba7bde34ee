"""Tests on a real PostgreSQL (a migrated clone per test), everything else in-process."""
