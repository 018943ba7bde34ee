"""The dashboard's subscription pages: the same refusals as /v1 shown by their fields,
secrets shown once, stored events both ways round and downloaded as the API exports
them, deliveries retried, other workspaces' ids unknown, and forms without the
session's CSRF token refused."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientResponse

from indexer import events
from tests.support.api import (
    CHAIN_ID,
    TOKEN,
    TRANSFER,
    Client,
    Tenant,
    body,
    create_subscription,
    make_tenant,
)
from tests.support.factories import store_transfer_matches
from tests.support.webhooks import delivery_row, insert_delivery

SUBSCRIPTIONS = "/dashboard/subscriptions"
HOOK = "https://hooks.example.com/logfill"
BLOCKS = [100, 100, 150, 200, 250, 300, 301]  # two logs share block 100

# --- reading pages as a browser would ---------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    @property
    def raw(self) -> str:
        """The text as written (what a browser sends for a textarea)."""
        return "".join(c if isinstance(c, str) else c.raw for c in self.children)

    def walk(self) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.walk()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Element]:
        def matches(e: Element) -> bool:
            return (
                (tag is None or e.tag == tag)
                and (cls is None or cls in e.attrs.get("class", "").split())
                and all(e.attrs.get(name.rstrip("_")) == value for name, value in attrs.items())
            )

        return [e for e in self.walk() if matches(e)]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Element:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} elements {tag} .{cls} {attrs}"
        return found[0]

    def link(self, text: str) -> str | None:
        hrefs = [a.attrs["href"] for a in self.all("a") if a.text == text]
        return hrefs[0] if hrefs else None

    def rows(self) -> list[list[str]]:
        body = self.one("tbody")
        return [[cell.text for cell in row.all("td")] for row in body.all("tr")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    return builder.root


async def page(client: Client, url: str, status: int = 200) -> Element:
    response = await client.get(url, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return parse(text)


async def sign_in(client: Client, tenant: Tenant) -> None:
    response = await client.post(
        "/dashboard/sign-in", data={"api_key": tenant.api_key}, allow_redirects=False
    )
    assert response.status == 303


async def csrf_of(client: Client, url: str = SUBSCRIPTIONS) -> str:
    """The session's token, from the sign-out form every page has."""
    return (await page(client, url)).all("input", name="csrf_token")[0].attrs["value"]


async def submit(client: Client, url: str, token: str | None, **fields: str) -> ClientResponse:
    data = fields if token is None else {"csrf_token": token, **fields}
    return await client.post(url, data=data, allow_redirects=False)


def error_of(doc: Element, name: str) -> str:
    """The refusal shown for a field, checked to be tied to the field for assistive tech."""
    control = doc.one(id=name)
    assert control.attrs.get("aria-invalid") == "true"
    assert f"{name}-error" in control.attrs["aria-describedby"].split()
    return doc.one(id=f"{name}-error").text


@pytest.fixture
async def owner(client: Client, tenant: Tenant) -> Client:
    """The client, signed in to the dashboard as `tenant`."""
    await sign_in(client, tenant)
    return client


def new_form(**fields: str) -> dict[str, str]:
    return {
        "chain_id": str(CHAIN_ID),
        "name": "transfers",
        "addresses": TOKEN,
        "events": TRANSFER,
        "topics": "",
        "webhook_url": HOOK,
        "webhook_ordering": "independent",
        "stored_events": "on",
        **fields,
    }


async def settings_form(client: Client, subscription_id: str) -> tuple[str, dict[str, str]]:
    """The Settings tab's CSRF token and its form's fields as the page fills them."""
    doc = await page(client, f"{SUBSCRIPTIONS}/{subscription_id}/settings")
    form = doc.one("form", action=f"{SUBSCRIPTIONS}/{subscription_id}/settings")
    fields = {e.attrs["name"]: e.attrs.get("value", "") for e in form.all("input", type="text")}
    fields |= {e.attrs["name"]: e.attrs.get("value", "") for e in form.all("input", type="url")}
    fields |= {e.attrs["name"]: e.raw for e in form.all("textarea")}
    checked = [e for e in form.all("input") if "checked" in e.attrs]
    fields |= {e.attrs["name"]: e.attrs.get("value") or "on" for e in checked}
    return form.one("input", name="csrf_token").attrs["value"], fields


