"""The outbox: what a commit hands to webhook delivery, in the same transaction.

- `bodies`: each match as a webhook event (stable id, log, decoded arguments), and
  the bytes a delivery POSTs and signs.
- `split`: a batch of events cut into deliveries that fit the size limits.
- `enqueue`: the outbox rows of a commit's matches, inserted with them.

`webhooks/` claims, signs and sends these rows; nothing here talks HTTP.
"""
