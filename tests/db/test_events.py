"""Webhook event bodies: stable ids and decoded arguments a receiver can use."""

from __future__ import annotations

import asyncpg
import orjson
from eth_abi.abi import encode
from eth_utils.abi import event_signature_to_log_topic

from indexer.chain.logs import Log
from indexer.outbox.bodies import EventDecoder, event_body, event_id

TRANSFER = "0x" + event_signature_to_log_topic("Transfer(address,address,uint256)").hex()
NOTE = "0x" + event_signature_to_log_topic("Note(string)").hex()
FROM, TO = "0x" + "11" * 20, "0x" + "22" * 20
ERC20_TRANSFER = {
    "type": "event",
    "name": "Transfer",
    "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ],
}
NOTE_ABI = {"type": "event", "name": "Note", "inputs": [{"name": "text", "type": "string"}]}


def topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:]


def make_log(topics: tuple[str, ...], data: bytes) -> Log:
    return Log(
        7, "0x" + "AB" * 32, 3, "0x" + "cd" * 32, 0, "0x" + "33" * 20, topics, "0x" + data.hex()
    )


def test_an_erc20_transfer_is_decoded_with_json_safe_values() -> None:
    log = make_log((TRANSFER, topic(FROM), topic(TO)), encode(["uint256"], [2**255]))
    body = event_body(1, log, EventDecoder([ERC20_TRANSFER]))
    assert body["decoded"] == {
        "event": "Transfer",
        "args": {
            "from": "0x1111111111111111111111111111111111111111",
            "to": "0x2222222222222222222222222222222222222222",
            "value": str(2**255),
        },
    }
    assert body["block_hash"] == "0x" + "ab" * 32 and body["id"] == event_id(1, log.block_hash, 3)


def test_an_erc721_transfer_is_not_forced_into_the_erc20_shape() -> None:
    token_id = "0x" + (5).to_bytes(32, "big").hex()
    log = make_log((TRANSFER, topic(FROM), topic(TO), token_id), b"")
    assert "decoded" not in event_body(1, log, EventDecoder([ERC20_TRANSFER]))


def test_event_ids_depend_on_chain_block_hash_and_index_only() -> None:
    assert event_id(1, "0xAB", 3) == event_id(1, "0xab", 3)
    assert len({event_id(1, "0xab", 3), event_id(2, "0xab", 3), event_id(1, "0xab", 4)}) == 3


async def test_a_string_with_nul_characters_can_be_kept_in_the_outbox(
    conn: asyncpg.Connection,
) -> None:
    log = make_log((NOTE,), encode(["string"], ["a\x00b"]))
    body = event_body(1, log, EventDecoder([NOTE_ABI]))
    assert body["decoded"]["args"]["text"] == "a\ufffdb"
    stored = await conn.fetchval("SELECT $1::text::jsonb::text", orjson.dumps(body).decode())
    assert orjson.loads(stored)["decoded"]["args"]["text"] == "a\ufffdb"