async def count_subscriptions(conn: asyncpg.Connection, tenant: Tenant) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM subscriptions WHERE workspace_id = $1", tenant.workspace_id
    )
    return count


# --- create -------------------------------------------------------------------------------


async def test_a_bad_address_and_a_private_webhook_host_are_both_named_and_nothing_is_stored(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/new")
    typed = new_form(addresses=f"{TOKEN}\n0x12", webhook_url="https://internal.test/hook")
    response = await submit(owner, SUBSCRIPTIONS, token, **typed)
    assert response.status == 422
    doc = parse(await response.text())
    assert error_of(doc, "addresses") == "line 2: an address is 0x followed by 40 hex digits"
    assert "10.0.0.5" in error_of(doc, "webhook_url")  # what the host resolves to
    assert doc.one("textarea", id="addresses").raw == f"{TOKEN}\n0x12"  # as typed
    assert doc.one("input", id="webhook_url").attrs["value"] == "https://internal.test/hook"
    assert doc.one("textarea", id="events").text == TRANSFER
    assert await count_subscriptions(conn, tenant) == 0


async def test_the_api_refusals_of_the_model_and_of_the_domain_are_shown_by_their_fields(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/new")
    typed = new_form(
        chain_id="5", events=f"{TRANSFER}\nTransfer(address indexed from", webhook_url="ftp://x"
    )
    doc = parse(await (await submit(owner, SUBSCRIPTIONS, token, **typed)).text())
    assert error_of(doc, "webhook_url").startswith("the webhook URL must be an absolute")
    assert error_of(doc, "events").startswith("line 2: ")  # the signature that does not parse
    fixed = new_form(chain_id="5", topics="[null, 7")
    response = await submit(owner, SUBSCRIPTIONS, token, **fixed)
    doc = parse(await response.text())
    assert response.status == 422
    assert error_of(doc, "topics").startswith("not JSON")
    response = await submit(owner, SUBSCRIPTIONS, token, **new_form(chain_id="5"))
    assert error_of(parse(await response.text()), "chain_id") == (
        f"chain 5 is not configured here (configured: {CHAIN_ID})"
    )
    assert await count_subscriptions(conn, tenant) == 0


async def test_create_shows_the_webhook_secret_once(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/new")
    typed = new_form(addresses=TOKEN.lower(), webhook_ordering="strict", stored_events="")
    response = await submit(owner, SUBSCRIPTIONS, token, **typed)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    doc = parse(await response.text())
    secret = doc.one(cls="secret").text
    row = await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE workspace_id = $1", tenant.workspace_id
    )
    assert row is not None
    assert secret == row["webhook_secret"] and secret.startswith("whsec_")
    assert (row["name"], row["webhook_url"], row["webhook_ordering"]) == (
        "transfers",
        HOOK,
        "strict",
    )
    assert row["addresses"] == [bytes.fromhex(TOKEN[2:])] and row["stored_events"] is False
    assert doc.link("Go to the subscription") == f"{SUBSCRIPTIONS}/{row['id']}"

    listed = await page(owner, SUBSCRIPTIONS)
    [cells] = listed.rows()
    assert cells[0].startswith("transfers") and "Transfer" in cells[2]
    assert "on hooks.example.com strict" in cells[3] and cells[4] == "not kept"
    settings = await (await owner.get(f"{SUBSCRIPTIONS}/{row['id']}/settings")).text()
    assert secret not in settings and secret not in await (await owner.get(SUBSCRIPTIONS)).text()


async def test_the_list_says_what_to_do_when_empty_and_a_subscription_opens_on_its_backfill(
    owner: Client, tenant: Tenant
) -> None:
    empty = (await page(owner, SUBSCRIPTIONS)).one(cls="empty")
    assert "No subscriptions yet" in empty.text
    assert empty.link("New subscription") == f"{SUBSCRIPTIONS}/new"
    sub = await create_subscription(owner, tenant)
    response = await owner.get(f"{SUBSCRIPTIONS}/{sub['id']}", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"{SUBSCRIPTIONS}/{sub['id']}/backfill"


async def test_signed_out_pages_send_the_browser_to_sign_in(client: Client) -> None:
    response = await client.get(f"{SUBSCRIPTIONS}/new", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/dashboard/sign-in?next=")


# --- settings -----------------------------------------------------------------------------


async def get_sub(client: Client, tenant: Tenant, subscription_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/subscriptions/{subscription_id}", headers=tenant.headers)
    assert response.status == 200
    return dict(await body(response))


async def test_settings_change_what_was_edited_and_keep_the_rest(
    owner: Client, tenant: Tenant
) -> None:
    other = "0x" + "ab" * 20
    sub = await create_subscription(
        owner, tenant, addresses=[TOKEN, other], topics=[None, None, "0x" + "cc" * 32]
    )
    token, fields = await settings_form(owner, sub["id"])
    assert fields["topics"] == f'[\n  null,\n  null,\n  ["0x{"cc" * 32}"]\n]'  # topic0: events'
    fields |= {"name": "renamed", "addresses": TOKEN, "webhook_ordering": "strict"}
    response = await submit(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings", token, **fields)
    assert response.status == 303
    assert response.headers["Location"] == f"{SUBSCRIPTIONS}/{sub['id']}/settings?notice=saved"
    after = await get_sub(owner, tenant, sub["id"])
    assert (after["name"], after["addresses"], after["webhook_ordering"]) == (
        "renamed",
        [TOKEN],
        "strict",
    )
    assert (after["events"], after["topics"]) == (sub["events"], sub["topics"])
    saved = await page(owner, response.headers["Location"])
    assert saved.one(cls="alert").text == "Saved."

    token, fields = await settings_form(owner, sub["id"])
    unchanged = await submit(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings", token, **fields)
    assert unchanged.headers["Location"].endswith("?notice=unchanged")


async def test_a_refused_edit_changes_nothing_and_keeps_what_was_typed(
    owner: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(owner, tenant, name="kept")
    token, fields = await settings_form(owner, sub["id"])
    fields |= {"name": "typed", "topics": '["0x12"]', "webhook_url": "https://metadata.test/"}
    response = await submit(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings", token, **fields)
    assert response.status == 422
    doc = parse(await response.text())
    assert error_of(doc, "topics") == "position 1: a topic is 0x followed by 64 hex digits"
    assert "169.254.169.254" in error_of(doc, "webhook_url")
    assert doc.one("input", id="name").attrs["value"] == "typed"
    assert (await get_sub(owner, tenant, sub["id"]))["name"] == "kept"


async def test_a_first_webhook_url_shows_its_secret_and_an_empty_one_removes_the_webhook(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant)
    token, fields = await settings_form(owner, sub["id"])
    response = await submit(
        owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings", token, **(fields | {"webhook_url": HOOK})
    )
    assert response.status == 200
    secret = parse(await response.text()).one(cls="secret").text
    stored = await conn.fetchval(
        "SELECT webhook_secret FROM subscriptions WHERE id = $1", uuid.UUID(sub["id"])
    )
    assert secret == stored

    token, fields = await settings_form(owner, sub["id"])
    assert fields["webhook_url"] == HOOK
    fields["webhook_url"] = ""
    response = await submit(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings", token, **fields)
    assert response.status == 303
    row = await conn.fetchrow(
        "SELECT webhook_url, webhook_secret FROM subscriptions WHERE id = $1", uuid.UUID(sub["id"])
    )
    assert row is not None and (row["webhook_url"], row["webhook_secret"]) == (None, None)


async def test_a_disabled_webhook_is_re_enabled_only_when_asked(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant, webhook_url=HOOK)
    await conn.execute(
        "UPDATE subscriptions SET webhook_disabled_at = now(),"
        " webhook_disabled_reason = 'receiver answered 410 Gone' WHERE id = $1",
        uuid.UUID(sub["id"]),
    )
    token, fields = await settings_form(owner, sub["id"])
    assert "reenable_webhook" not in fields
    url = f"{SUBSCRIPTIONS}/{sub['id']}/settings"
    await submit(owner, url, token, **(fields | {"name": "still disabled"}))
    assert (await get_sub(owner, tenant, sub["id"]))["webhook_disabled_at"] is not None
    doc = await page(owner, url)
    assert "receiver answered 410 Gone" in doc.all(cls="alert")[-1].text
    await submit(owner, url, token, **(fields | {"reenable_webhook": "on"}))
    after = await get_sub(owner, tenant, sub["id"])
    assert (after["webhook_disabled_at"], after["webhook_url"]) == (None, HOOK)


async def test_rotation_shows_the_new_secret_once_and_explains_the_grace_period(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant, webhook_url=HOOK)
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings")
    response = await submit(owner, f"{SUBSCRIPTIONS}/{sub['id']}/rotate-secret", token)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    doc = parse(await response.text())
    row = await conn.fetchrow("SELECT * FROM subscriptions WHERE id = $1", uuid.UUID(sub["id"]))
    assert row is not None
    assert doc.one(cls="secret").text == row["webhook_secret"] != sub["webhook_secret"]
    assert row["previous_webhook_secret"] == sub["webhook_secret"]
    assert "The previous secret keeps signing them too for 1 day" in doc.text


async def test_delete_asks_for_confirmation_then_goes_back_to_the_list(
    owner: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(owner, tenant)
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/{sub['id']}/settings")
    url = f"{SUBSCRIPTIONS}/{sub['id']}/delete"
    unconfirmed = await submit(owner, url, token)
    assert unconfirmed.status == 422
    assert error_of(parse(await unconfirmed.text()), "confirm").startswith("Tick this box")
    await get_sub(owner, tenant, sub["id"])  # still there
    response = await submit(owner, url, token, confirm="on")
    assert response.status == 303
    assert response.headers["Location"] == f"{SUBSCRIPTIONS}?notice=deleted"
    listed = await page(owner, response.headers["Location"])
    assert "was deleted" in listed.one(cls="alert").text
    gone = await owner.get(f"/v1/subscriptions/{sub['id']}", headers=tenant.headers)
    assert gone.status == 404
    assert (await owner.get(f"{SUBSCRIPTIONS}/{sub['id']}/settings")).status == 404


# --- stored events ------------------------------------------------------------------------


async def store_transfers(conn: asyncpg.Connection, subscription_id: str) -> None:
    """One decodable Transfer per entry of BLOCKS; its value is its position."""
    await store_transfer_matches(conn, subscription_id, TOKEN, BLOCKS)


@pytest.fixture
async def stored(owner: Client, tenant: Tenant, conn: asyncpg.Connection) -> str:
    sub = await create_subscription(owner, tenant, name="Token transfers")
    await store_transfers(conn, sub["id"])
    return str(sub["id"])


def values_of(rows: list[list[str]]) -> list[int]:
    return [int(re.findall(r"value=([\d,]+)", row[4])[0].replace(",", "")) for row in rows]


async def every_page(client: Client, url: str, link: str) -> list[list[str]]:
    """The rows of a listing and of every page its `link` leads to."""
    seen: list[list[str]] = []
    next_url: str | None = url
    while next_url:
        doc = await page(client, next_url)
        seen += doc.rows()
        next_url = doc.link(link)
    return seen


async def test_events_are_listed_newest_or_oldest_first_a_page_at_a_time(
    owner: Client, stored: str
) -> None:
    url = f"{SUBSCRIPTIONS}/{stored}/events"
    newest = await every_page(owner, f"{url}?limit=3", "Older events")
    assert values_of(newest) == [6, 5, 4, 3, 2, 1, 0]
    assert [row[0] for row in newest[:2]] == ["301", "300"]
    oldest = await every_page(owner, f"{url}?order=asc&limit=3", "Later events")
    assert values_of(oldest) == list(range(len(BLOCKS)))
    first = await page(owner, f"{url}?order=asc&limit=3")
    [tx_hash] = first.one("tbody").all("tr")[0].all("td")[2].all("span")
    assert re.fullmatch(r"0x[0-9a-f]{64}", tx_hash.attrs["title"])  # in full, shown cut
    assert tx_hash.text == tx_hash.attrs["title"][:10] + "…" + tx_hash.attrs["title"][-8:]

    bounded = await every_page(owner, f"{url}?from_block=150&to_block=300&limit=2", "Older events")
    assert values_of(bounded) == [5, 4, 3, 2]
    empty = await page(owner, f"{url}?from_block=500")
    assert "No stored events in these blocks" in empty.one(cls="empty").text


async def test_bad_bounds_are_named_by_their_field(owner: Client, stored: str) -> None:
    url = f"{SUBSCRIPTIONS}/{stored}/events"
    doc = await page(owner, f"{url}?from_block=300&to_block=100", 422)
    assert error_of(doc, "to_block") == "must be >= from_block (300), got 100"
    doc = await page(owner, f"{url}?from_block=abc", 422)
    assert error_of(doc, "from_block").startswith("Input should be a valid integer")
    # A cursor of the oldest-first list is not one of the newest-first list.
    later = (await page(owner, f"{url}?order=asc&limit=2")).link("Later events")
    assert later is not None
    await page(owner, later.replace("order=asc", "order=desc"), 422)


async def test_events_without_any_say_how_to_get_some(owner: Client, tenant: Tenant) -> None:
    sub = await create_subscription(owner, tenant)
    empty = (await page(owner, f"{SUBSCRIPTIONS}/{sub['id']}/events")).one(cls="empty")
    assert "No stored events yet" in empty.text
    assert empty.link("Backfill tab") == f"{SUBSCRIPTIONS}/{sub['id']}/backfill"


@pytest.mark.parametrize(
    ("suffix", "accept"), [("ndjson", "application/x-ndjson"), ("csv", "text/csv")]
)
async def test_downloads_are_the_api_export_of_the_range_as_a_file(
    owner: Client,
    tenant: Tenant,
    stored: str,
    suffix: str,
    accept: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "EXPORT_BATCH", 2)  # several batches
    doc = await page(owner, f"{SUBSCRIPTIONS}/{stored}/events?from_block=150&to_block=300")
    link = doc.link(f"Download {suffix.upper()}")
    assert link == f"{SUBSCRIPTIONS}/{stored}/events.{suffix}?from_block=150&to_block=300"
    response = await owner.get(link)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(accept)
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="events-Token-transfers-from-150-to-300.{suffix}"'
    )
    api = await owner.get(
        f"/v1/subscriptions/{stored}/events?from_block=150&to_block=300",
        headers={**tenant.headers, "Accept": accept},
    )
    content = await response.read()
    assert content == await api.read()
    if suffix == "csv":
        rows = list(csv.DictReader(io.StringIO(content.decode())))
        assert [int(r["block_number"]) for r in rows] == [150, 200, 250, 300]
    else:
        lines = [orjson.loads(line) for line in content.splitlines()]
        assert [e["decoded"]["args"]["value"] for e in lines] == ["2", "3", "4", "5"]


async def test_a_download_of_the_whole_set_is_named_after_the_subscription(
    owner: Client, stored: str
) -> None:
    response = await owner.get(f"{SUBSCRIPTIONS}/{stored}/events.csv")
    assert 'filename="events-Token-transfers.csv"' in response.headers["Content-Disposition"]
    assert len((await response.read()).decode().splitlines()) == len(BLOCKS) + 1


# --- deliveries ---------------------------------------------------------------------------


async def make_deliveries(conn: asyncpg.Connection, subscription_id: str) -> list[uuid.UUID]:
    """Three deliveries, oldest first: delivered, dead (after 5 attempts), pending."""
    ids = [
        await insert_delivery(conn, uuid.UUID(subscription_id), events=n, first_block=10 * n)
        for n in (1, 2, 3)
    ]
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), attempts = 1,"
        " last_status_code = 204 WHERE id = $1",
        ids[0],
    )
    await conn.execute(
        "UPDATE webhook_deliveries SET status = 'dead', attempts = 5, last_status_code = 500,"
        " last_error = 'receiver answered 500' WHERE id = $1",
        ids[1],
    )
    return ids


async def test_deliveries_are_listed_filtered_and_a_dead_one_retried(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant, webhook_url=HOOK)
    _, dead, _ = await make_deliveries(conn, sub["id"])
    url = f"{SUBSCRIPTIONS}/{sub['id']}/deliveries"
    rows = await every_page(owner, f"{url}?limit=2", "Older deliveries")
    assert [row[0].split()[0] for row in rows] == ["pending", "dead", "delivered"]  # newest first
    assert rows[1][1:6] == ["2", "20", "5", "500", "receiver answered 500"]

    doc = await page(owner, f"{url}?status=dead")
    assert [row[0].split()[0] for row in doc.rows()] == ["dead"]
    form = doc.one("form", action=f"/dashboard/deliveries/{dead}/retry")
    token = form.one("input", name="csrf_token").attrs["value"]
    response = await submit(
        owner, form.attrs["action"], token, subscription_id=sub["id"], status="dead"
    )
    assert response.status == 303
    back = response.headers["Location"]
    assert back == f"{url}?status=dead&retry=done&delivery={dead}"
    assert "pending again" in (await page(owner, back)).one(cls="alert").text
    row = await delivery_row(conn, dead)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert len((await page(owner, f"{url}?status=delivered")).rows()) == 1


async def test_a_refused_retry_says_what_to_fix(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant, webhook_url=HOOK)
    _, dead, pending = await make_deliveries(conn, sub["id"])
    await conn.execute(
        "UPDATE subscriptions SET webhook_disabled_at = now(),"
        " webhook_disabled_reason = 'receiver answered 410 Gone' WHERE id = $1",
        uuid.UUID(sub["id"]),
    )
    token = await csrf_of(owner, f"{SUBSCRIPTIONS}/{sub['id']}/deliveries")
    response = await submit(
        owner, f"/dashboard/deliveries/{dead}/retry", token, subscription_id=sub["id"]
    )
    assert response.status == 303
    alert = (await page(owner, response.headers["Location"])).one(cls="alert").text
    assert "was not retried: the webhook is disabled (receiver answered 410 Gone)" in alert
    assert "Settings" in alert
    assert (await delivery_row(conn, dead))["status"] == "dead"

    response = await submit(
        owner, f"/dashboard/deliveries/{pending}/retry", token, subscription_id=sub["id"]
    )
    alert = (await page(owner, response.headers["Location"])).one(cls="alert").text
    assert "only dead deliveries can be retried" in alert


async def test_deliveries_without_a_webhook_say_how_to_get_some(
    owner: Client, tenant: Tenant
) -> None:
    sub = await create_subscription(owner, tenant)
    empty = (await page(owner, f"{SUBSCRIPTIONS}/{sub['id']}/deliveries")).one(cls="empty")
    assert "no webhook URL" in empty.text
    assert empty.link("Settings") == f"{SUBSCRIPTIONS}/{sub['id']}/settings"


# --- other workspaces, CSRF ---------------------------------------------------------------


@pytest.fixture
async def theirs(client: Client, conn: asyncpg.Connection) -> tuple[Tenant, str, uuid.UUID]:
    """Another workspace's subscription (with a stored event) and dead delivery."""
    other = await make_tenant(conn)
    sub = await create_subscription(client, other, webhook_url=HOOK, name="theirs")
    await store_transfers(conn, sub["id"])
    delivery = await insert_delivery(conn, uuid.UUID(sub["id"]))
    await conn.execute("UPDATE webhook_deliveries SET status = 'dead' WHERE id = $1", delivery)
    return other, str(sub["id"]), delivery


async def test_another_workspaces_ids_are_not_found(
    owner: Client, theirs: tuple[Tenant, str, uuid.UUID], conn: asyncpg.Connection
) -> None:
    _, sub, delivery = theirs
    tails = ("", "/settings", "/events", "/events?order=asc", "/events.csv", "/events.ndjson")
    for tail in (*tails, "/deliveries"):
        doc = await page(owner, f"{SUBSCRIPTIONS}/{sub}{tail}", 404)
        assert doc.one("h1").text == "Not found"
        assert "theirs" not in doc.text
    for missing in (str(uuid.uuid4()), "not-an-id"):
        await page(owner, f"{SUBSCRIPTIONS}/{missing}/events", 404)
    token = await csrf_of(owner)
    for action, fields in (
        (f"{SUBSCRIPTIONS}/{sub}/settings", {"name": "mine"}),
        (f"{SUBSCRIPTIONS}/{sub}/rotate-secret", {}),
        (f"{SUBSCRIPTIONS}/{sub}/delete", {"confirm": "on"}),
        (f"/dashboard/deliveries/{delivery}/retry", {"subscription_id": sub}),
    ):
        assert (await submit(owner, action, token, **fields)).status == 404, action
    row = await conn.fetchrow(
        "SELECT name, webhook_secret FROM subscriptions WHERE id = $1", uuid.UUID(sub)
    )
    assert row is not None and row["name"] == "theirs"
    assert (await delivery_row(conn, delivery))["status"] == "dead"


async def test_a_form_without_the_sessions_token_is_refused_and_changes_nothing(
    owner: Client, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    sub = await create_subscription(owner, tenant, webhook_url=HOOK, name="kept")
    _, dead, _ = await make_deliveries(conn, sub["id"])
    before = await conn.fetchrow("SELECT * FROM subscriptions WHERE id = $1", uuid.UUID(sub["id"]))
    posts: list[tuple[str, dict[str, str]]] = [
        (SUBSCRIPTIONS, new_form(name="forged")),
        (f"{SUBSCRIPTIONS}/{sub['id']}/settings", {"name": "forged"}),
        (f"{SUBSCRIPTIONS}/{sub['id']}/rotate-secret", {}),
        (f"{SUBSCRIPTIONS}/{sub['id']}/delete", {"confirm": "on"}),
        (f"/dashboard/deliveries/{dead}/retry", {"subscription_id": sub["id"]}),
    ]
    for tokens in (None, "not-the-token"):
        for action, fields in posts:
            response = await submit(owner, action, tokens, **fields)
            assert response.status == 403, action
            assert "cannot be accepted" in parse(await response.text()).one("h1").text
    after = await conn.fetchrow("SELECT * FROM subscriptions WHERE id = $1", uuid.UUID(sub["id"]))
    assert after == before
    assert await count_subscriptions(conn, tenant) == 1
    assert (await delivery_row(conn, dead))["status"] == "dead"
