"""Subscriptions: the list, the create form, and a subscription's Settings, Events and
Deliveries tabs (its Backfill and History tabs are in `pages.backfills`).

A form is read into the API's request model (SubscriptionCreate, SubscriptionPatch)
and handed to the `indexer` function the API's handler calls, with webhook URLs
checked by the same WebhookTargets, so the dashboard refuses exactly what /v1
refuses. A refusal is shown next to its field with what was typed kept. A webhook
secret is shown once, on the page that answers the form that made it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import asyncpg
import structlog
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError
from yarl import URL

from api import render
from api.dashboard.routes import Route
from api.dashboard.view import field_errors_of, show, subscription_of
from api.dashboard.visits import PREFIX, Visit, page
from api.handlers.events import CSV, NDJSON, stream_export
from api.handlers.subscriptions import WEBHOOK_RESOLVER
from api.handlers.subscriptions import subscription_spec as spec_of
from api.models import (
    DeliveryPageQuery,
    EventPageQuery,
    PageQuery,
    Subscription,
    SubscriptionCreate,
    SubscriptionPatch,
)
from indexer import deliveries, events, subscriptions
from indexer.domain import DELIVERY_STATUSES, Order
from indexer.errors import InvalidInput
from indexer.pagination import MAX_LIMIT
from indexer.refusals import Conflict, InvalidFields
from indexer.subscriptions import DEFAULT_WEBHOOK_ORDERING, Topics, WebhookTargets
from indexer.webhooks.ssrf import system_resolve

log = structlog.get_logger(__name__)

SUBSCRIPTIONS = f"{PREFIX}/subscriptions"
PAGE_SIZE = 50
# Which line of a list field, or which position of the topics, a refusal is about.
POSITION_WORDS = {"addresses": "line", "events": "line", "topics": "position"}
_CHAIN_ID = re.compile(r"[0-9]{1,19}")
_INTEGER = re.compile(r"-?[0-9]+")
Query = TypeVar("Query", bound=BaseModel)
Model = TypeVar("Model", SubscriptionCreate, SubscriptionPatch)


class SubscriptionsView(PageQuery):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = PAGE_SIZE


class EventsView(EventPageQuery):
    """The Events tab: block bounds, a page size, and which end comes first."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = PAGE_SIZE
    order: Order = "desc"


class DeliveriesView(DeliveryPageQuery):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = PAGE_SIZE


# --- shared -------------------------------------------------------------------------


def _url(path: str, **params: object) -> str:
    """`path` with the parameters that have a value as its query string."""
    given = {name: str(value) for name, value in params.items() if value not in (None, "")}
    return str(URL(path).with_query(given)) if given else path


def subscription_url(subscription_id: uuid.UUID | str, tab: str = "") -> str:
    return f"{SUBSCRIPTIONS}/{subscription_id}" + (f"/{tab}" if tab else "")


def _targets(visit: Visit) -> WebhookTargets:
    """The API's check of webhook URLs, with the resolver tests put on the app."""
    return WebhookTargets.from_settings(
        visit.settings, visit.request.app.get(WEBHOOK_RESOLVER, system_resolve)
    )


def _read_query(visit: Visit, model: type[Query]) -> tuple[Query, dict[str, str]]:
    """The query string as `model` (blank values are absent), or defaults and the errors."""
    given = {name: value for name, value in visit.request.query.items() if value.strip()}
    try:
        return model.model_validate(given), {}
    except ValidationError as exc:
        return model(), field_errors_of(exc)


def _pointers(exc: ValidationError | InvalidFields) -> list[str]:
    if isinstance(exc, InvalidFields):
        return [error.pointer for error in exc.errors]
    return ["/" + "/".join(str(part) for part in error["loc"]) for error in exc.errors()]


def field_errors(exc: ValidationError | InvalidFields) -> dict[str, str]:
    """Errors by field (`field_errors_of`), saying which line of a list field is wrong."""
    errors = field_errors_of(exc)
    seen: set[str] = set()
    for pointer in _pointers(exc):
        name, _, rest = pointer.strip("/").partition("/")
        index = rest.partition("/")[0]
        if name not in seen and name in POSITION_WORDS and index.isdigit():
            errors[name] = f"{POSITION_WORDS[name]} {int(index) + 1}: {errors[name]}"
        seen.add(name)
    return errors


def _check(model: type[Model], body: dict[str, Any]) -> tuple[Model | None, dict[str, str]]:
    try:
        return model.model_validate(body), {}
    except ValidationError as exc:
        return None, field_errors(exc)


