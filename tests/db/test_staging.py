"""The window's COPY text: logs arrive in PostgreSQL byte for byte, and a provider's
malformed field is refused before it can shape rows of its own."""

from __future__ import annotations

import io
import uuid

import asyncpg
import pytest

from indexer.chain.errors import ProviderFault
from indexer.chain.logs import Log
from indexer.store.commit import create_staging_tables
from indexer.store.staging import COLUMNS, stage_payload

SUBSCRIPTION = uuid.UUID("11111111-2222-3333-4444-555555555555")
REQUEST = uuid.UUID("66666666-7777-8888-9999-000000000000")


def make_log(**overrides: object) -> Log:
    fields: dict[str, object] = {
        "block_number": 7,
        "block_hash": "0x" + "ab" * 32,
        "log_index": 3,
        "transaction_hash": "0x" + "CD" * 32,
        "transaction_index": 2,
        "address": "0x" + "12" * 20,
        "topics": ("0x" + "ff" * 32, "0x" + "01" * 32),
        "data": "0x00ff10",
    }
    fields.update(overrides)
    return Log(**fields)  # type: ignore[arg-type]


async def staged_rows(conn: asyncpg.Connection, payload: bytes) -> list[asyncpg.Record]:
    await create_staging_tables(conn)
    async with conn.transaction():
        await conn.copy_to_table(
            "window_matches", source=io.BytesIO(payload), columns=COLUMNS, format="text"
        )
        return await conn.fetch("SELECT * FROM window_matches")


@pytest.mark.parametrize(
    "log",
    [
        make_log(),
        make_log(topics=(), data="0x"),
        make_log(topics=tuple("0x" + f"{i:02x}" * 32 for i in range(4)), data="0x" + "AB" * 500),
    ],
)
async def test_staged_logs_arrive_byte_for_byte(conn: asyncpg.Connection, log: Log) -> None:
    (row,) = await staged_rows(conn, stage_payload([(SUBSCRIPTION, REQUEST, log)]))
    assert row["subscription_id"] == SUBSCRIPTION
    assert row["backfill_request_id"] == REQUEST
    assert (row["block_number"], row["log_index"], row["transaction_index"]) == (7, 3, 2)
    assert row["block_hash"] == bytes.fromhex(log.block_hash[2:])
    assert row["transaction_hash"] == bytes.fromhex(log.transaction_hash[2:])
    assert row["address"] == bytes.fromhex(log.address[2:])
    assert row["topics"] == [bytes.fromhex(t[2:]) for t in log.topics]
    assert row["data"] == bytes.fromhex(log.data[2:])


async def test_a_match_without_a_request_is_staged_with_null(conn: asyncpg.Connection) -> None:
    (row,) = await staged_rows(conn, stage_payload([(SUBSCRIPTION, None, make_log())]))
    assert row["backfill_request_id"] is None


OTHER = "99999999-9999-9999-9999-999999999999"


@pytest.mark.parametrize(
    "overrides",
    [
        # a forged second row for another subscription, smuggled in the data field
        {"data": f"0x00\n{OTHER}\t\\N\t1\t\\\\x00\t0\t\\\\x00\t0\t\\\\x00\t{{}}\t\\\\x00"},
        {"data": "0x00\t01"},
        {"block_hash": "0xzz" + "ab" * 31},
        {"transaction_hash": "0x" + "ab" * 31 + "\\\\"},
        {"topics": ("0x" + "ff" * 32 + ",\\\\\\\\x00",)},
        {"address": "0x12 34"},
    ],
)
def test_a_field_that_is_not_hex_is_the_providers_fault(overrides: dict[str, object]) -> None:
    with pytest.raises(ProviderFault, match="not hex"):
        stage_payload(
            [(SUBSCRIPTION, None, make_log()), (SUBSCRIPTION, None, make_log(**overrides))]
        )


async def test_an_odd_number_of_hex_digits_is_refused_by_postgresql(
    conn: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.DataError):
        await staged_rows(conn, stage_payload([(SUBSCRIPTION, None, make_log(data="0x123"))]))
