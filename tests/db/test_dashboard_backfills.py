"""The dashboard's backfill pages, signed in as an owner would be: the Backfill tab
(estimate, queue, refusals), the History tab, a request's page (live part, actions,
windows chart). Each refusal is checked against what the API answers for the same body.
"""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from asyncpg import Range

from api.dashboard.filters import exact, number
from indexer.db import queries
from indexer.domain import BACKFILL_STATUSES, TERMINAL
from tests.support.api import (
    Client,
    Tenant,
    body,
    create_subscription,
    make_tenant,
    set_head,
)
from tests.support.factories import make_backfill

ACTIONS = ("pause", "resume", "cancel", "retry")


# --------------------------------------------------------------------------- helpers


async def sign_in(client: Client, tenant: Tenant) -> None:
    response = await client.post(
        "/dashboard/sign-in", data={"api_key": tenant.api_key}, allow_redirects=False
    )
    assert response.status == 303, await response.text()


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(f"/dashboard{path}", allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


def hidden(page_html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page_html)
    assert found, f"no hidden input {name}"
    return found.group(1)


def words(page_html: str) -> str:
    """The page's text as a reader sees it: tags gone, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page_html)).split())


def field_error(page_html: str, name: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{name}-error">(.*?)</p>', page_html, re.S)
    return html.unescape(found.group(1)) if found else None


def by_testid(page_html: str, name: str) -> str:
    """The text of the element marked data-testid=name (no same-named element inside)."""
    found = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page_html, re.S)
    assert found, f"no {name}"
    return words(found.group(2))


def enabled_actions(page_html: str) -> set[str]:
    """The action buttons a person can press on a request page."""
    forms = re.findall(
        r'action="/dashboard/requests/[^/"]+/(\w+)"[^>]*>.*?<button([^>]*)>', page_html, re.S
    )
    assert {action for action, _ in forms} == set(ACTIONS)
    return {action for action, button in forms if "disabled" not in button}


class Owner:
    """A signed-in owner with a subscription and the Backfill form's hidden values."""

    def __init__(self, client: Client, tenant: Tenant, subscription_id: str) -> None:
        self.client, self.tenant, self.subscription_id = client, tenant, subscription_id

    @property
    def form_path(self) -> str:
        return f"/subscriptions/{self.subscription_id}/backfill"

    async def form(self) -> dict[str, str]:
        form_page = await page(self.client, self.form_path)
        return {
            "csrf_token": hidden(form_page, "csrf_token"),
            "idempotency_key": hidden(form_page, "idempotency_key"),
        }

    async def send(self, fields: dict[str, str], action: str = "queue") -> ClientResponse:
        data = {**(await self.form()), "action": action, **fields}
        return await self.client.post(
            f"/dashboard{self.form_path}", data=data, allow_redirects=False
        )

    async def csrf(self) -> str:
        return hidden(await page(self.client, "/"), "csrf_token")

    async def act(self, backfill_id: uuid.UUID | str, action: str) -> ClientResponse:
        data = {"csrf_token": await self.csrf()}
        return await self.client.post(
            f"/dashboard/requests/{backfill_id}/{action}", data=data, allow_redirects=False
        )

    async def api_refusal(self, payload: dict[str, Any]) -> dict[str, Any]:
        """What POST /v1/backfill answers for the same body (dry run: nothing created)."""
        body_ = {"subscription_id": self.subscription_id, "dry_run": True, **payload}
        response = await self.client.post("/v1/backfill", json=body_, headers=self.tenant.headers)
        data: dict[str, Any] = await body(response)
        data["http_status"] = response.status
        return data


@pytest.fixture
async def owner(client: Client, tenant: Tenant) -> Owner:
    subscription = await create_subscription(client, tenant)
    await sign_in(client, tenant)
    return Owner(client, tenant, subscription["id"])


async def requests_of(conn: asyncpg.Connection, workspace_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT id, status, from_block, to_block, labels, rescan, block_order"
            " FROM backfill_requests WHERE workspace_id = $1",
            workspace_id,
        )
    )


