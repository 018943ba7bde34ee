"""Backfill pages: a subscription's Backfill form (estimate or queue) and History, and
a request's page with its live progress, the owner's actions and its windows chart.

Everything goes through the functions `/v1/backfill` calls, with the API's model
validating the form, so the pages accept and refuse exactly what the API does. A
form is queued through `idempotency.run_once` with a key generated when the form
was rendered: a double click or a resent form lands on the one request it created.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, cast
from urllib.parse import urlencode

import asyncpg
import orjson
from aiohttp import web

from api import render
from api.dashboard.charts import NARROW_HEIGHT, NARROW_WIDTH, WindowChart, window_chart
from api.dashboard.routes import Route
from api.dashboard.view import field_errors_of, show, subscription_of, validate
from api.dashboard.visits import PREFIX, Visit, page
from api.handlers.backfills import ROUTE as API_ROUTE
from api.handlers.backfills import backfill_spec
from api.models import Backfill, BackfillCreate, BackfillPageQuery, DryRunResult, Subscription
from indexer import accounts, backfills, idempotency, subscriptions
from indexer.backfills import Action
from indexer.db.pool import Connection
from indexer.domain import BACKFILL_STATUSES, TERMINAL, BackfillStatus
from indexer.idempotency import Outcome, StoredResponse
from indexer.refusals import (
    Conflict,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidFields,
    NotPermitted,
)

HISTORY_PAGE = 20
# A second submit of a form while the first is still being queued waits for it, then
# lands on the same request (the API answers 409 instead; a browser shows only the last).
IN_FLIGHT_WAITS: Final = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
ACTIONS: Final[tuple[Action, ...]] = ("pause", "resume", "cancel", "retry")
# The statuses each action's UPDATE accepts (indexer/db/sql/backfills.sql); a button is
# enabled only there. The server decides anyway: a refused action shows its 409.
ACTION_FROM: Final[Mapping[Action, frozenset[BackfillStatus]]] = {
    "pause": frozenset({"queued", "processing", "following", "paused_credits", "blocked"}),
    "resume": frozenset({"paused"}),
    "cancel": frozenset(
        {"queued", "processing", "following", "paused_credits", "paused", "blocked"}
    ),
    "retry": frozenset({"failed"}),
}
DONE_WORDS: Final[Mapping[str, str]] = {
    "pause": "Paused. Its cursor stays where it is until you resume it.",
    "resume": "Resumed. The next window takes it up again.",
    "cancel": "Cancelled. Matches found so far are kept.",
    "retry": "Queued again. It goes on from the next block it still had to scan.",
}
FORM_FIELDS: Final = ("from_block", "to_block", "order", "labels", "rescan", "redeliver")
_NUMBER = re.compile(r"-?\d{1,30}")


# --------------------------------------------------------------------------- the form


@dataclass(frozen=True)
class BackfillForm:
    """The Backfill form as the owner typed it, so a refused form comes back unchanged."""

    from_block: str = ""
    to_block: str = ""
    order: str = "asc"
    labels: str = ""
    rescan: bool = False
    redeliver: bool = False
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def sent(cls, visit: Visit) -> BackfillForm:
        return cls(
            from_block=visit.field("from_block"),
            to_block=visit.field("to_block"),
            order=visit.field("order") or "asc",
            labels=visit.field("labels"),
            rescan=visit.field("rescan") == "on",
            redeliver=visit.field("redeliver") == "on",
            idempotency_key=visit.field("idempotency_key"),
        )

    def validated(self, subscription_id: uuid.UUID) -> tuple[BackfillCreate | None, dict[str, str]]:
        """The API's body model over these values, or the errors by field."""
        labels, label_error = parse_labels(self.labels)
        data = {
            "subscription_id": subscription_id,
            "from_block": block_value(self.from_block),
            "to_block": block_value(self.to_block, safe=True),
            "labels": labels,
            "order": self.order,
            "rescan": self.rescan,
            "redeliver": self.redeliver,
        }
        model, errors = validate(BackfillCreate, data)
        if label_error:
            return None, {**errors, "labels": label_error}
        return cast(BackfillCreate | None, model), errors


