"""The store: one answered chunk becomes one transaction.

- `chunk`: the context a window hands over, the chunk's plan, the shared bookkeeping.
- `commit`: the commit itself (lock, store, charge, enqueue, advance, coverage).
- `matches`: the two ways of storing matches (COPY when all can pay, counted when not).
- `credits`: paying in scan order, the debit and its ledger line.
- `staging`: the COPY text of a chunk's candidates, checked against a strict grammar.

Nothing here imports the window (docs/architecture.md, "One commit").
"""
