"""Chain access: the only code that talks to a node.

- `client`: the metered JSON-RPC client (every attempt paid from the window's budget).
- `scanner`: walks a block range in adaptive chunks, several calls in flight, in order.
- `errors`: what a provider's failure means (retry, split the range, give up).
- `span`: the adaptive eth_getLogs block range, learned per chain.
- `budget`: the CU budget of a window, and the backoff schedule.
- `logs`: logs as decoded from the wire and kept until a commit.
- `filters`: log filters, merged calls, and matching logs back to subscriptions.

Nothing here knows about requests, credits or the database.
"""
