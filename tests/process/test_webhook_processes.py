"""Two real `logfill worker` processes share the outbox; one is killed mid-delivery.

The receiver holds the first request it gets, the test finds the worker process
on the other end of that connection and SIGKILLs it. Its lease runs out, the
other worker sends the row again with the same `webhook-id`, and every other row
arrives exactly once: at least once for all, nothing lost, no double sends
between live workers. For both orderings; strict subscriptions also keep write
order.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiohttp import web

from tests.support.factories import make_workspace
from tests.support.processes import Worker, Workers
from tests.support.webhooks import (
    Received,
    Receiver,
    insert_delivery,
    receiver,
    set_ordering,
    wait_until,
)
from tests.support.window import create_subscription

SUBSCRIPTIONS = 4
ROWS_EACH = 6
KILLED = "(killed)"


@pytest.fixture
def webhook_workers(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    env = dict(
        cli_env,
        LOGFILL_WORKER_METRICS_PORT="0",
        LOGFILL_CHAINS=json.dumps({}),
        LOGFILL_WEBHOOK_ALLOW_PRIVATE="true",
        LOGFILL_WEBHOOK_RETRY_SCHEDULE="0,0.2,0.4,0.6",
        LOGFILL_WEBHOOK_RETRY_JITTER="0",
        LOGFILL_WEBHOOK_POLL_SECONDS="0.1",
        LOGFILL_WEBHOOK_TIMEOUT_SECONDS="1.5",
        LOGFILL_WEBHOOK_LEASE_SECONDS="2",
    )
    started = Workers(env, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def sender_of(workers: Workers, received: Received) -> Worker | None:
    """The live worker process holding the client end of the connection a request came on.

    None when no live worker holds it: the request came from the killed one (sent
    before it died, handled after).
    """
    for worker in workers.started:
        if worker.proc.poll() is not None:
            continue
        for connection in psutil.Process(worker.proc.pid).net_connections(kind="tcp"):
            if connection.laddr and connection.laddr.port == received.peer_port:
                return worker
    return None


@pytest.mark.parametrize("ordering", ["strict", "independent"])
async def test_a_worker_killed_mid_delivery_loses_nothing(
    conn: asyncpg.Connection, webhook_workers: Workers, ordering: str
) -> None:
    held = asyncio.Event()
    release = asyncio.Event()
    senders: list[tuple[str, str]] = []  # (webhook-id, worker) of every request

    async def hold_the_first(received: Received) -> web.StreamResponse:
        sender = sender_of(webhook_workers, received)
        senders.append((received.webhook_id, sender.name if sender else KILLED))
        if not held.is_set():
            held.set()
            await asyncio.wait_for(release.wait(), 10)
        return web.Response(status=200)

    async with receiver() as hook:
        hook.handlers["/hook"] = hold_the_first
        ids = await fill_outbox(conn, hook, ordering)
        for _ in range(2):
            webhook_workers.start()
        await asyncio.wait_for(held.wait(), 20)
        first = hook.received[0]
        victim = sender_of(webhook_workers, first)
        assert victim is not None
        Workers.kill(victim)
        release.set()

        async def all_delivered() -> bool:
            pending = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"
            )
            return bool(pending == 0)

        await wait_until(all_delivered, timeout=20)

    assert all(r.verified for r in hook.received)
    assert len(senders) == len(hook.received)
    assert {webhook_id for webhook_id, _ in senders} == {str(i) for i in ids}  # nothing lost
    killed = {victim.name, KILLED}
    survivor = Counter(webhook_id for webhook_id, name in senders if name not in killed)
    assert max(survivor.values()) == 1  # a live worker never sends a row twice
    assert survivor[first.webhook_id] == 1  # the held row again, with the same id
    for webhook_id, count in Counter(webhook_id for webhook_id, _ in senders).items():
        # A row is sent twice only when the killed worker had it in flight.
        assert count == 1 or any((webhook_id, name) in senders for name in killed)
    for rows in chunks(ids, ROWS_EACH):  # a strict subscription's rows in write order
        wanted = {str(i) for i in rows}
        sent = [r.webhook_id for r in hook.received if r.webhook_id in wanted]
        if ordering == "strict":
            assert list(dict.fromkeys(sent)) == [str(i) for i in rows]
    attempts = await conn.fetchval(
        "SELECT attempts FROM webhook_deliveries WHERE id = $1", uuid.UUID(first.webhook_id)
    )
    assert attempts == 2


async def fill_outbox(conn: asyncpg.Connection, hook: Receiver, ordering: str) -> list[uuid.UUID]:
    workspace = await make_workspace(conn)
    ids = []
    for _ in range(SUBSCRIPTIONS):
        sub = await create_subscription(conn, workspace, webhook_url=hook.url())
        await set_ordering(conn, sub, ordering)
        ids += [await insert_delivery(conn, sub, first_block=b) for b in range(ROWS_EACH)]
    return ids


def chunks(items: list[uuid.UUID], size: int) -> list[list[uuid.UUID]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
