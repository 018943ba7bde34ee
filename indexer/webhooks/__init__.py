"""Webhook delivery: the outbox rows a commit wrote, signed and POSTed with retries.

- `dispatcher`: the loop every worker runs (claim, send each in its own task, record).
- `claims`: the SQL side: claiming due rows under a lease, recording outcomes.
- `sender`: one HTTP attempt, with timeouts, a capped read and the SSRF guard.
- `signing`: Standard Webhooks headers and signatures.
- `retry`: what a failed attempt leads to (the schedule, Retry-After, 410).
- `ssrf`: only public addresses, checked where the connection is made (and, as
  advice, when a customer sets a URL: `check_target`).
- `metrics`: Prometheus metrics of delivery.

The bodies and the rows themselves are written by `indexer.outbox`.
"""