def block_value(text: str, *, safe: bool = False) -> int | str | None:
    """A typed block: empty -> None, digits (commas allowed) -> int, else as typed for the
    model to refuse or accept (0x hex; "safe" or "follow" for to_block)."""
    text = text.strip()
    if not text:
        return None
    if safe and text.lower() in ("safe", "follow"):
        return text.lower()
    digits = text.replace(",", "").replace("_", "").replace(" ", "")
    return int(digits) if _NUMBER.fullmatch(digits) else text


def parse_labels(text: str) -> tuple[dict[str, str], str | None]:
    """`key=value` lines (blank lines skipped) -> labels, or why a line is not one."""
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            return labels, f"line {number} is not key=value"
        if key in labels:
            return labels, f"line {number}: the label {key!r} is given twice"
        labels[key] = value.strip()
    return labels, None


def api_body(body: BackfillCreate) -> dict[str, Any]:
    """The form as the JSON body of `POST /v1/backfill`, every field given: what the
    idempotency key's fingerprint is taken over."""
    return body.model_dump(mode="json", exclude={"dry_run"})


@dataclass(frozen=True)
class FormPage:
    """Everything the Backfill tab shows besides the form's values."""

    subscription: Subscription
    workspace: asyncpg.Record
    errors: Mapping[str, str] = field(default_factory=dict)
    notice: str | None = None
    estimate: DryRunResult | None = None
    status: int = 200


def _show_form(visit: Visit, form: BackfillForm, view: FormPage) -> web.Response:
    notices = [detail for name, detail in view.errors.items() if name not in FORM_FIELDS]
    if view.notice:
        notices.insert(0, view.notice)
    return show(
        visit,
        "backfill.html",
        status=view.status,
        subscription=view.subscription,
        workspace=view.workspace,
        form=form,
        errors=view.errors,
        notices=notices,
        estimate=view.estimate,
        readiness=_readiness(view.workspace, view.subscription),
    )


def _readiness(workspace: asyncpg.Record, subscription: Subscription) -> str | None:
    """Why a request would be refused now (the domain's own words), before anyone asks."""
    try:
        backfills.require_rules(
            backfill_enabled=workspace["backfill_enabled"],
            stored_events=subscription.stored_events,
        )
    except (NotPermitted, Conflict) as exc:
        return str(exc)
    return None


async def _form_context(visit: Visit) -> tuple[Subscription, asyncpg.Record]:
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
        workspace = await accounts.get_workspace(conn, visit.workspace_id)
    return subscription, workspace


async def backfill_form(visit: Visit) -> web.StreamResponse:
    subscription, workspace = await _form_context(visit)
    return _show_form(visit, BackfillForm(), FormPage(subscription, workspace))


REUSED = (
    "This form was already sent with other values, and queued a request then. "
    "To queue these values as a new request, send the form again."
)


async def backfill_submit(visit: Visit) -> web.StreamResponse:
    """Estimate (dry run) or queue; refusals come back on the form, values kept."""
    form = BackfillForm.sent(visit)
    subscription, workspace = await _form_context(visit)
    view = FormPage(subscription, workspace)
    action = visit.field("action")
    if action not in ("estimate", "queue"):
        return _show_form(
            visit, form, replace(view, notice="Choose Estimate or Queue.", status=400)
        )
    if not idempotency.is_valid_key(form.idempotency_key):
        form = replace(form, idempotency_key=str(uuid.uuid4()))
        notice = "This form lost its key; check the values and send it again."
        return _show_form(visit, form, replace(view, notice=notice, status=400))
    body, errors = form.validated(subscription.id)
    if body is None:
        return _show_form(visit, form, replace(view, errors=errors, status=422))
    try:
        if action == "estimate":
            estimate = await _estimate(visit, body)
            return _show_form(visit, form, replace(view, estimate=estimate))
        backfill_id = await _queue(visit, form.idempotency_key, body)
    except InvalidFields as exc:
        return _show_form(visit, form, replace(view, errors=field_errors_of(exc), status=422))
    except IdempotencyKeyReused:
        form = replace(form, idempotency_key=str(uuid.uuid4()))
        return _show_form(visit, form, replace(view, notice=REUSED, status=422))
    except NotPermitted as exc:
        return _show_form(visit, form, replace(view, notice=str(exc), status=403))
    except Conflict as exc:
        return _show_form(visit, form, replace(view, notice=str(exc), status=409))
    raise web.HTTPSeeOther(f"{PREFIX}/requests/{backfill_id}?queued=1")