def duration(seconds: int) -> str:
    """86400 -> "1 day"; 5400 -> "90 minutes"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


# --- the form -----------------------------------------------------------------------


def editable_topics(subscription: Subscription) -> Topics:
    """The topics the owner gave: with events, topic0 is theirs (shown as null)."""
    topics = list(subscription.topics)
    if subscription.events and topics:
        topics[0] = None
    while topics and topics[-1] is None:
        topics.pop()
    return topics


def topics_text(topics: Topics) -> str:
    """The topics as JSON with a line per position, the way a person reads them."""
    if not topics:
        return ""
    return "[\n" + ",\n".join(f"  {json.dumps(position)}" for position in topics) + "\n]"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class SubscriptionForm:
    """A subscription's fields as its form shows them: text as typed, kept on a refusal."""

    chain_id: str = ""
    name: str = ""
    addresses: str = ""
    events: str = ""
    topics: str = ""
    webhook_url: str = ""
    webhook_ordering: str = DEFAULT_WEBHOOK_ORDERING
    stored_events: bool = True
    reenable_webhook: bool = False

    @classmethod
    def sent(cls, visit: Visit) -> SubscriptionForm:
        text = ("chain_id", "name", "addresses", "events", "topics", "webhook_url")
        return cls(
            **{name: visit.field(name) for name in text},
            webhook_ordering=visit.field("webhook_ordering"),
            stored_events=visit.field("stored_events") == "on",
            reenable_webhook=visit.field("reenable_webhook") == "on",
        )

    @classmethod
    def of(cls, subscription: Subscription) -> SubscriptionForm:
        topics = editable_topics(subscription)
        return cls(
            chain_id=str(subscription.chain_id),
            name=subscription.name or "",
            addresses="\n".join(subscription.addresses),
            events="\n".join(subscription.events),
            topics=topics_text(topics),
            webhook_url=subscription.webhook_url or "",
            webhook_ordering=subscription.webhook_ordering,
            stored_events=subscription.stored_events,
        )

    def body(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body the fields stand for (no chain), and errors of unreadable fields."""
        body: dict[str, Any] = {
            "name": self.name or None,
            "addresses": _lines(self.addresses),
            "events": _lines(self.events),
            "webhook_url": self.webhook_url or None,
            "webhook_ordering": self.webhook_ordering,
            "stored_events": self.stored_events,
        }
        try:
            body["topics"] = json.loads(self.topics) if self.topics else []
        except json.JSONDecodeError as exc:
            return body, {"topics": f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"}
        return body, {}

    def create_body(self) -> tuple[dict[str, Any], dict[str, str]]:
        body, errors = self.body()
        chain = self.chain_id
        return {"chain_id": int(chain) if _CHAIN_ID.fullmatch(chain) else chain, **body}, errors

    def changes(self, current: SubscriptionForm) -> tuple[dict[str, Any], dict[str, str]]:
        """A PATCH body: the fields that differ from `current`, the subscription's form.

        A disabled webhook is re-enabled by setting its URL again, so the owner's
        "re-enable" sends the URL even when it is unchanged.
        """
        body, errors = self.body()
        before, _ = current.body()
        changed = {name: value for name, value in body.items() if before.get(name) != value}
        if self.reenable_webhook and body["webhook_url"] is not None:
            changed["webhook_url"] = body["webhook_url"]
        return changed, errors


async def other_refusals(
    targets: WebhookTargets, body: dict[str, Any], errors: dict[str, str]
) -> dict[str, str]:
    """What the domain would also refuse, for a form the model refused already.

    The API names the model's errors first and the domain's once those are fixed;
    here the event signatures and the webhook URL are checked too, so one answer
    names every field to change.
    """
    found: dict[str, str] = {}
    if "events" not in errors and isinstance(body.get("events"), list):
        try:
            subscriptions.build_filter([], [], body["events"])
        except InvalidFields as exc:
            found |= field_errors(exc)
    url = body.get("webhook_url")
    if "webhook_url" not in errors and isinstance(url, str):
        try:
            await targets.check(url)
        except InvalidFields as exc:
            found |= field_errors_of(exc)
    return found


def _secret_page(visit: Visit, row: asyncpg.Record, reason: str) -> web.Response:
    """The one page that shows a webhook secret; never cached."""
    response = show(
        visit,
        "subscription_secret.html",
        nav="subscriptions",
        subscription=render.subscription(row),
        secret=row["webhook_secret"],
        reason=reason,
        grace_seconds=visit.settings.webhook_secret_grace_seconds,
        grace=duration(visit.settings.webhook_secret_grace_seconds),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the list and the create form -----------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """A subscription as its row of the list shows it."""

    subscription: Subscription
    summary: list[str]
    webhook_host: str | None

    @classmethod
    def of(cls, subscription: Subscription) -> Listed:
        url = subscription.webhook_url
        return cls(subscription, filter_summary(subscription), URL(url).host if url else None)


def _contracts(addresses: Sequence[str]) -> str:
    if len(addresses) == 1:
        return f"{addresses[0][:6]}…{addresses[0][-4:]}"
    return f"{len(addresses):,} contracts" if addresses else "any contract"


def filter_summary(subscription: Subscription) -> list[str]:
    """The filter in a few words: which contracts, which events, which topics."""
    parts = [_contracts(subscription.addresses)]
    names = [signature.partition("(")[0] for signature in subscription.events]
    if names:
        parts.append(", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else ""))
    topics = [position for position in editable_topics(subscription) if position is not None]
    if topics:
        parts.append(f"{len(topics)} topic filter{'' if len(topics) == 1 else 's'}")
    if not names and not topics:
        parts.append("any event")
    return parts


async def list_page(visit: Visit) -> web.StreamResponse:
    view, errors = _read_query(visit, SubscriptionsView)
    if errors:
        raise InvalidInput("; ".join(f"{name}: {detail}" for name, detail in errors.items()))
    async with visit.pool.acquire() as conn:
        rows, cursor = await subscriptions.list_subscriptions(
            conn, visit.workspace_id, limit=view.limit, after=view.after
        )
    return show(
        visit,
        "subscriptions.html",
        nav="subscriptions",
        listed=[Listed.of(render.subscription(row)) for row in rows],
        next_url=_url(SUBSCRIPTIONS, after=cursor) if cursor else None,
        first_url=SUBSCRIPTIONS if view.after else None,
        notice=visit.request.query.get("notice", ""),
    )


def _new_page(
    visit: Visit, form: SubscriptionForm, errors: dict[str, str], status: int = 200
) -> web.Response:
    return show(
        visit,
        "subscriptions_new.html",
        status=status,
        nav="subscriptions",
        form=form,
        errors=errors,
        chains=sorted(visit.settings.chains),
    )


async def new_page(visit: Visit) -> web.StreamResponse:
    chains = sorted(visit.settings.chains)
    return _new_page(visit, SubscriptionForm(chain_id=str(chains[0]) if chains else ""), {})


async def create(visit: Visit) -> web.StreamResponse:
    form = SubscriptionForm.sent(visit)
    body, unreadable = form.create_body()
    model, errors = _check(SubscriptionCreate, body)
    errors |= unreadable
    targets = _targets(visit)
    if model is None or errors:
        errors |= await other_refusals(targets, body, errors)
        return _new_page(visit, form, errors, 422)
    try:
        async with visit.pool.acquire() as conn:
            row = await subscriptions.create_subscription(
                conn, visit.workspace_id, spec_of(model), visit.settings.chains, targets=targets
            )
    except InvalidFields as exc:
        return _new_page(visit, form, field_errors(exc), 422)
    return _secret_page(visit, row, "created")


async def subscription_home(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)  # another workspace's: 404
    raise web.HTTPSeeOther(subscription_url(subscription.id, "backfill"))


# --- settings -----------------------------------------------------------------------


def _settings_page(
    visit: Visit,
    subscription: Subscription,
    form: SubscriptionForm | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return show(
        visit,
        "subscription_settings.html",
        status=status,
        tab="settings",
        subscription=subscription,
        form=form or SubscriptionForm.of(subscription),
        errors=errors or {},
        notice=visit.request.query.get("notice", "") if status == 200 else "",
        grace_seconds=visit.settings.webhook_secret_grace_seconds,
        grace=duration(visit.settings.webhook_secret_grace_seconds),
    )


async def settings_page(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
    return _settings_page(visit, subscription)


async def save_settings(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
    form = SubscriptionForm.sent(visit)
    changes, unreadable = form.changes(SubscriptionForm.of(subscription))
    patch, errors = _check(SubscriptionPatch, changes)
    errors |= unreadable
    targets = _targets(visit)
    if patch is None or errors:
        errors |= await other_refusals(targets, changes, errors)
        return _settings_page(visit, subscription, form, errors, 422)
    back = subscription_url(subscription.id, "settings")
    if not changes:
        raise web.HTTPSeeOther(_url(back, notice="unchanged"))
    try:
        async with visit.pool.acquire() as conn:
            row, new_secret = await subscriptions.update_subscription(
                conn, visit.workspace_id, subscription.id, spec_of(patch), targets=targets
            )
    except InvalidFields as exc:
        return _settings_page(visit, subscription, form, field_errors(exc), 422)
    if new_secret:
        return _secret_page(visit, row, "webhook")
    raise web.HTTPSeeOther(_url(back, notice="saved"))


async def rotate_secret(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        row = await subscriptions.rotate_webhook_secret(
            conn, visit.workspace_id, visit.path_id(), visit.settings.webhook_secret_grace_seconds
        )
    return _secret_page(visit, row, "rotated")


async def delete(visit: Visit) -> web.StreamResponse:
    async with visit.pool.acquire() as conn:
        if visit.field("confirm") != "on":
            subscription = await subscription_of(conn, visit)
            refusal = {"confirm": "Tick this box to confirm the deletion."}
            return _settings_page(visit, subscription, errors=refusal, status=422)
        await subscriptions.delete_subscription(conn, visit.workspace_id, visit.path_id())
    raise web.HTTPSeeOther(_url(SUBSCRIPTIONS, notice="deleted"))


# --- stored events ------------------------------------------------------------------


async def events_page(visit: Visit) -> web.StreamResponse:
    view, errors = _read_query(visit, EventsView)
    items: list[dict[str, Any]] = []
    cursor = None
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
        if not errors:
            try:
                items, cursor = await events.list_events(
                    conn,
                    visit.workspace_id,
                    subscription.id,
                    limit=view.limit,
                    after=view.after,
                    bounds=events.BlockBounds(view.from_block, view.to_block),
                    order=view.order,
                )
            except InvalidFields as exc:
                errors = field_errors_of(exc)
    base = subscription_url(subscription.id, "events")
    kept = {
        "order": view.order,
        "from_block": view.from_block,
        "to_block": view.to_block,
        "limit": None if view.limit == PAGE_SIZE else view.limit,
    }
    bounds = {"from_block": view.from_block, "to_block": view.to_block}
    return show(
        visit,
        "subscription_events.html",
        status=422 if errors else 200,
        tab="events",
        subscription=subscription,
        rows=[(item, decoded_args(item)) for item in items],
        errors=errors,
        typed={name: visit.request.query.get(name, "") for name in ("from_block", "to_block")},
        view=view,
        filtered=view.from_block is not None or view.to_block is not None,
        next_url=_url(base, **kept, after=cursor) if cursor else None,
        first_url=_url(base, **kept) if view.after else None,
        downloads={kind: _url(f"{base}.{kind}", **bounds) for kind in ("ndjson", "csv")},
    )


@dataclass(frozen=True)
class EventArg:
    """A decoded argument as a table cell shows it, in full in its title."""

    name: str
    shown: str
    full: str

    @classmethod
    def of(cls, name: str, value: Any) -> EventArg:
        full = value if isinstance(value, str) else json.dumps(value)
        return cls(name, _shorter(full), full)


def _shorter(text: str) -> str:
    """Integers with separators (huge ones as 1.2346e+77), hex and long text cut short."""
    if _INTEGER.fullmatch(text):
        return f"{int(text):,}" if len(text) <= 24 else f"{int(text):.4e}"
    if text.startswith("0x") and len(text) > 18:
        return f"{text[:8]}…{text[-6:]}"
    return text if len(text) <= 40 else text[:39] + "…"


def decoded_args(item: dict[str, Any]) -> list[EventArg]:
    decoded = item.get("decoded")
    return [EventArg.of(name, value) for name, value in decoded["args"].items()] if decoded else []


def export_filename(subscription: Subscription, view: EventPageQuery, suffix: str) -> str:
    """events-<name or id>[-from-N][-to-M].<suffix>: safe ASCII that says what is inside."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", subscription.name or "").strip("-")[:40]
    parts = ["events", name or str(subscription.id)[:8]]
    if view.from_block is not None:
        parts += ["from", str(view.from_block)]
    if view.to_block is not None:
        parts += ["to", str(view.to_block)]
    return "-".join(parts) + f".{suffix}"