async def request_in(conn: asyncpg.Connection, subscription_id: str, status: str) -> uuid.UUID:
    """A request in `status`, as the window and the owner's actions leave one."""
    columns: dict[str, Any] = {"status": status}
    if status in TERMINAL:
        columns |= {"cursor": None, "finished_at": datetime.now(UTC)}
    if status == "blocked":
        columns["blocked_reason"] = "the subscription does not store events"
    if status == "failed":
        columns["error"] = "eth_getLogs: 403 Forbidden: this key may not call eth_getLogs"
    if status not in ("queued",):
        columns["started_at"] = datetime.now(UTC) - timedelta(minutes=5)
    if status == "following":
        columns |= {"follow": True, "cursor": 201}  # caught up: the block after its range
    return await make_backfill(conn, uuid.UUID(subscription_id), **columns)


# --------------------------------------------------------------------------- the Backfill tab


async def test_the_form_says_one_side_means_one_block_and_carries_its_keys(owner: Owner) -> None:
    form_page = await page(owner.client, owner.form_path)
    text = words(form_page)

    assert "Give one side only to scan that single block" in text
    for label in ('for="from_block"', 'for="to_block"', 'for="order"', 'for="labels"'):
        assert label in form_page
    assert 'for="rescan"' in form_page and 'for="redeliver"' in form_page
    assert 'value="estimate"' in form_page and 'value="queue"' in form_page
    assert uuid.UUID(hidden(form_page, "idempotency_key")).version == 4
    second = await page(owner.client, owner.form_path)
    assert hidden(second, "idempotency_key") != hidden(form_page, "idempotency_key")


