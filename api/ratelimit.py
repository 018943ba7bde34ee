"""Per-API-key rate limit: a token bucket per key, sized from the workspace's plan.

The buckets live in this API process. With N `logfill api` processes alive
(`api.presence` counts them in PostgreSQL) each gives a key 1/N of its plan's
`api_requests_per_minute`, so behind a load balancer that spreads requests
evenly the key gets its plan's rate in all. A bucket holds a minute's worth of
requests and refills continuously.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[uuid.UUID, _Bucket] = {}
        self.processes = 1  # API processes alive, this one included (`api.presence`)

    def take(self, key_id: uuid.UUID, per_minute: int, now: float | None = None) -> int | None:
        """Spend one token; None if allowed, else the whole seconds until one is back."""
        now = time.monotonic() if now is None else now
        share = per_minute / max(1, self.processes)  # this process's part of the plan's rate
        rate = share / 60.0
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now, rate)
            bucket = self._buckets[key_id] = _Bucket(share, now)
        else:
            bucket.tokens = min(share, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / rate))

    def _forget_full(self, now: float, rate: float) -> None:
        """Drop buckets idle long enough to be full again (a new one starts full anyway)."""
        idle = 60.0
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < idle}
