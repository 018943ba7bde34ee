"""`python -m demo --chain-only` (`make chain`): the demo's chain alone, for `make run`.

anvil on 127.0.0.1:8545 (or `--port`) with the demo's DemoToken, DemoNFT and
DemoItems and their history of transfers, then the `LOGFILL_CHAINS` line that
points `make run` (or `logfill run`, `api`, `worker`) at it, and the contract
addresses to subscribe to. It stays up until Ctrl-C, SIGTERM or SIGHUP, then
stops anvil. No database, no logfill process: those are `make run`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from rich.console import Console

from demo.chain import CHAIN_ID, LocalChain, local_chain
from demo.commands import shell_line
from demo.signals import stop_like_ctrl_c, wait_for_signal

DEFAULT_PORT = 8545


def chains_setting(rpc_url: str) -> str:
    """LOGFILL_CHAINS for the local chain: every mined block is safe at once (anvil has
    no reorgs), the rest as logfill's defaults."""
    return json.dumps({str(CHAIN_ID): {"rpc_url": rpc_url, "confirmations": 0}})


def print_chain(console: Console, chain: LocalChain) -> None:
    deployed, history = chain.deployed, chain.history
    rows = [
        ("anvil", chain.url, f"chain {CHAIN_ID}, blocks 0-{history.last_block}"),
        ("DemoToken", deployed.token, f"ERC-20, {history.token_transfers} Transfer events"),
        ("DemoNFT", deployed.nft, f"ERC-721, {history.nft_mints} mints"),
        ("DemoItems", deployed.items, f"ERC-1155, {history.item_mints} mints"),
    ]
    console.print("\n[bold]The chain is up[/] (Ctrl-C stops anvil):")
    for name, where, what in rows:
        console.print(f"  {name:<10} {where}   {what}", markup=False, highlight=False)
    console.print("`make run` against it, in another terminal in this repository:", markup=False)
    run = shell_line(["make", "run"], {"LOGFILL_CHAINS": chains_setting(chain.url)})
    console.print(f"  {run}", markup=False, highlight=False)


def serve_chain(blocks: int, port: int, console: Console) -> int:
    """Set the chain up, say how to use it, keep it up until a stop signal; exit code 0."""
    with local_chain(blocks, lambda step: console.print(f"[dim]- {step}[/]"), port=port) as chain:
        print_chain(console, chain)
        asyncio.run(wait_for_signal())
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone (EIO)
        console.print("anvil stopped.")
    return 0


def run_chain_only(blocks: int, port: int) -> int:
    """The `--chain-only` program: stops (and stops anvil) on Ctrl-C, SIGTERM or SIGHUP."""
    stop_like_ctrl_c()
    return serve_chain(blocks, port, Console(soft_wrap=True))
