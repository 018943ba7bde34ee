"""/v1/backfill: accept (with Idempotency-Key), dry run, status, history, owner actions."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from asyncpg import Record

from api import render
from api.models import Backfill, BackfillCreate, BackfillList, BackfillPageQuery, DryRunResult
from api.problems import Problem
from api.routing import JSON, Answer, Call, Operation, json_response
from indexer import backfills, idempotency
from indexer.backfills import Action, BackfillSpec
from indexer.db.pool import Connection
from indexer.idempotency import Claim, Outcome, StoredResponse

ROUTE = "/v1/backfill"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(request: web.Request) -> str | None:
    """The request's one Idempotency-Key, if any.

    Sent twice, the key is ambiguous: which one would a retry have to repeat?
    Taking either silently could create a second request on a retry, so it is a 400.
    """
    keys = request.headers.getall(IDEMPOTENCY_HEADER, [])
    if len(keys) > 1:
        raise Problem(
            400,
            "Bad Request",
            f"Idempotency-Key was sent {len(keys)} times; send it once",
            problem_type="invalid-idempotency-key",
            errors=[{"header": IDEMPOTENCY_HEADER, "detail": "send exactly one"}],
        )
    key = keys[0] if keys else None
    if key is None or idempotency.is_valid_key(key):
        return key
    raise Problem(
        400,
        "Bad Request",
        "Idempotency-Key must be 1 to 255 printable ASCII characters",
        problem_type="invalid-idempotency-key",
        errors=[{"header": IDEMPOTENCY_HEADER, "detail": "1 to 255 printable ASCII characters"}],
    )


def backfill_spec(body: BackfillCreate) -> BackfillSpec:
    """The request as the domain takes it (the dashboard's form makes the same)."""
    return BackfillSpec(
        subscription_id=body.subscription_id,
        from_block=body.from_block,
        to_block=body.to_block,
        labels=body.labels,
        order=body.order,
        rescan=body.rescan,
        redeliver=body.redeliver,
    )


async def create_backfill(call: Call) -> web.Response:
    """Queue a request, or estimate it (dry run); at most once per Idempotency-Key.

    Two round trips and no transaction for a new request: one statement reads its
    context with the key's record, one creates it and claims the key
    (`idempotency.accept_once`); a replay or a refusal takes the first only."""
    body = call.body_as(BackfillCreate)
    key = idempotency_key(call.request)
    fingerprint = idempotency.fingerprint("POST", ROUTE, call.json_body()) if key else b""
    spec, chains, workspace_id = backfill_spec(body), call.settings.chains, call.workspace_id

    loaded: list[Record] = []  # the context, read with the key's record (one round trip)

    async def lookup(conn: Connection) -> Record:
        loaded.append(await backfills.load_context(conn, workspace_id, spec.subscription_id, key))
        return loaded[0]

    async def handle(conn: Connection, claim: Claim | None) -> Outcome:
        if body.dry_run:
            estimate = await backfills.dry_run(
                conn, workspace_id, spec, chains, now=datetime.now(UTC), context=loaded[0]
            )
            result = DryRunResult.model_validate(estimate, from_attributes=True)
            return Outcome(StoredResponse(200, result.model_dump_json().encode()))
        row = backfills.new_backfill(workspace_id, spec, chains, loaded[0], now=datetime.now(UTC))
        payload = render.backfill(row).model_dump_json().encode()
        response = StoredResponse(202, payload, {"Location": f"{ROUTE}/{row['id']}"})
        await backfills.insert_backfill(
            conn, row, None if claim is None else claim.columns(response)
        )
        return Outcome(response, created=row["id"])

    async with call.pool.acquire() as conn:
        response, replayed = await idempotency.accept_once(
            conn,
            key,
            fingerprint,
            ttl_seconds=call.settings.idempotency_ttl_seconds,
            lookup=lookup,
            handle=handle,
        )
    headers = dict(response.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(
        status=response.status, body=response.body, content_type=JSON, headers=headers
    )


async def get_backfill(call: Call) -> web.Response:
    async with call.pool.acquire() as conn:
        row = await backfills.get_backfill(conn, call.workspace_id, call.path_id())
    return json_response(render.backfill(row))


async def list_backfills(call: Call) -> web.Response:
    query = call.query_as(BackfillPageQuery)
    async with call.pool.acquire() as conn:
        rows, cursor = await backfills.list_backfills(
            conn,
            call.workspace_id,
            call.path_id(),
            status=query.status,
            limit=query.limit,
            after=query.after,
        )
    return json_response(BackfillList(items=[render.backfill(r) for r in rows], next=cursor))


def _action(action: Action) -> Operation:
    async def handler(call: Call) -> web.Response:
        async with call.pool.acquire() as conn:
            row = await backfills.apply_action(conn, call.workspace_id, call.path_id(), action)
        return json_response(render.backfill(row))

    return Operation(
        "POST",
        f"{ROUTE}/{{id}}/{action}",
        f"{action}Backfill",
        f"{action.capitalize()} a backfill (from {backfills.ALLOWED_FROM[action]})",
        handler,
        [Answer(200, "The request after the transition", Backfill)],
        tag="backfill",
        refusals={409: "Not allowed from the current status (named in backfill_status)"},
    )


_IDEMPOTENCY_DOC = (
    "With an Idempotency-Key, a retry with the same body answers the first response "
    "again (header Idempotent-Replayed: true) and creates nothing; another body is a 422, "
    "and a retry while the first is still being handled a 409. Keys are kept 24 hours. "
    "Only accepted requests use up a key: after a refusal or a dry run the same key can "
    "be sent again."
)
OPERATIONS = [
    Operation(
        "POST",
        ROUTE,
        "createBackfill",
        "Queue a backfill, or estimate one (dry_run)",
        create_backfill,
        [
            Answer(
                202,
                "Accepted and queued",
                Backfill,
                {
                    "Location": "The request's URL",
                    "Idempotent-Replayed": "true when this is the stored first response",
                },
            ),
            Answer(
                200,
                "Dry run: what the request would scan and cost; nothing created",
                DryRunResult,
                {"Idempotent-Replayed": "true on a replay"},
            ),
        ],
        tag="backfill",
        body=BackfillCreate,
        idempotency_key=True,
        refusals={
            403: "The workspace's plan does not include backfill",
            404: "Unknown subscription",
            409: "The subscription stores no events, or the Idempotency-Key is in flight",
        },
        description=_IDEMPOTENCY_DOC,
    ),
    Operation(
        "GET",
        f"{ROUTE}/{{id}}",
        "getBackfill",
        "Status, cursor, progress and ETA",
        get_backfill,
        [Answer(200, "The request", Backfill)],
        tag="backfill",
    ),
    Operation(
        "GET",
        "/v1/subscriptions/{id}/backfills",
        "listBackfills",
        "A subscription's request history, newest first",
        list_backfills,
        [Answer(200, "Newest first", BackfillList)],
        tag="backfill",
        query=BackfillPageQuery,
    ),
    *(_action(action) for action in ("pause", "resume", "cancel", "retry")),
]
