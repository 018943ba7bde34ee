"""Why the service refuses what a customer asked.

Each class stands for one answer a client can act on; the API maps each to one
HTTP status and problem type at its boundary (`api.problems`), so domain code
never speaks HTTP.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from indexer.errors import InvalidInput, LogfillError


class FieldError(NamedTuple):
    """One bad value: a JSON pointer into the body (or a query parameter name)."""

    pointer: str
    detail: str
    parameter: bool = False  # True: `pointer` names a query parameter


class InvalidFields(InvalidInput):
    """Values the client must change; every bad field is named at once."""

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.errors = errors
        super().__init__(detail or "; ".join(f"{e.pointer}: {e.detail}" for e in errors))

    @classmethod
    def one(cls, pointer: str, detail: str, *, parameter: bool = False) -> InvalidFields:
        return cls([FieldError(pointer, detail, parameter)])


class NotPermitted(LogfillError):
    """The workspace's plan does not include this (retrying will not help)."""

    def __init__(self, detail: str, problem_type: str) -> None:
        self.problem_type = problem_type
        super().__init__(detail)


class Conflict(LogfillError):
    """The object's current state forbids the action; `extra` says which state."""

    def __init__(self, detail: str, problem_type: str, **extra: Any) -> None:
        self.problem_type = problem_type
        self.extra = extra
        super().__init__(detail)


class IdempotencyKeyInFlight(Conflict):
    """A request with this key is still being handled: retry a little later."""

    def __init__(self) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still being handled; retry shortly",
            "idempotency-key-in-flight",
        )


class IdempotencyKeyReused(InvalidInput):
    """The key was first used with another body: a client bug, never retried away."""