async def test_estimate_shows_the_dry_run_figures_and_creates_nothing(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "INSERT INTO subscription_coverage (subscription_id, covered) VALUES ($1, $2)",
        uuid.UUID(owner.subscription_id),
        [Range(1_000, 1_500)],
    )
    fields = {"from_block": "0", "to_block": "1,999,999", "labels": "team=data"}
    response = await owner.send(fields, action="estimate")
    estimate_page = await response.text()
    assert response.status == 200, estimate_page

    api = await owner.api_refusal({"from_block": 0, "to_block": 1_999_999})
    assert api["http_status"] == 200 and api["already_covered_blocks"] == 500
    for testid_, key in [
        ("estimate-blocks", "blocks"),
        ("estimate-covered", "already_covered_blocks"),
        ("estimate-calls", "estimated_calls"),
        ("estimate-cu", "estimated_cu"),
        ("estimate-windows", "estimated_windows"),
    ]:
        assert by_testid(estimate_page, testid_) == number(api[key]), key
    for testid_, key in [("estimate-start", "estimated_start_at"), ("estimate-finish", "")]:
        key = key or "estimated_finish_at"
        shown = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", by_testid(estimate_page, testid_))
        assert shown, testid_
        at = datetime.strptime(shown.group(0), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        assert abs(at - datetime.fromisoformat(api[key])) < timedelta(seconds=3)
    # The values come back as typed, with the same key: Queue next queues this.
    assert 'value="1,999,999"' in estimate_page and "team=data</textarea>" in estimate_page
    assert await requests_of(conn, owner.tenant.workspace_id) == []


async def test_a_follow_estimate_says_what_an_hour_of_following_costs(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "INSERT INTO chain_state (chain_id, head, safe_head) VALUES (1, 1000, 988)"
        " ON CONFLICT (chain_id) DO UPDATE SET head = 1000, safe_head = 988"
    )
    fields = {"from_block": "900", "to_block": "follow"}
    unknown = await (await owner.send(fields, action="estimate")).text()
    assert by_testid(unknown, "estimate-blocks") == "89"
    assert "unknown until a worker has seen the chain move" in by_testid(
        unknown, "estimate-following"
    )
    await conn.execute("UPDATE chain_state SET block_seconds = 12 WHERE chain_id = 1")
    known = await (await owner.send(fields, action="estimate")).text()
    # 300 blocks an hour, at most one a 5 s window: 300 verified calls of 80 CU and
    # 300 reorg checks of 40 CU.
    assert by_testid(known, "estimate-following") == (
        "about 36,000 CU an hour, at the chain's recent pace"
    )
    bounded = await (await owner.send({"from_block": "900", "to_block": "950"}, "estimate")).text()
    assert 'data-testid="estimate-following"' not in bounded
    assert await requests_of(conn, owner.tenant.workspace_id) == []


async def test_queue_creates_the_request_and_its_page_shows_the_id_and_window_start(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    fields = {
        "from_block": "100",
        "to_block": "200",
        "order": "desc",
        "labels": "team=data\n\nticket = OPS-42",
        "rescan": "on",
    }
    response = await owner.send(fields)
    assert response.status == 303, await response.text()

    (row,) = await requests_of(conn, owner.tenant.workspace_id)
    assert response.headers["Location"] == f"/dashboard/requests/{row['id']}?queued=1"
    assert (row["from_block"], row["to_block"], row["block_order"]) == (100, 200, "desc")
    assert row["labels"] == {"team": "data", "ticket": "OPS-42"} and row["rescan"]
    request_page = await page(owner.client, f"/requests/{row['id']}?queued=1")
    api = await body(
        await owner.client.get(f"/v1/backfill/{row['id']}", headers=owner.tenant.headers)
    )
    queued = by_testid(request_page, "queued")
    assert str(row["id"]) in queued
    assert exact(datetime.fromisoformat(api["estimated_start_at"])) in queued
    assert by_testid(request_page, "request-id") == str(row["id"])


async def test_the_same_form_sent_twice_creates_one_request(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    data = {**(await owner.form()), "action": "queue", "from_block": "100", "to_block": "150"}
    url = f"/dashboard{owner.form_path}"

    first = await owner.client.post(url, data=data, allow_redirects=False)
    again = await owner.client.post(url, data=data, allow_redirects=False)

    assert (first.status, again.status) == (303, 303)
    assert first.headers["Location"] == again.headers["Location"]
    assert len(await requests_of(conn, owner.tenant.workspace_id)) == 1


async def test_a_double_click_waits_for_the_first_submit_and_lands_on_its_request(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    data = {**(await owner.form()), "action": "queue", "from_block": "100", "to_block": "150"}
    url = f"/dashboard{owner.form_path}"

    def click() -> asyncio.Task[ClientResponse]:
        return asyncio.create_task(owner.client.post(url, data=data, allow_redirects=False))

    async with conn.transaction():  # as if a first submit were still being queued
        held = await queries.fetchrow(
            conn,
            "lock_and_find_idempotency_key",
            workspace_id=owner.tenant.workspace_id,
            key=data["idempotency_key"],
        )
        assert held is not None and held["locked"]
        clicks = [click(), click()]
        await asyncio.sleep(0.3)
        assert not any(c.done() for c in clicks)  # the API would have answered 409 by now
    first, second = await asyncio.gather(*clicks)

    assert (first.status, second.status) == (303, 303)
    assert first.headers["Location"] == second.headers["Location"]
    assert len(await requests_of(conn, owner.tenant.workspace_id)) == 1


async def test_a_form_sent_again_with_other_values_is_refused_with_a_fresh_key(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    data = {**(await owner.form()), "action": "queue", "from_block": "100", "to_block": "150"}
    url = f"/dashboard{owner.form_path}"
    assert (await owner.client.post(url, data=data, allow_redirects=False)).status == 303

    response = await owner.client.post(url, data={**data, "to_block": "160"})
    refused = await response.text()

    assert response.status == 422
    assert "already sent with other values" in words(refused)
    assert hidden(refused, "idempotency_key") != data["idempotency_key"]
    assert len(await requests_of(conn, owner.tenant.workspace_id)) == 1


@pytest.mark.parametrize("action", ["estimate", "queue"])
async def test_a_free_plan_is_refused_with_the_apis_reason(
    client: Client, conn: asyncpg.Connection, action: str
) -> None:
    tenant = await make_tenant(conn, plan="free")
    subscription = await create_subscription(client, tenant)
    await sign_in(client, tenant)
    owner = Owner(client, tenant, subscription["id"])
    api = await owner.api_refusal({"from_block": 100, "to_block": 200})

    response = await owner.send({"from_block": "100", "to_block": "200"}, action=action)
    refused = await response.text()

    assert (response.status, api["http_status"]) == (403, 403)
    assert api["detail"].lower() in words(refused).lower()
    assert 'value="100"' in refused and 'value="200"' in refused
    assert await requests_of(conn, tenant.workspace_id) == []


async def test_a_subscription_without_stored_events_is_refused_with_the_apis_reason(
    client: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    subscription = await create_subscription(client, tenant, stored_events=False)
    await sign_in(client, tenant)
    owner = Owner(client, tenant, subscription["id"])
    api = await owner.api_refusal({"from_block": 100})

    response = await owner.send({"from_block": "100"})
    refused = await response.text()

    assert (response.status, api["http_status"]) == (409, 409)
    assert api["detail"].lower() in words(refused).lower()
    assert await requests_of(conn, tenant.workspace_id) == []


RANGE_FIELDS = {"from_block", "to_block"}


@pytest.mark.parametrize(
    ("form", "payload"),
    [
        pytest.param({"from_block": "300", "to_block": "200"}, {"from": 300, "to": 200}, id="rev"),
        pytest.param({"from_block": "-5"}, {"from": -5}, id="negative"),
        pytest.param({"from_block": "ten"}, {"from": "ten"}, id="not a number"),
        pytest.param(
            {"from_block": "1", "to_block": "90000"}, {"from": 1, "to": 90_000}, id="head"
        ),
        pytest.param(
            {"from_block": "0", "to_block": "6000000"}, {"from": 0, "to": 6_000_000}, id="plan"
        ),
        pytest.param({"to_block": "safe"}, {"to": "safe"}, id="no safe head yet"),
        pytest.param({}, {}, id="no block"),
    ],
)
async def test_bad_ranges_show_next_to_their_fields_with_the_apis_words(
    owner: Owner, conn: asyncpg.Connection, form: dict[str, str], payload: dict[str, Any]
) -> None:
    await set_head(conn, 50_000)  # no safe head yet
    api = await owner.api_refusal({f"{side}_block": v for side, v in payload.items()})
    assert api["http_status"] == 422, api

    response = await owner.send({**form, "labels": "keep=me"})
    refused = await response.text()

    assert response.status == 422
    expected: dict[str, str] = {}  # the first of a field's errors is shown next to it
    for error in api["errors"]:
        name = error["pointer"].strip("/").split("/")[0]
        expected.setdefault(name, error["detail"].removeprefix("Value error, "))
    assert set(expected) <= RANGE_FIELDS
    for name, detail in expected.items():
        assert field_error(refused, name) == detail
        assert f'aria-describedby="range-hint {name}-error"' in refused
    for name, value in form.items():
        assert f'name="{name}" type="text"' in refused and f'value="{value}"' in refused
    assert "keep=me</textarea>" in refused
    assert await requests_of(conn, owner.tenant.workspace_id) == []


async def test_a_bad_labels_line_is_shown_next_to_the_labels(owner: Owner) -> None:
    response = await owner.send({"from_block": "1", "labels": "team=data\njust words"})
    refused = await response.text()

    assert response.status == 422
    assert field_error(refused, "labels") == "line 2 is not key=value"


# --------------------------------------------------------------------------- History


async def test_history_filters_by_status_and_pages_newest_first(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    history = f"/subscriptions/{owner.subscription_id}/history"
    assert "No backfill requests yet" in words(await page(owner.client, history))
    paused = [await request_in(conn, owner.subscription_id, "paused") for _ in range(3)]
    queued = [await request_in(conn, owner.subscription_id, "queued") for _ in range(22)]

    first = await page(owner.client, history)
    shown = re.findall(r'href="/dashboard/requests/([0-9a-f-]{36})"', first)
    assert shown == [str(i) for i in reversed(queued)][:20]
    next_url = html.unescape(re.search(r'href="([^"]+)" rel="next"', first).group(1))  # type: ignore[union-attr]
    second = await page(owner.client, next_url.removeprefix("/dashboard"))
    rest = re.findall(r'href="/dashboard/requests/([0-9a-f-]{36})"', second)
    assert rest == [str(i) for i in [*reversed(queued[:2]), *reversed(paused)]]
    assert 'rel="next"' not in second

    only_paused = await page(owner.client, f"{history}?status=paused")
    assert set(re.findall(r'href="/dashboard/requests/([0-9a-f-]{36})"', only_paused)) == {
        str(i) for i in paused
    }
    assert '<option value="paused" selected>' in only_paused
    assert "No failed requests" in words(await page(owner.client, f"{history}?status=failed"))
    assert "status" in words(await page(owner.client, f"{history}?status=sleeping", 422))
    assert "not valid any more" in words(await page(owner.client, f"{history}?after=zzz", 422))


async def test_history_shows_a_requests_figures(owner: Owner, conn: asyncpg.Connection) -> None:
    await make_backfill(
        conn,
        uuid.UUID(owner.subscription_id),
        status="processing",
        cursor=150,
        from_block=100,
        to_block=1_299,
        new_matches=1_234,
        duplicate_matches=5,
        credits_charged=1_234,
        cu_spent=24_000,
        labels={"team": "data"},
        started_at=datetime.now(UTC),
    )
    text = words(await page(owner.client, f"/subscriptions/{owner.subscription_id}/history"))

    for shown in ("processing", "100 \u2013 1,299", "1,200 blocks", "1,234 / 5", "team=data"):
        assert shown in text
    assert "24,000" in text  # CU


# --------------------------------------------------------------------------- a request


@pytest.mark.parametrize("status", BACKFILL_STATUSES)
async def test_the_live_part_is_final_once_the_request_is_terminal(
    owner: Owner, conn: asyncpg.Connection, status: str
) -> None:
    backfill_id = await request_in(conn, owner.subscription_id, status)

    response = await owner.client.get(f"/dashboard/requests/{backfill_id}/live")
    fragment = await response.text()
    request_page = await page(owner.client, f"/requests/{backfill_id}")

    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert fragment.lstrip().startswith('<section class="card live"')
    assert f'data-live="/dashboard/requests/{backfill_id}/live"' in fragment
    assert ("data-live-final" in fragment) == (status in TERMINAL)
    # Then the header (badge and buttons) for the script to swap in by id, so status and
    # buttons follow without a reload; without JavaScript a reload shows the same parts.
    head_start = '<div class="page-head" id="request-head" data-live-swap>'
    live, head = fragment.split(head_start)
    assert live.strip() in request_page
    assert (head_start + head).strip() in request_page
    assert "Request actions" in head and "badge" in head
    if status == "failed":
        assert "403 Forbidden: this key may not call eth_getLogs" in by_testid(fragment, "error")
    if status == "blocked":
        assert "does not store events" in by_testid(fragment, "blocked")


async def test_a_follow_request_says_it_follows_and_how_far_behind_it_is(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    backfill_id = await request_in(conn, owner.subscription_id, "following")
    await conn.execute(
        "INSERT INTO chain_state (chain_id, head, safe_head, block_seconds)"
        " VALUES (1, 215, 203, 12) ON CONFLICT (chain_id) DO UPDATE"
        " SET head = 215, safe_head = 203, block_seconds = 12"
    )
    fragment = await (await owner.client.get(f"/dashboard/requests/{backfill_id}/live")).text()
    shown = by_testid(fragment, "following")
    assert "Follows the chain" in shown
    assert "Behind the safe head by 3 blocks (about 36 s)" in shown  # cursor 201, safe 203
    await conn.execute(
        "UPDATE backfill_requests SET status = 'cancelled', cursor = NULL, finished_at = now()"
        " WHERE id = $1",
        backfill_id,
    )
    fragment = await (await owner.client.get(f"/dashboard/requests/{backfill_id}/live")).text()
    assert 'data-testid="following"' not in fragment


async def test_the_live_part_shows_the_last_provider_trouble_and_when(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    backfill_id = await make_backfill(
        conn,
        uuid.UUID(owner.subscription_id),
        status="processing",
        cursor=150,
        last_transient_error="429 Too Many Requests",
        last_transient_error_at=datetime.now(UTC) - timedelta(minutes=3),
    )
    fragment = await page(owner.client, f"/requests/{backfill_id}/live")

    assert "429 Too Many Requests" in by_testid(fragment, "transient")
    assert "3 min ago" in by_testid(fragment, "transient")
    assert by_testid(fragment, "cursor") == "150"


async def test_the_live_part_counts_matches_a_reorg_removed_only_when_there_are_some(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    untouched = await make_backfill(
        conn, uuid.UUID(owner.subscription_id), status="processing", cursor=150
    )
    fragment = await page(owner.client, f"/requests/{untouched}/live")
    assert 'data-testid="matches-removed"' not in fragment

    reorged = await make_backfill(
        conn,
        uuid.UUID(owner.subscription_id),
        status="processing",
        cursor=150,
        new_matches=40,
        credits_charged=40,
        matches_removed=6,
    )
    fragment = await page(owner.client, f"/requests/{reorged}/live")
    assert words(by_testid(fragment, "matches-removed")) == "Removed by reorgs 6"


async def test_pause_resume_and_cancel_through_the_page(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    backfill_id = await request_in(conn, owner.subscription_id, "queued")

    async def status() -> str:
        value: str = await conn.fetchval(
            "SELECT status FROM backfill_requests WHERE id = $1", backfill_id
        )
        return value

    for action, after in [("pause", "paused"), ("resume", "queued"), ("cancel", "cancelled")]:
        response = await owner.act(backfill_id, action)
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == f"/dashboard/requests/{backfill_id}?done={action}"
        assert await status() == after
    shown = await page(owner.client, f"/requests/{backfill_id}?done=cancel")
    assert "Cancelled." in words(shown) and enabled_actions(shown) == set()

    refused = await owner.act(backfill_id, "resume")
    text = words(await refused.text())
    assert refused.status == 409
    assert "cannot resume a backfill that is cancelled" in text
    assert await status() == "cancelled"


async def test_the_buttons_enabled_are_exactly_the_actions_the_server_accepts(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    for status in BACKFILL_STATUSES:
        backfill_id = await request_in(conn, owner.subscription_id, status)
        enabled = enabled_actions(await page(owner.client, f"/requests/{backfill_id}"))
        accepted = set()
        for action in ACTIONS:
            response = await owner.act(backfill_id, action)
            assert response.status in (303, 409), (status, action, response.status)
            if response.status == 303:
                accepted.add(action)
            await conn.execute("DELETE FROM backfill_requests WHERE id = $1", backfill_id)
            backfill_id = await request_in(conn, owner.subscription_id, status)
        assert enabled == accepted, status


async def test_another_workspaces_pages_answer_404(
    owner: Owner, client: Client, conn: asyncpg.Connection
) -> None:
    theirs = await request_in(conn, owner.subscription_id, "queued")
    other = await make_tenant(conn)
    await sign_in(client, other)
    csrf = hidden(await page(client, "/"), "csrf_token")

    for path in [
        f"/requests/{theirs}",
        f"/requests/{theirs}/live",
        f"/requests/{theirs}/windows",
        f"/subscriptions/{owner.subscription_id}/backfill",
        f"/subscriptions/{owner.subscription_id}/history",
        f"/requests/{uuid.uuid4()}",
        "/requests/not-a-uuid",
    ]:
        assert "Not found" in await page(client, path, 404), path
    response = await client.post(
        f"/dashboard/requests/{theirs}/cancel", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert response.status == 404
    queue = await client.post(
        f"/dashboard/subscriptions/{owner.subscription_id}/backfill",
        data={"csrf_token": csrf, "action": "queue", "idempotency_key": "k", "from_block": "1"},
        allow_redirects=False,
    )
    assert queue.status == 404
    assert [r["status"] for r in await requests_of(conn, owner.tenant.workspace_id)] == ["queued"]
    assert await requests_of(conn, other.workspace_id) == []


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    backfill_id = await request_in(conn, owner.subscription_id, "queued")
    form = await owner.form()
    queue = await owner.client.post(
        f"/dashboard{owner.form_path}",
        data={"idempotency_key": form["idempotency_key"], "action": "queue", "from_block": "1"},
        allow_redirects=False,
    )
    cancel = await owner.client.post(
        f"/dashboard/requests/{backfill_id}/cancel",
        data={"csrf_token": "forged"},
        allow_redirects=False,
    )

    assert (queue.status, cancel.status) == (403, 403)
    assert [r["status"] for r in await requests_of(conn, owner.tenant.workspace_id)] == ["queued"]


async def test_the_chart_draws_one_bar_per_window_of_the_request(
    owner: Owner, conn: asyncpg.Connection
) -> None:
    backfill_id = await request_in(conn, owner.subscription_id, "processing")
    empty = await page(owner.client, f"/requests/{backfill_id}")
    assert "No windows yet" in by_testid(empty, "chart-empty") and "<svg" not in empty

    started = datetime.now(UTC) - timedelta(minutes=2)
    for i in range(7):
        window_id = await conn.fetchval(
            "INSERT INTO windows (chain_id, worker, started_at, budget_cu, cu_spent)"
            " VALUES (1, 'w', $1, 12000, $2) RETURNING id",
            started + timedelta(seconds=5 * i),
            4_000 + 100 * i,
        )
        await conn.execute(
            "INSERT INTO backfill_request_windows"
            " (backfill_request_id, window_id, cu_spent, blocks_scanned, new_matches)"
            " VALUES ($1, $2, $3, $4, 1)",
            backfill_id,
            window_id,
            1_200 + 100 * i,
            2_000,
        )
    # Another request's windows are not this one's.
    other = await request_in(conn, owner.subscription_id, "processing")
    await conn.execute(
        "INSERT INTO backfill_request_windows (backfill_request_id, window_id, cu_spent)"
        " SELECT $1, id, 10 FROM windows",
        other,
    )

    drawn = await page(owner.client, f"/requests/{backfill_id}")
    fragment = await page(owner.client, f"/requests/{backfill_id}/windows")

    for shown in (drawn, fragment):
        charts = re.findall(r"<svg .*?</svg>", shown, re.S)
        assert len(charts) == 2  # wide and narrow; CSS shows the one that fits
        assert [chart.count('data-testid="window-bar"') for chart in charts] == [7, 7]
        for chart in charts:
            assert 'role="img"' in chart and "<title>" in chart
            assert re.search(r'aria-label="[^"]*7 windows from', chart)
    assert "window budget" in words(drawn)  # the legend
    assert "1,800" in words(drawn)  # the table of windows: the last window's CU