async def download_events(visit: Visit, media_type: str, suffix: str) -> web.StreamResponse:
    """Every stored event in the bounds, in chain order: the API's export, as a file."""
    view, errors = _read_query(visit, EventPageQuery)
    if errors:
        raise InvalidInput("; ".join(f"{name}: {detail}" for name, detail in errors.items()))
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
        reader = await events.open_reader(
            conn,
            visit.workspace_id,
            subscription.id,
            events.BlockBounds(view.from_block, view.to_block),
        )
    filename = export_filename(subscription, view, suffix)
    return await stream_export(visit.request, visit.pool, reader, media_type, filename=filename)


async def download_ndjson(visit: Visit) -> web.StreamResponse:
    return await download_events(visit, NDJSON, "ndjson")


async def download_csv(visit: Visit) -> web.StreamResponse:
    return await download_events(visit, CSV, "csv")


# --- webhook deliveries -------------------------------------------------------------


async def deliveries_page(visit: Visit) -> web.StreamResponse:
    view, errors = _read_query(visit, DeliveriesView)
    rows: list[asyncpg.Record] = []
    cursor = None
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
        if not errors:
            try:
                rows, cursor = await deliveries.list_deliveries(
                    conn,
                    visit.workspace_id,
                    subscription.id,
                    status=view.status,
                    limit=view.limit,
                    after=view.after,
                )
            except InvalidFields as exc:
                errors = field_errors_of(exc)
    base = subscription_url(subscription.id, "deliveries")
    kept = {"status": view.status, "limit": None if view.limit == PAGE_SIZE else view.limit}
    query = visit.request.query
    return show(
        visit,
        "subscription_deliveries.html",
        status=422 if errors else 200,
        tab="deliveries",
        subscription=subscription,
        deliveries=[render.delivery(row) for row in rows],
        errors=errors,
        statuses=DELIVERY_STATUSES,
        view=view,
        next_url=_url(base, **kept, after=cursor) if cursor else None,
        first_url=_url(base, **kept) if view.after else None,
        retry=query.get("retry", ""),
        retried=query.get("delivery", "")[:8],
        now=datetime.now(UTC),
    )


