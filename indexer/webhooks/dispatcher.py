"""The delivery loop every worker runs: claim due outbox rows, send each, record outcomes.

A long-running task rather than an interval job: when a delivery finishes, the
next row of its subscription may become claimable (a strict subscription's next
row, or an independent one's slot under its in-flight bound), and waiting for the
next tick would cap a subscription at a few deliveries per tick. The loop claims
again as soon as a delivery finishes and otherwise polls every
`webhook_poll_seconds`, which also picks up rows whose retry has come due.

Each claimed row is sent in its own task (at most `webhook_max_in_flight` per
worker), so a slow receiver holds one slot for at most the attempt timeout.
Several workers share the outbox through leases (see `claim_deliveries`); a
worker that dies mid-delivery leaves a lease that runs out, and another worker
sends the row again with the same `webhook-id`: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import httpx
import structlog

from indexer.db.pool import UNAVAILABLE_ERRORS
from indexer.settings import Settings
from indexer.webhooks import metrics
from indexer.webhooks.claims import ClaimedDelivery, Outcome, claim_deliveries, record_outcomes
from indexer.webhooks.retry import Attempt, Decision, Failure, RetryPolicy, decide
from indexer.webhooks.sender import attempt_delivery, build_client

log = structlog.get_logger(__name__)


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.client = client
        self.policy = RetryPolicy.from_settings(settings)
        self.rng = rng or random.Random()
        self.in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Claim and send until cancelled."""
        while True:
            self._wake.clear()  # before claiming: a delivery finishing meanwhile wakes us
            free = self.settings.webhook_max_in_flight - len(self.in_flight)
            try:
                claimed = await self.claim(free) if free > 0 else 0
            except Exception:  # a bug must not stop deliveries for good: log, poll again
                log.exception("webhook_claim_crashed")
                claimed = 0
            if claimed and claimed == free:
                continue  # there may be more due already
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.webhook_poll_seconds):
                    await self._wake.wait()

    async def claim(self, limit: int) -> int:
        """Lease up to `limit` due rows and start sending them; a database error waits."""
        try:
            deliveries = await claim_deliveries(
                self.pool,
                limit=limit,
                strict_per_subscription=self.settings.webhook_concurrency_per_subscription,
                independent_per_subscription=self.settings.webhook_max_in_flight_per_subscription,
                lease_seconds=self.settings.webhook_lease_seconds,
            )
        except UNAVAILABLE_ERRORS as exc:
            log.warning("webhook_claim_failed", error=str(exc) or type(exc).__name__)
            return 0
        for delivery in deliveries:
            task = asyncio.create_task(self.deliver(delivery), name=f"webhook:{delivery.id}")
            self.in_flight.add(task)
            task.add_done_callback(self._finished)
        metrics.IN_FLIGHT.set(len(self.in_flight))
        return len(deliveries)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        metrics.IN_FLIGHT.set(len(self.in_flight))
        self._wake.set()

    async def deliver(self, delivery: ClaimedDelivery) -> None:
        """One attempt and its outcome; a failure here leaves the lease to run out."""
        try:
            started = time.monotonic()
            attempt = await self.attempt(delivery)
            metrics.ATTEMPT_DURATION.observe(time.monotonic() - started)
            decision = decide(attempt, delivery.attempt, self.policy, datetime.now(UTC), self.rng)
            await self.record(Outcome(delivery, decision, attempt.status_code))
        except Exception:
            log.exception("webhook_delivery_crashed", delivery_id=str(delivery.id))

    async def attempt(self, delivery: ClaimedDelivery) -> Attempt:
        if delivery.webhook_url is None or delivery.webhook_disabled:
            why = delivery.webhook_disabled_reason or "the subscription has no webhook URL"
            return Attempt(failure=Failure.NO_WEBHOOK, error=f"webhook disabled: {why}")
        return await attempt_delivery(
            self.client,
            message_id=str(delivery.id),
            url=delivery.webhook_url,
            secrets=delivery.secrets,
            payload=delivery.payload,
            settings=self.settings,
        )

    async def record(self, outcome: Outcome) -> None:
        try:
            recorded = await record_outcomes(self.pool, [outcome])
        except UNAVAILABLE_ERRORS as exc:
            # The lease runs out and the row is sent again: at least once, never lost.
            log.warning(
                "webhook_outcome_not_recorded",
                delivery_id=str(outcome.delivery.id),
                error=str(exc) or type(exc).__name__,
            )
            return
        if outcome.delivery.id not in recorded:
            metrics.ATTEMPTS.labels("lease_lost").inc()
            log.warning("webhook_lease_lost", delivery_id=str(outcome.delivery.id))
            return
        observe(outcome.delivery, outcome.decision)

    async def drain(self, grace: float) -> None:
        """Let deliveries in flight finish for up to `grace` seconds, then cancel them."""
        if self.in_flight:
            _, late = await asyncio.wait(set(self.in_flight), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def observe(delivery: ClaimedDelivery, decision: Decision) -> None:
    """Metrics and a log line for a recorded outcome."""
    fields = {"delivery_id": str(delivery.id), "attempt": delivery.attempt}
    if decision.status == "delivered":
        metrics.ATTEMPTS.labels("delivered").inc()
        metrics.EVENTS_DELIVERED.inc(delivery.event_count)
        latency = (datetime.now(UTC) - delivery.created_at).total_seconds()
        metrics.DELIVERY_LATENCY.observe(max(0.0, latency))
        log.debug("webhook_delivered", **fields, events=delivery.event_count)
    elif decision.status == "pending":
        metrics.ATTEMPTS.labels("retry").inc()
        log.info(
            "webhook_attempt_failed", **fields, error=decision.error, retry_in=decision.retry_in
        )
    elif decision.disable_reason:
        metrics.ATTEMPTS.labels("disabled").inc()
        log.warning(
            "webhook_disabled",
            **fields,
            subscription_id=str(delivery.subscription_id),
            reason=decision.disable_reason,
        )
    else:
        metrics.ATTEMPTS.labels("dead").inc()
        log.warning("webhook_delivery_dead", **fields, error=decision.error)


@asynccontextmanager
async def delivering(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Dispatcher]:
    """Run the delivery loop for the duration of the block; close everything after.

    On exit the loop stops claiming, deliveries in flight get up to one attempt
    timeout to finish and record their outcome, and the HTTP client is closed.
    """
    client = build_client(settings)
    dispatcher = Dispatcher(pool, settings, client)
    loop = asyncio.create_task(dispatcher.run(), name="webhook-deliveries")
    log.info("webhook_delivery_started", max_in_flight=settings.webhook_max_in_flight)
    try:
        yield dispatcher
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await dispatcher.drain(settings.webhook_timeout_seconds + 1)
        await client.aclose()
        log.info("webhook_delivery_stopped")
