"""The compute-unit budget of one window, and the backoff schedule for retries.

Both are pure: no clock, no randomness of their own; callers pass them in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from indexer.errors import LogfillError


class BudgetExhausted(LogfillError):
    """The next RPC attempt does not fit in this window's budget; the rest waits."""


Journal = Callable[[int, int], Awaitable[None]]  # (cu, attempts) about to be sent


@dataclass
class WindowBudget:
    """CU a window may spend. Every attempt is paid *before* it is sent, and with a
    `journal`, written down before it is sent (the window's audit in PostgreSQL)."""

    limit_cu: int
    spent_cu: int = 0
    attempts: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    journal: Journal | None = None

    def __post_init__(self) -> None:
        if self.limit_cu < 0:
            raise ValueError("a budget cannot be negative")

    @property
    def remaining_cu(self) -> int:
        return self.limit_cu - self.spent_cu

    def can_afford(self, cost: int) -> bool:
        return cost <= self.remaining_cu

    def spend(self, method: str, cost: int) -> None:
        """Pay for one attempt of `method`, or raise BudgetExhausted and pay nothing."""
        if cost < 0:
            raise ValueError("a call cannot cost less than nothing")
        if not self.can_afford(cost):
            raise BudgetExhausted(
                f"{method} costs {cost} CU but only {self.remaining_cu} of {self.limit_cu} remain"
            )
        self.spent_cu += cost
        self.attempts += 1
        self.by_method[method] = self.by_method.get(method, 0) + cost

    def refund(self, method: str, cost: int) -> None:
        """Undo `spend` for an attempt that was never sent (its journal line failed)."""
        self.spent_cu -= cost
        self.attempts -= 1
        self.by_method[method] -= cost


def backoff_delay(
    attempt: int,
    *,
    jitter: float,
    base_seconds: float = 0.25,
    cap_seconds: float = 8.0,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    A provider's Retry-After wins. Otherwise exponential with "equal jitter":
    half the step is fixed, half is spread by `jitter` in [0, 1).
    """
    if retry_after is not None:
        return max(0.0, retry_after)
    step = min(cap_seconds, base_seconds * 2.0**attempt)
    return step / 2 + step / 2 * jitter
