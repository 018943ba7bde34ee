"""The owner's story in a real browser, against `logfill run` on anvil: create a
subscription, estimate, queue, watch the request complete without reloading, read the
stored events, retry a dead delivery; pause, resume and cancel another request; one
request from a form sent twice; another workspace's request is a 404.

The service gives each delivery one attempt (LOGFILL_WEBHOOK_RETRY_SCHEDULE=0), so a
receiver answering 500 makes a dead delivery at once, for the owner to retry.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    PHONE,
    TRANSFERS,
    DashboardService,
    both_widths,
    new_page,
    screenshot,
    sign_in,
)
from tests.support.processes import TRANSFER

COMPLETION_TIMEOUT_MS = 60_000


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers `status` to every delivery."""

    url: str = ""
    status: int = 500
    received: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if state.status < 300:
                state.received.append(body)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def create_subscription(page: Page, service: DashboardService, name: str, hook: str) -> str:
    """Through the pages, as an owner does; the new subscription's id."""
    page.goto(service.page_url("/dashboard/subscriptions"))
    page.get_by_role("link", name="New subscription").first.click()
    page.get_by_label("Chain").select_option(str(service.chain_id))
    page.get_by_label("Name").fill(name)
    page.get_by_label("Contract addresses").fill(service.token)
    page.get_by_label("Event signatures").fill(TRANSFER)
    page.get_by_label("Webhook URL").fill(hook)
    page.get_by_role("button", name="Create subscription").click()
    expect(page.get_by_role("heading", name="Subscription created")).to_be_visible()
    expect(page.locator(".secret")).to_contain_text("whsec_")
    found = re.search(r"/dashboard/subscriptions/([0-9a-f-]{36})", page.content())
    assert found, page.content()
    return found.group(1)


def queue_everything(page: Page, service: DashboardService, subscription_id: str) -> str:
    page.goto(service.page_url(f"/dashboard/subscriptions/{subscription_id}/backfill"))
    page.get_by_label("From block").fill("0")
    page.get_by_label("To block").fill("safe")
    page.get_by_role("button", name="Queue").click()
    expect(page.get_by_test_id("queued")).to_be_visible()
    return page.get_by_test_id("request-id").inner_text().strip()


def test_estimate_queue_and_watch_a_request_complete_without_a_reload(
    chromium: Browser, dashboard_service: DashboardService, receiver: Receiver
) -> None:
    service = dashboard_service
    page = new_page(chromium)
    sign_in(page, service)
    subscription_id = create_subscription(page, service, "Token transfers", receiver.url)
    screenshot(page, "subscription-created-desktop")

    page.get_by_role("link", name="Go to the subscription").click()
    expect(page.get_by_role("link", name="Backfill")).to_have_attribute("aria-current", "page")
    page.get_by_label("From block").fill("0")
    page.get_by_label("To block").fill("safe")
    page.get_by_role("button", name="Estimate").click()
    blocks = int(page.get_by_test_id("estimate-blocks").inner_text().replace(",", ""))
    assert blocks >= TRANSFERS
    expect(page.get_by_test_id("estimate-cu")).not_to_have_text("0")
    expect(page.get_by_test_id("estimate-start")).to_contain_text("UTC")
    screenshot(page, "backfill-estimate-desktop")

    page.get_by_role("button", name="Queue").click()
    queued = page.get_by_test_id("queued")
    expect(queued).to_contain_text("Request ID")
    expect(queued).to_contain_text("Estimated window start")
    request_id = page.get_by_test_id("request-id").inner_text().strip()
    assert request_id in queued.inner_text()

    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#request-head .badge")).to_have_text(
        "completed", timeout=COMPLETION_TIMEOUT_MS
    )
    expect(page.locator("#live .live-percent")).to_have_text("100%")
    assert page.evaluate("window.__notReloaded === true")  # the live parts were swapped in
    expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    # The windows chart follows at its own, slower pace: one bar per window so far.
    expect(page.locator("svg.chart:visible [data-testid=window-bar]").first).to_be_visible(
        timeout=15_000
    )
    screenshot(page, "request-desktop")

    page.goto(service.page_url(f"/dashboard/subscriptions/{subscription_id}/events"))
    expect(page.get_by_text("Transfer").first).to_be_visible()
    assert page.locator("tbody tr").count() == TRANSFERS
    screenshot(page, "events-desktop")

    # One attempt each, answered 500: dead deliveries, retried by the owner once fixed.
    deliveries = f"/dashboard/subscriptions/{subscription_id}/deliveries"
    page.goto(service.page_url(deliveries + "?status=dead"))
    for _ in range(40):
        if page.get_by_role("button", name=re.compile("Retry delivery")).count():
            break
        page.wait_for_timeout(250)
        page.reload()
    screenshot(page, "deliveries-desktop")
    receiver.status = 204
    page.get_by_role("button", name=re.compile("Retry delivery")).first.click()
    expect(page.get_by_role("status").first).to_contain_text("is pending again")
    for _ in range(40):
        if receiver.received:
            break
        page.wait_for_timeout(250)
    assert receiver.received and TRANSFER.split("(")[0] in receiver.received[0].decode()
    page.context.close()

    for path, name in (
        ("/dashboard/subscriptions", "subscriptions"),
        (f"/dashboard/subscriptions/{subscription_id}/backfill", "backfill"),
        (f"/dashboard/subscriptions/{subscription_id}/history", "history"),
        (f"/dashboard/subscriptions/{subscription_id}/events", "events"),
        (deliveries, "deliveries"),
        (f"/dashboard/subscriptions/{subscription_id}/settings", "settings"),
        (f"/dashboard/requests/{request_id}", "request"),
    ):
        both_widths(chromium, service, path, name)


