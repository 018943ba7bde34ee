"""Prometheus metrics of the window job (delivery has its own: `webhooks.metrics`).

The worker serves them on `LOGFILL_WORKER_METRICS_PORT`; `logfill run` on the
API's `/metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CU_SPENT = Counter("logfill_cu_spent_total", "Compute units spent on RPC calls", ["chain_id"])
RPC_CALLS = Counter(
    "logfill_rpc_calls_total", "RPC attempts paid from window budgets", ["chain_id"]
)
WINDOWS = Counter("logfill_windows_total", "Backfill windows run", ["chain_id", "outcome"])
MATCHES = Counter("logfill_matches_total", "Matches committed by windows", ["chain_id", "kind"])
LOGS_READ = Counter(
    "logfill_logs_read_total",
    "Logs a window read: from the provider, or from the chain's log cache (no CU)",
    ["chain_id", "source"],
)
CREDITS_CHARGED = Counter("logfill_credits_charged_total", "Credits charged", ["chain_id"])
BUDGET_UTILISATION = Gauge(
    "logfill_window_budget_utilisation", "CU spent / budget of the last window", ["chain_id"]
)
QUEUE_DEPTH = Gauge(
    "logfill_backfill_requests", "Backfill requests by status", ["chain_id", "status"]
)
WINDOW_DURATION = Histogram(
    "logfill_window_duration_seconds",
    "Wall time of one window",
    ["chain_id"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FOLLOW_LAG = Gauge(
    "logfill_following_lag_blocks",
    "Safe blocks not scanned yet by the chain's follow requests, the most behind of them "
    "(0: all caught up), as the last window left them",
    ["chain_id"],
)
FOLLOWING = Gauge(
    "logfill_following_requests", "Follow requests a chain's last window served", ["chain_id"]
)
REORGS = Counter(
    "logfill_reorgs_total", "Reorgs below the safe head found and repaired", ["chain_id"]
)
REORG_DEPTH = Histogram(
    "logfill_reorg_depth_blocks",
    "Blocks a repaired reorg replaced (from the fork to the newest block scanned)",
    ["chain_id"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
MATCHES_REMOVED = Counter(
    "logfill_matches_removed_total",
    "Stored matches of orphaned blocks removed (and refunded) by reorg repairs",
    ["chain_id"],
)
CHAIN_HALTED = Gauge(
    "logfill_chain_halted",
    "1 while a reorg deeper than max_reorg_depth keeps the chain's windows stopped",
    ["chain_id"],
)
LEASES_TAKEN_OVER = Counter(
    "logfill_window_leases_taken_over_total",
    "Window leases taken over from a leader that died mid-window (its window left open)",
    ["chain_id"],
)
