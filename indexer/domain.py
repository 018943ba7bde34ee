"""logfill's vocabulary, defined once: the statuses of a backfill request and of a
delivery, and the scan order. See docs/architecture.md, "Vocabulary".

The database's CHECK constraints (migrations/) hold the same words; the API's
models and the command line take them from here.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Order = Literal["asc", "desc"]
ORDERS: Final[tuple[Order, ...]] = get_args(Order)

BackfillStatus = Literal[
    "queued", "processing", "following", "paused_credits", "paused", "blocked",
    "completed", "completed_noop", "cancelled", "failed",
]  # fmt: skip
BACKFILL_STATUSES: Final[tuple[BackfillStatus, ...]] = get_args(BackfillStatus)
# A window scans these (paused_credits ones once their workspace has credits again;
# following ones, caught up with the safe head, as it moves).
RUNNABLE: Final[frozenset[BackfillStatus]] = frozenset(
    {"queued", "processing", "following", "paused_credits"}
)
# A request has estimates of when it starts and finishes only while it can run.
ESTIMATED: Final[frozenset[BackfillStatus]] = frozenset({"queued", "processing"})
# Nothing happens to these any more (but an owner's `retry` of a failed one).
TERMINAL: Final[frozenset[BackfillStatus]] = frozenset(
    {"completed", "completed_noop", "cancelled", "failed"}
)
# Terminal and successful: every block of the range is scanned (or was covered).
FINISHED: Final[frozenset[BackfillStatus]] = frozenset({"completed", "completed_noop"})

DeliveryStatus = Literal["pending", "delivered", "dead"]
DELIVERY_STATUSES: Final[tuple[DeliveryStatus, ...]] = get_args(DeliveryStatus)