def _deliveries_tab(visit: Visit, subscription_id: object, **notice: object) -> str:
    """Where a retry form goes back to: its subscription's tab, with the status filter."""
    status = visit.field("status")
    return _url(
        subscription_url(str(subscription_id), "deliveries"),
        status=status if status in DELIVERY_STATUSES else None,
        **notice,
    )


async def retry_delivery(visit: Visit) -> web.StreamResponse:
    delivery_id = visit.path_id()
    try:
        async with visit.pool.acquire() as conn:
            row = await deliveries.retry_delivery(conn, visit.workspace_id, delivery_id)
    except Conflict as exc:
        try:
            subscription_id = uuid.UUID(visit.field("subscription_id"))
        except ValueError:
            raise exc from None  # no tab to go back to: the refusal's own page
        back = _deliveries_tab(visit, subscription_id, retry=exc.problem_type, delivery=delivery_id)
        raise web.HTTPSeeOther(back) from None
    done = _deliveries_tab(visit, row["subscription_id"], retry="done", delivery=delivery_id)
    raise web.HTTPSeeOther(done)


ROUTES = [
    Route("GET", "/subscriptions", page(list_page), "dashboard_subscriptions"),
    Route("POST", "/subscriptions", page(create), "dashboard_subscription_create"),
    # Before /subscriptions/{id}, which would take "new" for an id.
    Route("GET", "/subscriptions/new", page(new_page), "dashboard_subscription_new"),
    Route("GET", "/subscriptions/{id}", page(subscription_home), "dashboard_subscription"),
    Route(
        "GET",
        "/subscriptions/{id}/settings",
        page(settings_page),
        "dashboard_subscription_settings",
    ),
    Route(
        "POST",
        "/subscriptions/{id}/settings",
        page(save_settings),
        "dashboard_subscription_settings_save",
    ),
    Route(
        "POST",
        "/subscriptions/{id}/rotate-secret",
        page(rotate_secret),
        "dashboard_subscription_rotate_secret",
    ),
    Route("POST", "/subscriptions/{id}/delete", page(delete), "dashboard_subscription_delete"),
    Route("GET", "/subscriptions/{id}/events", page(events_page), "dashboard_subscription_events"),
    Route(
        "GET",
        "/subscriptions/{id}/events.ndjson",
        page(download_ndjson),
        "dashboard_subscription_events_ndjson",
    ),
    Route(
        "GET",
        "/subscriptions/{id}/events.csv",
        page(download_csv),
        "dashboard_subscription_events_csv",
    ),
    Route(
        "GET",
        "/subscriptions/{id}/deliveries",
        page(deliveries_page),
        "dashboard_subscription_deliveries",
    ),
    Route("POST", "/deliveries/{id}/retry", page(retry_delivery), "dashboard_delivery_retry"),
]
