"""One root exception; driver and HTTP errors are translated at the boundary."""

from __future__ import annotations


class LogfillError(Exception):
    """Root of every error logfill raises on purpose.

    `exit_code` is what the CLI exits with when the error reaches it.
    """

    exit_code = 1


class ConfigError(LogfillError):
    """A setting is missing or invalid; start-up cannot continue."""

    exit_code = 2


class DatabaseUnavailable(LogfillError):
    """PostgreSQL cannot be reached (or refused the connection)."""

    exit_code = 2


class MigrationError(LogfillError):
    """The database schema does not match the migrations this code knows."""

    exit_code = 2


class NotFound(LogfillError):
    """An object does not exist (or belongs to another workspace)."""


class InvalidInput(LogfillError):
    """A value given by a user or operator is not acceptable."""
