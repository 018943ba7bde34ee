"""A local chain laid out like a real one: many blocks, a few logs in each.

bench.rpc_scan's `fill` packs 500 logs into a block (few blocks, quick to make);
`fill_spread` spreads logs evenly over many blocks (10 a block over 20,000 blocks
by default in bench.side_by_side), from a few Emitter contracts, still in seconds.

anvil must run with `ANVIL_ARGS`: under the Prague rules every block also writes
its parent's hash into a history contract (EIP-2935), and anvil then takes
milliseconds a block, more as the chain grows (minutes for 20,000 blocks);
Cancun rules without historical states keep mining at about 20 µs a block.
"""

from __future__ import annotations

from tests.support import anvil as chain

ANVIL_ARGS = ("--hardfork", "cancun", "--prune-history")
TX_GAS = 100_000  # the gas limit of each emitMany: well above what it uses
BLOCKS_PER_ROUND = 200  # blocks mined per round: anvil's pool stays small
CHECK_BLOCKS = 2000  # blocks per eth_getLogs of the final check


def fill_spread(
    url: str, total: int, blocks: int, *, contracts: int = 5, txs_per_block: int = 2
) -> tuple[list[bytes], int, int]:
    """`total` logs over exactly `blocks` consecutive blocks, as many in each block.

    Deploys `contracts` Emitters; each block holds `txs_per_block` emitMany
    transactions, transaction k calling contract k % contracts. With automining
    off, each round's transactions go out as one JSON-RPC batch and one
    `anvil_mine` mines the round. For the fill (restored afterwards) the block gas
    limit makes a block take exactly `txs_per_block` transactions: anvil packs a
    transaction while the gas used so far plus its gas limit fits, and each
    transaction's limit is well above what it uses; a block then uses under half
    its limit, so the base fee never rises. Every block is checked to hold
    total / blocks logs. Returns (the contracts' addresses, first block, last block).
    """
    per_tx, rest = divmod(total, blocks * txs_per_block)
    if rest or per_tx < 1:
        raise ValueError(f"{total} logs do not fill {blocks} blocks of {txs_per_block} txs evenly")
    if chain.emit_many_gas(per_tx) > TX_GAS:
        raise ValueError(f"{per_tx} logs a transaction need more than {TX_GAS} gas")
    addresses = [chain.deploy_emitter(url) for _ in range(contracts)]
    sender = chain.DEV_ACCOUNTS[0]
    with chain.http_client(timeout=600) as c:
        # What one transaction uses, from three (mined before the range).
        used = [
            int(
                chain.transact(
                    url, addresses[0], chain.emit_many_calldata(per_tx, 10**9 + k), gas=TX_GAS
                )["gasUsed"],
                16,
            )
            for k in range(3)
        ]
        mean_used = sum(used) // len(used)
        latest = chain.rpc(url, "eth_getBlockByNumber", ["latest", False], client=c)
        original_limit = int(latest["gasLimit"], 16)
        limit = TX_GAS + mean_used * (txs_per_block - 1) + mean_used // 2
        automine = bool(chain.rpc(url, "anvil_getAutomine", client=c))
        nonce = int(chain.rpc(url, "eth_getTransactionCount", [sender, "pending"], client=c), 16)
        first = chain.block_number(url) + 1
        chain.rpc(url, "evm_setBlockGasLimit", [hex(limit)], client=c)
        chain.rpc(url, "evm_setAutomine", [False], client=c)
        try:
            for start in range(0, blocks, BLOCKS_PER_ROUND):
                round_blocks = min(BLOCKS_PER_ROUND, blocks - start)
                calls = []
                for k in range(start * txs_per_block, (start + round_blocks) * txs_per_block):
                    tx = {
                        "from": sender,
                        "to": addresses[k % contracts],
                        "data": chain.emit_many_calldata(per_tx, k),
                        "gas": hex(TX_GAS),
                        "nonce": hex(nonce + k),
                    }
                    calls.append(("eth_sendTransaction", [tx]))
                chain.rpc_batch(url, calls, client=c)
                chain.rpc(url, "anvil_mine", [hex(round_blocks)], client=c)
                pool = chain.rpc(url, "txpool_status", client=c)
                if int(pool["pending"], 16) or int(pool["queued"], 16):
                    raise RuntimeError(f"blocks took fewer than {txs_per_block} txs: {pool}")
        finally:
            chain.rpc(url, "evm_setAutomine", [automine], client=c)
            chain.rpc(url, "evm_setBlockGasLimit", [hex(original_limit)], client=c)
        last = first + blocks - 1
        per_block = total // blocks
        for low in range(first, last + 1, CHECK_BLOCKS):
            high = min(last, low + CHECK_BLOCKS - 1)
            counts: dict[int, int] = {}
            for entry in chain.get_logs(url, low, high, client=c):
                number = int(entry["blockNumber"], 16)
                counts[number] = counts.get(number, 0) + 1
            uneven = [b for b in range(low, high + 1) if counts.get(b) != per_block]
            if uneven:
                raise RuntimeError(f"block {uneven[0]} holds {counts.get(uneven[0])} logs")
    return [bytes.fromhex(a[2:]) for a in addresses], first, last
