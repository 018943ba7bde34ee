"""What a delivery attempt leads to: delivered, another attempt later, or dead.

Pure: the clock and the random source are arguments, so the schedule is table-tested.

- 2xx is the only success. A redirect is a failure (never followed: it could
  point anywhere, our own network included).
- Every other answer and every network error or timeout is retried on a
  Svix-like schedule with jitter, until the schedule's attempts are used up.
- 429 and 503 may say `Retry-After`: it can push the next attempt later (up to a
  cap), never earlier than the schedule, so a receiver cannot burn through the
  attempts in seconds.
- 410 Gone means "stop sending": the delivery is dead and the subscription's
  webhook is disabled until its owner re-enables it.
- A target the SSRF guard refuses, or a subscription without a webhook, is dead
  at once: retrying would send nothing different, and the owner sees the
  reason on the delivery (and can retry it once the URL is fixed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Literal

from indexer.settings import Settings

RETRY_AFTER_STATUSES = frozenset({429, 503})


class Failure(StrEnum):
    """Why an attempt got no HTTP answer (or was never sent)."""

    TIMEOUT = "timeout"
    NETWORK = "network"  # DNS, connection refused or reset, TLS, malformed answer
    REFUSED = "refused"  # the SSRF guard
    NO_WEBHOOK = "no_webhook"  # the subscription's webhook was removed or disabled


NOT_RETRIED = frozenset({Failure.REFUSED, Failure.NO_WEBHOOK})


@dataclass(frozen=True)
class Attempt:
    """What one attempt produced: an HTTP status, or a failure without one."""

    status_code: int | None = None
    failure: Failure | None = None
    retry_after: str | None = None  # the header, as the receiver sent it
    error: str | None = None  # for `last_error`; None when delivered

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]  # seconds before attempt 1, 2, ...; len = attempts
    jitter: float = 0.0
    max_retry_after: float = 36000.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.webhook_retry_schedule,
            settings.webhook_retry_jitter,
            settings.webhook_max_retry_after_seconds,
        )


@dataclass(frozen=True)
class Decision:
    status: Literal["delivered", "pending", "dead"]
    retry_in: float | None = None  # seconds from now, when pending
    error: str | None = None
    disable_reason: str | None = None  # set: disable the subscription's webhook


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def retry_delay(
    attempt: Attempt, attempts_made: int, policy: RetryPolicy, now: datetime, rng: random.Random
) -> float:
    """The scheduled delay before the next attempt, jittered, stretched by Retry-After."""
    delay = policy.schedule[attempts_made] * (1 + policy.jitter * (2 * rng.random() - 1))
    if attempt.status_code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(attempt.retry_after, now)
        if asked is not None:
            delay = max(delay, min(asked, policy.max_retry_after))
    return delay


def decide(
    attempt: Attempt, attempts_made: int, policy: RetryPolicy, now: datetime, rng: random.Random
) -> Decision:
    """The outcome of attempt number `attempts_made` (1 for the first)."""
    if attempt.delivered:
        return Decision("delivered")
    if attempt.status_code == 410:
        return Decision("dead", error=attempt.error, disable_reason="receiver answered 410 Gone")
    if attempt.failure in NOT_RETRIED:
        return Decision("dead", error=attempt.error)
    if attempts_made >= len(policy.schedule):
        tries = "1 attempt" if attempts_made == 1 else f"{attempts_made} attempts"
        return Decision("dead", error=f"{attempt.error} (gave up after {tries})")
    delay = retry_delay(attempt, attempts_made, policy, now, rng)
    return Decision("pending", retry_in=delay, error=attempt.error)
