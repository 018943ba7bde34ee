"""/v1/subscriptions: CRUD and webhook secret rotation (stored events: `events`)."""

from __future__ import annotations

from aiohttp import web

from api import render
from api.models import (
    PageQuery,
    Subscription,
    SubscriptionCreate,
    SubscriptionList,
    SubscriptionPatch,
    SubscriptionWithSecret,
)
from api.routing import Answer, Call, Operation, json_response
from indexer import subscriptions
from indexer.subscriptions import SubscriptionSpec, WebhookTargets
from indexer.webhooks.ssrf import SET_TIME_DNS_TIMEOUT_SECONDS, Resolver, system_resolve

# The resolver webhook URLs are checked with when they are set; absent, the
# system's. Tests put a fake one on the app before it starts (no real DNS).
WEBHOOK_RESOLVER = web.AppKey[Resolver]("webhook_resolver")


def subscription_spec(model: SubscriptionCreate | SubscriptionPatch) -> SubscriptionSpec:
    return SubscriptionSpec(
        chain_id=model.chain_id if isinstance(model, SubscriptionCreate) else None,
        name=model.name,
        addresses=model.addresses,
        topics=model.topics,
        events=model.events,
        webhook_url=model.webhook_url,
        webhook_ordering=model.webhook_ordering,
        stored_events=model.stored_events,
        fields_set=frozenset(model.model_fields_set),
    )


def _targets(call: Call) -> WebhookTargets:
    resolve = call.request.app.get(WEBHOOK_RESOLVER, system_resolve)
    return WebhookTargets.from_settings(call.settings, resolve)


async def create_subscription(call: Call) -> web.Response:
    spec = subscription_spec(call.body_as(SubscriptionCreate))
    async with call.pool.acquire() as conn:
        row = await subscriptions.create_subscription(
            conn, call.workspace_id, spec, call.settings.chains, targets=_targets(call)
        )
    headers = {"Location": f"/v1/subscriptions/{row['id']}"}
    return json_response(render.subscription(row, secret=True), 201, headers)


async def list_subscriptions(call: Call) -> web.Response:
    query = call.query_as(PageQuery)
    async with call.pool.acquire() as conn:
        rows, cursor = await subscriptions.list_subscriptions(
            conn, call.workspace_id, limit=query.limit, after=query.after
        )
    return json_response(
        SubscriptionList(items=[render.subscription(r) for r in rows], next=cursor)
    )


async def get_subscription(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        row = await subscriptions.get_subscription(conn, call.workspace_id, call.path_id())
    return json_response(render.subscription(row))


async def patch_subscription(call: Call) -> web.Response:
    spec = subscription_spec(call.body_as(SubscriptionPatch))
    async with call.pool.acquire() as conn:
        row, new_secret = await subscriptions.update_subscription(
            conn, call.workspace_id, call.path_id(), spec, targets=_targets(call)
        )
    model = render.subscription(row, secret=True)
    if not new_secret:
        model = model.model_copy(update={"webhook_secret": None})
    return json_response(model)


async def delete_subscription(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        await subscriptions.delete_subscription(conn, call.workspace_id, call.path_id())
    return web.Response(status=204)


async def rotate_webhook_secret(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        row = await subscriptions.rotate_webhook_secret(
            conn, call.workspace_id, call.path_id(), call.settings.webhook_secret_grace_seconds
        )
    return json_response(render.subscription(row, secret=True))


_ONE = "/v1/subscriptions/{id}"
WEBHOOK_URL_CHECK = (
    "A webhook_url is checked when it is set: it must use https, and its host must be "
    f"a public address or a name that resolves (within {SET_TIME_DNS_TIMEOUT_SECONDS:g} s) "
    "only to public addresses; otherwise the answer is 422 naming /webhook_url."
)
OPERATIONS = [
    Operation(
        "POST",
        "/v1/subscriptions",
        "createSubscription",
        "Create a subscription",
        create_subscription,
        [
            Answer(
                201,
                "Created; webhook_secret is shown here only",
                SubscriptionWithSecret,
                {"Location": "The subscription's URL"},
            )
        ],
        tag="subscriptions",
        body=SubscriptionCreate,
        description=WEBHOOK_URL_CHECK,
    ),
    Operation(
        "GET",
        "/v1/subscriptions",
        "listSubscriptions",
        "The workspace's subscriptions",
        list_subscriptions,
        [Answer(200, "Oldest first", SubscriptionList)],
        tag="subscriptions",
        query=PageQuery,
    ),
    Operation(
        "GET",
        _ONE,
        "getSubscription",
        "One subscription",
        get_subscription,
        [Answer(200, "The subscription", Subscription)],
        tag="subscriptions",
    ),
    Operation(
        "PATCH",
        _ONE,
        "updateSubscription",
        "Change a subscription",
        patch_subscription,
        [
            Answer(
                200,
                "Updated; webhook_secret is set only when a first webhook_url generated one",
                SubscriptionWithSecret,
            )
        ],
        tag="subscriptions",
        body=SubscriptionPatch,
        description="Fields given replace the stored ones. A new filter forgets the blocks "
        "scanned with the old one. A first webhook_url generates a secret; null removes the "
        "webhook and its secrets. " + WEBHOOK_URL_CHECK,
    ),
    Operation(
        "DELETE",
        _ONE,
        "deleteSubscription",
        "Delete a subscription with its history",
        delete_subscription,
        [Answer(204, "Deleted")],
        tag="subscriptions",
    ),
    Operation(
        "POST",
        f"{_ONE}/webhook-secret/rotate",
        "rotateWebhookSecret",
        "New webhook signing secret; the old one stays valid for a grace period",
        rotate_webhook_secret,
        [Answer(200, "The new secret, shown here only", SubscriptionWithSecret)],
        tag="subscriptions",
        refusals={409: "The subscription has no webhook_url"},
    ),
]
