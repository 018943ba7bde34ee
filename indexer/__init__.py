"""logfill's domain and engine: customer resources, the scan pipeline (chain, window,
store, outbox, webhooks), the worker, and the platform code beneath them.
See docs/architecture.md for the map."""
