"""Prometheus metrics of webhook delivery (served with the window's, see indexer.window.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "logfill_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, dead, disabled, lease_lost)",
    ["outcome"],
)
EVENTS_DELIVERED = Counter(
    "logfill_webhook_events_delivered_total", "Events in webhook deliveries answered 2xx"
)
DELIVERY_LATENCY = Histogram(
    "logfill_webhook_delivery_latency_seconds",
    "From the commit of an outbox row to its 2xx answer, retries included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 86400),
)
ATTEMPT_DURATION = Histogram(
    "logfill_webhook_attempt_duration_seconds",
    "Wall time of one webhook POST (connect, send, read the answer)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
IN_FLIGHT = Gauge("logfill_webhook_deliveries_in_flight", "Webhook deliveries being sent")
