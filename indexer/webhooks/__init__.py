"""Webhook delivery: the outbox rows the window writes, signed and POSTed with retries.

- `payload`: the body of a delivery and how a batch is split to fit the size limit.
- `signing`: Standard Webhooks headers and signatures.
- `retry`: what a failed attempt leads to (the schedule, Retry-After, 410).
- `sender`: one HTTP attempt, with timeouts, a capped read and the SSRF guard.
- `outbox`: the SQL side: claiming due rows under a lease, recording outcomes.
- `dispatcher`: the loop every worker runs.
"""
