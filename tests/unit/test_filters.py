"""Filters: eth_getLogs semantics in memory, merged calls, provider faults at parse time."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.chain.errors import ProviderFault
from indexer.chain.filters import LogFilter, Matcher, merge_filters
from indexer.chain.logs import Log
from tests.support.factories import parse_log

A, B, C = ("0x" + f"{i:02x}" * 20 for i in (1, 2, 3))
T1, T2, T3, T4 = ("0x" + f"{i:02x}" * 32 for i in (0x11, 0x22, 0x33, 0x44))


def make_log(address: str = A, topics: tuple[str, ...] = (T1,), index: int = 0) -> Log:
    return Log(10, "0x" + "99" * 32, index, "0x" + "77" * 32, 0, address, topics, "0x")


@pytest.mark.parametrize(
    ("log_filter", "log", "matches"),
    [
        (LogFilter.build(), make_log(), True),
        (LogFilter.build([A]), make_log(A), True),
        (LogFilter.build([A, B]), make_log(C), False),
        (LogFilter.build(topics=[[T1]]), make_log(topics=(T1, T2)), True),
        (LogFilter.build(topics=[[T2]]), make_log(topics=(T1, T2)), False),
        (LogFilter.build(topics=[None, [T2]]), make_log(topics=(T1, T2)), True),
        (LogFilter.build(topics=[None, [T3, T2]]), make_log(topics=(T1, T2)), True),  # OR
        (LogFilter.build(topics=[None, [T3]]), make_log(topics=(T1, T2)), False),
        (LogFilter.build(topics=[[T1], [T2], [T3]]), make_log(topics=(T1, T2)), False),
        (LogFilter.build(topics=[[T1], None, None]), make_log(topics=(T1,)), True),  # trailing
        (LogFilter.build(topics=[[]]), make_log(topics=()), True),  # empty OR = any
        (LogFilter.build([B], [[T1]]), make_log(A, (T1,)), False),
    ],
)
def test_matching_has_eth_get_logs_semantics(
    log_filter: LogFilter, log: Log, matches: bool
) -> None:
    assert log_filter.matches(log) is matches


def test_filter_rpc_params_are_canonical() -> None:
    params = LogFilter.build([B, A], [None, [T2, T1]]).to_rpc(16, 31)
    assert params == {
        "fromBlock": "0x10",
        "toBlock": "0x1f",
        "address": [A, B],
        "topics": [None, [T1, T2]],
    }


@pytest.mark.parametrize(
    ("filters", "calls"),
    [
        # union of addresses, topic0 OR-list when every filter has one
        (
            [LogFilter.build([A], [[T1]]), LogFilter.build([B], [[T2], [T3]])],
            [LogFilter.build([A, B], [[T1, T2]])],
        ),
        # one filter without topic0: no topic filter at all
        (
            [LogFilter.build([A], [[T1]]), LogFilter.build([B], [None, [T3]])],
            [LogFilter.build([A, B])],
        ),
        # one filter on any address: no address filter
        (
            [LogFilter.build([A], [[T1]]), LogFilter.build([], [[T2]])],
            [LogFilter.build([], [[T1, T2]])],
        ),
        ([], []),
    ],
)
def test_merged_calls(filters: list[LogFilter], calls: list[LogFilter]) -> None:
    assert merge_filters(filters) == calls


def test_merged_calls_split_above_max_addresses() -> None:
    addresses = ["0x" + i.to_bytes(20, "big").hex() for i in range(2500)]
    filters = [LogFilter.build([a], [[T1]]) for a in addresses]
    calls = merge_filters(filters, max_addresses=1000)
    assert [len(call.addresses) for call in calls] == [1000, 1000, 500]
    assert frozenset().union(*(c.addresses for c in calls)) == frozenset(addresses)
    assert all(call.topic0 == frozenset({T1}) for call in calls)


def test_matcher_finds_every_subscription_of_a_log() -> None:
    matcher = Matcher(
        {
            "transfers-of-a": LogFilter.build([A], [[T1]]),
            "all-of-a-and-b": LogFilter.build([A, B]),
            "t1-anywhere": LogFilter.build([], [[T1]]),
            "c-only": LogFilter.build([C]),
        }
    )
    assert sorted(matcher.match(make_log(A, (T1,)))) == [
        "all-of-a-and-b",
        "t1-anywhere",
        "transfers-of-a",
    ]
    assert matcher.match(make_log(B, (T2,))) == ["all-of-a-and-b"]
    assert matcher.match(make_log(C, (T1,))) == ["c-only", "t1-anywhere"]


def raw_log(**overrides: Any) -> dict[str, Any]:
    raw = {
        "address": A,
        "topics": [T1],
        "data": "0x0102",
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "transactionIndex": "0x2",
        "logIndex": "0x5",
        "removed": False,
    }
    raw.update(overrides)
    return raw


def test_parse_log_maps_to_plain_types() -> None:
    log = parse_log(raw_log(), from_block=16, to_block=16)
    assert log == Log(16, "0x" + "ab" * 32, 5, "0x" + "cd" * 32, 2, A, (T1,), "0x0102")
    assert log.row_values() == (
        16, b"\xab" * 32, 5, b"\xcd" * 32, 2, b"\x01" * 20, [b"\x11" * 32], b"\x01\x02"
    )  # fmt: skip


def test_filters_and_logs_normalise_hex_case_and_accept_bytes() -> None:
    log = parse_log(raw_log(address=A.upper().replace("0X", "0x")), from_block=16, to_block=16)
    assert log.address == A
    assert LogFilter.build([bytes.fromhex(A[2:])], [[T1.upper()]]) == LogFilter.build([A], [[T1]])
    assert LogFilter.build([A]).matches(log)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"blockNumber": "0x20"}, "returned a log of block 32"),
        ({"blockNumber": "0x0f"}, "returned a log of block 15"),
        ({"blockHash": None}, "pending or removed"),
        ({"removed": True}, "pending or removed"),
        ({"transactionHash": None}, "pending or removed"),
        ({"logIndex": "0xzz"}, "malformed log"),
        ({"address": "0x1234"}, "malformed log"),
        ({"topics": ["0x" + "11" * 32] * 5}, "malformed log"),
        ({"topics": "nope"}, "malformed log"),
    ],
)
def test_impossible_logs_are_provider_faults(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProviderFault, match=reason):
        parse_log(raw_log(**overrides), from_block=16, to_block=31)
