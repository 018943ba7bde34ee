"""The real-chain fixtures are real: a running anvil, deployed contracts, a varied log corpus."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.support import anvil as chain
from tests.support.anvil import AnvilNode
from tests.support.chain import LogCorpus


def _topic_address(address: str) -> str:
    return "0x" + address.lower().removeprefix("0x").rjust(64, "0")


def test_corpus_covers_three_contracts(log_corpus: LogCorpus) -> None:
    assert len(log_corpus.contracts) == 3
    seen = {log["address"].lower() for log in log_corpus.logs}
    assert seen == {c.lower() for c in log_corpus.contracts}
    assert 250 <= len(log_corpus.logs) <= 400


def test_corpus_has_every_event_kind(log_corpus: LogCorpus) -> None:
    topic0 = {log["topics"][0] if log["topics"] else None for log in log_corpus.logs}
    assert topic0 == {chain.TOPIC_TRANSFER, chain.TOPIC_APPROVAL, chain.TOPIC_NOTE, None}
    notes = [log for log in log_corpus.logs if log["topics"][:1] == [chain.TOPIC_NOTE]]
    assert all(len(log["topics"]) == 3 for log in notes)
    assert {len(log["data"]) for log in notes} >= {2 + 2 * 64, 2 + 2 * 192}  # empty and long


def test_corpus_range_and_empty_blocks(log_corpus: LogCorpus) -> None:
    numbers = [int(log["blockNumber"], 16) for log in log_corpus.logs]
    assert numbers == sorted(numbers)
    assert log_corpus.from_block <= numbers[0] and numbers[-1] < log_corpus.to_block
    assert log_corpus.to_block - log_corpus.from_block + 1 >= 30
    inside = [n for n in log_corpus.empty_blocks if numbers[0] < n < numbers[-1]]
    assert inside, "no empty block between blocks with logs"
    assert log_corpus.to_block in log_corpus.empty_blocks
    # One block holds logs of several transactions, from several contracts.
    per_block: dict[str, set[str]] = {}
    for log in log_corpus.logs:
        per_block.setdefault(log["blockNumber"], set()).add(log["transactionHash"])
    assert max(len(txs) for txs in per_block.values()) >= 4


def test_corpus_is_what_the_node_says(log_corpus: LogCorpus) -> None:
    again = chain.get_logs(log_corpus.url, log_corpus.from_block, log_corpus.to_block)
    assert again == log_corpus.logs


def test_address_filter_returns_a_subset(log_corpus: LogCorpus) -> None:
    target = log_corpus.contracts[1]
    got = chain.get_logs(log_corpus.url, log_corpus.from_block, log_corpus.to_block, address=target)
    expected = [log for log in log_corpus.logs if log["address"].lower() == target.lower()]
    assert got == expected
    assert 0 < len(got) < len(log_corpus.logs)


def test_topic_or_lists_and_wildcards(log_corpus: LogCorpus) -> None:
    kinds = [chain.TOPIC_TRANSFER, chain.TOPIC_APPROVAL]
    second = [_topic_address(a) for a in chain.POOL_ADDRESSES[:2]]
    got = chain.get_logs(
        log_corpus.url,
        log_corpus.from_block,
        log_corpus.to_block,
        address=log_corpus.contracts[:2],
        topics=[kinds, None, second],
    )
    expected = [
        log
        for log in log_corpus.logs
        if log["address"].lower() in {c.lower() for c in log_corpus.contracts[:2]}
        and len(log["topics"]) >= 3
        and log["topics"][0] in kinds
        and log["topics"][2] in second
    ]
    assert got == expected
    assert 0 < len(got) < len(log_corpus.logs)


def test_fresh_anvil_is_a_clean_chain(fresh_anvil: AnvilNode) -> None:
    assert fresh_anvil.chain_id == chain.CHAIN_ID
    assert chain.block_number(fresh_anvil.url) == 0
    assert fresh_anvil.rpc("eth_accounts")[0].lower() == chain.DEV_ACCOUNTS[0].lower()


@pytest.mark.parametrize("fresh_anvil", [("--no-mining",)], indirect=True)
def test_fresh_anvil_takes_extra_args(fresh_anvil: AnvilNode) -> None:
    assert fresh_anvil.rpc("anvil_getAutomine") is False
    chain.mine(fresh_anvil.url, 3)
    assert chain.block_number(fresh_anvil.url) == 3


def test_fill_logs_emits_exactly_total(fresh_anvil: AnvilNode) -> None:
    address = chain.deploy_emitter(fresh_anvil.url)
    first, last = chain.fill_logs(fresh_anvil.url, address, 2345, per_tx=500, txs_per_block=2)
    logs = chain.get_logs(fresh_anvil.url, first, last, address=address)
    assert len(logs) == 2345
    assert last - first + 1 == 3  # 5 transactions, 2 a block
    assert fresh_anvil.rpc("anvil_getAutomine") is True  # restored


def test_anvil_node_leaves_no_process_behind() -> None:
    with AnvilNode() as node:
        pid = node.pid
        assert psutil.Process(pid).is_running()
        assert pid in {p.pid for p in psutil.Process().children(recursive=True)}
    assert node.proc is None
    assert not psutil.pid_exists(pid)  # stopped and reaped: no zombie either


def test_anvil_node_stops_when_the_block_raises() -> None:
    pid = 0
    with pytest.raises(ZeroDivisionError), AnvilNode() as node:
        pid = node.pid
        _ = 1 / 0
    assert pid and not psutil.pid_exists(pid)


def test_missing_anvil_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(chain, "ANVIL_BIN", tmp_path / "anvil")
    with pytest.raises(chain.ChainToolsMissing, match=r"make node_modules/\.installed"):
        AnvilNode().start()


def test_compile_emitter_is_cached() -> None:
    abi, bytecode = chain.compile_emitter()
    assert bytecode.startswith("0x6080")
    assert {e["name"] for e in abi if e["type"] == "event"} == {
        "Transfer",
        "Approval",
        "Note",
        "Anon",
    }
    assert any(chain.BUILD_DIR.glob("Emitter-*.json"))
    assert chain.compile_emitter() == (abi, bytecode)
