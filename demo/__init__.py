"""The demo: logfill's whole mission end to end on a local chain (`python -m demo`).

It is a program of its own, a customer of the API plus the operator's one
step (a workspace), and nothing imports it; it imports `api.client` and
`indexer`. `run` sets the stage and prints the summary, `story` tells the
story through the API, `chain` is the anvil side, `service` the `logfill run`
child, `receiver` the customer's webhook endpoint, `commands` the command lines
it prints, `signals` how it stops, and `chain_only` the chain alone for
`make run` (`make chain`).
"""

from __future__ import annotations