async def _estimate(visit: Visit, body: BackfillCreate) -> DryRunResult:
    async with visit.pool.acquire() as conn:
        estimate = await backfills.dry_run(
            conn,
            visit.workspace_id,
            backfill_spec(body),
            visit.settings.chains,
            now=datetime.now(UTC),
        )
    return DryRunResult.model_validate(estimate, from_attributes=True)


async def _queue(visit: Visit, key: str, body: BackfillCreate) -> uuid.UUID:
    """Create the request at most once per form (the API's claim, response and all)."""
    spec, workspace_id, chains = backfill_spec(body), visit.workspace_id, visit.settings.chains
    fingerprint = idempotency.fingerprint("POST", API_ROUTE, api_body(body))

    async def handle(conn: Connection) -> Outcome:
        row = await backfills.create_backfill(conn, workspace_id, spec, chains)
        payload = render.backfill(row).model_dump_json().encode()
        headers = {"Location": f"{API_ROUTE}/{row['id']}"}
        return Outcome(StoredResponse(202, payload, headers), created=row["id"])

    for wait in (*IN_FLIGHT_WAITS, None):
        try:
            async with visit.pool.acquire() as conn:
                response, _ = await idempotency.run_once(
                    conn,
                    workspace_id,
                    key,
                    fingerprint,
                    ttl_seconds=visit.settings.idempotency_ttl_seconds,
                    handle=handle,
                )
            return uuid.UUID(orjson.loads(response.body)["id"])
        except IdempotencyKeyInFlight:
            if wait is None:
                raise
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- history


async def history_page(visit: Visit) -> web.StreamResponse:
    """A subscription's requests, newest first, by status, a page at a time."""
    sent = {k: v for k in ("status", "after") if (v := visit.request.query.get(k, "").strip())}
    query, errors = validate(BackfillPageQuery, {**sent, "limit": HISTORY_PAGE})
    rows: list[Backfill] = []
    cursor = None
    async with visit.pool.acquire() as conn:
        subscription = await subscription_of(conn, visit)
        if isinstance(query, BackfillPageQuery):
            try:
                found, cursor = await backfills.list_backfills(
                    conn,
                    visit.workspace_id,
                    subscription.id,
                    status=query.status,
                    limit=query.limit,
                    after=query.after,
                )
                rows = [render.backfill(row) for row in found]
            except InvalidFields as exc:
                errors = field_errors_of(exc)
    status = sent.get("status", "")
    return show(
        visit,
        "history.html",
        status=422 if errors else 200,
        subscription=subscription,
        requests=rows,
        errors=errors,
        chosen=status,
        statuses=BACKFILL_STATUSES,
        next_url=_page_url(subscription.id, status, cursor) if cursor else None,
        first_url=_page_url(subscription.id, status, None) if "after" in sent else None,
    )


def _page_url(subscription_id: uuid.UUID, status: str, after: str | None) -> str:
    query = urlencode({k: v for k, v in (("status", status), ("after", after)) if v})
    return f"{PREFIX}/subscriptions/{subscription_id}/history" + (f"?{query}" if query else "")


# --------------------------------------------------------------------------- one request


@dataclass(frozen=True)
class ActionButton:
    action: Action
    enabled: bool


def action_buttons(status: BackfillStatus) -> tuple[ActionButton, ...]:
    return tuple(ActionButton(a, status in ACTION_FROM[a]) for a in ACTIONS)


async def request_page(visit: Visit) -> web.StreamResponse:
    return await _show_request(visit)


