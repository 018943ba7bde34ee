"""Pytest fixtures backed by a real anvil node (see tests/support/anvil.py).

Loaded for every test by `pytest_plugins` in tests/conftest.py; a test asks for them by name:

- `anvil` (session): one node shared by the whole run. Tests on it may add blocks and logs, but
  must not rewind it (evm_revert, anvil_reset, anvil_rollback): `log_corpus` lives on it.
- `log_corpus` (session): 3 Emitter contracts and a fixed, varied log corpus on `anvil`.
- `fresh_anvil` (function): a node of the test's own; extra anvil arguments through indirect
  parametrization: `@pytest.mark.parametrize("fresh_anvil", [("--no-mining",)], indirect=True)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import anvil as chain
from tests.support.anvil import AnvilNode


@dataclass(frozen=True)
class LogCorpus:
    """Logs on the session anvil: `logs` is exactly what eth_getLogs returns, unfiltered, over
    [from_block, to_block] (raw JSON-RPC dicts, hex strings, in chain order)."""

    url: str
    contracts: list[str]  # checksummed Emitter addresses
    from_block: int
    to_block: int
    logs: list[dict[str, Any]]
    empty_blocks: list[int] = field(default_factory=list)  # blocks in the range with no logs


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


@pytest.fixture
def fresh_anvil(request: pytest.FixtureRequest) -> Iterator[AnvilNode]:
    args: tuple[str, ...] = tuple(getattr(request, "param", ()))
    with AnvilNode(*args) as node:
        yield node


def build_corpus(url: str) -> LogCorpus:
    """Deploys 3 Emitters and emits ~300 logs over ~35 blocks, some of them empty.

    Variety: emitMany over the topic pools from every contract; blocks with no logs (also the
    last block of the range); one block with several transactions from different contracts; a
    Transfer from the zero address; Notes with empty and long (>32 bytes) data; anonymous logs
    with no topics at all.
    """
    contracts = [chain.deploy_emitter(url) for _ in range(3)]
    a, b, c = contracts
    zero = "0x" + "00" * 20
    from_block = chain.block_number(url) + 1

    for i in range(24):
        chain.emit_many(url, contracts[i % 3], 5 + (i * 7) % 16, seed=1000 + i)
        if i == 4:
            chain.mine(url, 2)
        elif i == 11:
            chain.mine(url, 1)
        elif i == 17:
            chain.transact_in_one_block(
                url,
                [
                    (a, chain.emit_many_calldata(6, 77)),
                    (b, chain.transfer_calldata(zero, chain.POOL_ADDRESSES[0], 10**18)),
                    (c, chain.note_calldata(chain.POOL_TAGS[1], 3, b"")),
                    (a, chain.anon_calldata(42)),
                ],
            )
    pool = chain.POOL_ADDRESSES
    chain.emit_transfer(url, b, pool[1], pool[2], 0)
    chain.emit_approval(url, c, pool[3], pool[0], 2**256 - 1)
    chain.emit_note(url, a, chain.POOL_TAGS[2], 4, bytes(range(100)))
    chain.emit_anon(url, c, 7)
    chain.mine(url, 1)
    to_block = chain.block_number(url)

    logs = chain.get_logs(url, from_block, to_block)
    with_logs = {int(log["blockNumber"], 16) for log in logs}
    empty = [n for n in range(from_block, to_block + 1) if n not in with_logs]
    return LogCorpus(url, contracts, from_block, to_block, logs, empty)


@pytest.fixture(scope="session")
def log_corpus(anvil: AnvilNode) -> LogCorpus:
    return build_corpus(anvil.url)
