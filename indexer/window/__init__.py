"""The backfill window: one scheduled, budgeted run over one chain's runnable requests.

- `run`: the window itself (lease, heads, requests, slices, scan, commits, audit row).
- `plan`: who is served next over which blocks (fair share, batching); pure.
- `eta`: when queued work will likely start and finish; pure.
- `chain_state`: the lease, the heads and the learned span kept per chain.
- `metrics`: Prometheus metrics of windows.

The window drives `chain/` and hands each answered chunk to `store/`
(docs/architecture.md, "One window" and "Layers").
"""