async def _show_request(
    visit: Visit, *, notice: str | None = None, status: int = 200
) -> web.Response:
    backfill_id = visit.path_id()
    async with visit.pool.acquire() as conn:
        backfill = render.backfill(
            await backfills.get_backfill(conn, visit.workspace_id, backfill_id)
        )
        windows = await backfills.request_windows(conn, visit.workspace_id, backfill_id)
        row = await subscriptions.get_subscription(
            conn, visit.workspace_id, backfill.subscription_id
        )
    done = visit.request.query.get("done", "") if notice is None else ""
    return show(
        visit,
        "request.html",
        status=status,
        nav="subscriptions",
        backfill=backfill,
        subscription=render.subscription(row),
        final=_final(backfill),
        buttons=action_buttons(backfill.status),
        charts=both_charts(windows),
        windows=windows,
        queued=visit.request.query.get("queued") == "1" and notice is None,
        done=DONE_WORDS.get(done),
        notice=notice,
    )


async def request_live(visit: Visit) -> web.StreamResponse:
    """The live section and the header (badge, actions): what the page's script polls
    and swaps in (the page renders the same templates)."""
    async with visit.pool.acquire() as conn:
        row = await backfills.get_backfill(conn, visit.workspace_id, visit.path_id())
    backfill = render.backfill(row)
    return _fragment(
        show(
            visit,
            "_request_update.html",
            backfill=backfill,
            final=_final(backfill),
            buttons=action_buttons(backfill.status),
        )
    )


async def request_windows(visit: Visit) -> web.StreamResponse:
    """The windows chart alone, polled less often than the live section."""
    backfill_id = visit.path_id()
    async with visit.pool.acquire() as conn:
        row = await backfills.get_backfill(conn, visit.workspace_id, backfill_id)
        windows = await backfills.request_windows(conn, visit.workspace_id, backfill_id)
    backfill = render.backfill(row)
    return _fragment(
        show(
            visit,
            "_chart.html",
            backfill=backfill,
            final=_final(backfill),
            charts=both_charts(windows),
            windows=windows,
        )
    )


def both_charts(windows: list[asyncpg.Record]) -> tuple[WindowChart, WindowChart]:
    """The windows chart wide and narrow (CSS shows the one that fits the screen)."""
    return window_chart(windows), window_chart(windows, width=NARROW_WIDTH, height=NARROW_HEIGHT)


def _final(backfill: Backfill) -> bool:
    return backfill.status in TERMINAL


def _fragment(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    return response


async def request_action(visit: Visit) -> web.StreamResponse:
    """Pause, resume, cancel or retry, then back to the page; a refusal is shown there."""
    action = cast(Action, visit.request.match_info["action"])
    backfill_id = visit.path_id()
    try:
        async with visit.pool.acquire() as conn:
            await backfills.apply_action(conn, visit.workspace_id, backfill_id, action)
    except NotPermitted as exc:
        return await _show_request(visit, notice=_refused(action, exc), status=403)
    except Conflict as exc:
        return await _show_request(visit, notice=_refused(action, exc), status=409)
    raise web.HTTPSeeOther(f"{PREFIX}/requests/{backfill_id}?done={action}")


def _refused(action: Action, exc: Exception) -> str:
    return f"Could not {action} this request: {exc}."


_ACTION_PATTERN = "|".join(ACTIONS)
ROUTES = [
    Route("GET", "/subscriptions/{id}/backfill", page(backfill_form), "dashboard_backfill_form"),
    Route(
        "POST", "/subscriptions/{id}/backfill", page(backfill_submit), "dashboard_backfill_submit"
    ),
    Route("GET", "/subscriptions/{id}/history", page(history_page), "dashboard_history"),
    Route("GET", "/requests/{id}", page(request_page), "dashboard_request"),
    Route("GET", "/requests/{id}/live", page(request_live), "dashboard_request_live"),
    Route("GET", "/requests/{id}/windows", page(request_windows), "dashboard_request_windows"),
    Route(
        "POST",
        f"/requests/{{id}}/{{action:{_ACTION_PATTERN}}}",
        page(request_action),
        "dashboard_request_action",
    ),
]