def test_pause_resume_and_cancel_a_request_waiting_for_credits(
    chromium: Browser, dashboard_service: DashboardService, receiver: Receiver
) -> None:
    service = dashboard_service  # the stranger's workspace has 10 credits for 40 transfers
    page = new_page(chromium)
    sign_in(page, service, service.stranger_key)
    subscription_id = create_subscription(page, service, "Out of credits", receiver.url)
    queue_everything(page, service, subscription_id)
    badge = page.locator("#request-head .badge")
    expect(badge).to_have_text("paused: no credits", timeout=COMPLETION_TIMEOUT_MS)
    expect(page.locator("#live")).to_contain_text("Out of credits")

    page.get_by_role("button", name="Pause").click()
    expect(badge).to_have_text("paused")
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_enabled()
    page.get_by_role("button", name="Cancel").click()
    expect(badge).to_have_text("cancelled")
    for action in ("Pause", "Resume", "Cancel", "Retry"):
        expect(page.get_by_role("button", name=action)).to_be_disabled()
    page.context.close()


def test_a_queue_form_sent_twice_makes_one_request(
    chromium: Browser, dashboard_service: DashboardService, receiver: Receiver
) -> None:
    service = dashboard_service
    page = new_page(chromium)
    sign_in(page, service)
    subscription_id = create_subscription(page, service, "Twice", receiver.url)
    page.goto(service.page_url(f"/dashboard/subscriptions/{subscription_id}/backfill"))
    page.get_by_label("From block").fill("1")
    page.get_by_label("To block").fill("2")
    # The same form, with the same idempotency key, sent twice at once (a double click
    # that no script stopped, or a resubmitted page).
    statuses = page.evaluate(
        """async () => {
            const form = document.querySelector('form[action$="/backfill"]');
            const send = () => {
                const data = new FormData(form);
                data.set('action', 'queue');
                const body = new URLSearchParams(data);
                return fetch(form.getAttribute('action'), {method: 'POST', body});
            };
            const answers = await Promise.all([send(), send()]);
            return answers.map(a => [a.status, a.url]);
        }"""
    )
    assert [status for status, _ in statuses] == [200, 200], statuses
    assert statuses[0][1] == statuses[1][1]  # both landed on the same request's page
    page.goto(service.page_url(f"/dashboard/subscriptions/{subscription_id}/history"))
    assert page.locator("tbody tr").count() == 1
    page.context.close()


def test_another_workspaces_request_is_not_found(
    chromium: Browser, dashboard_service: DashboardService, receiver: Receiver
) -> None:
    service = dashboard_service
    owner = new_page(chromium)
    sign_in(owner, service)
    subscription_id = create_subscription(owner, service, "Private", receiver.url)
    request_id = queue_everything(owner, service, subscription_id)
    owner.context.close()

    stranger = new_page(chromium, PHONE)
    sign_in(stranger, service, service.stranger_key)
    for path in (
        f"/dashboard/requests/{request_id}",
        f"/dashboard/subscriptions/{subscription_id}/events",
    ):
        response = stranger.goto(service.page_url(path))
        assert response is not None and response.status == 404
        expect(stranger.get_by_role("heading", level=1)).to_have_text("Not found")
        assert request_id not in stranger.content()
    stranger.context.close()
