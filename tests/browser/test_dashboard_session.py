"""Signing in and out of the dashboard in a real browser, and what a session may do."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, expect

from tests.support.browser import DashboardService, both_widths, new_page, screenshot, sign_in

if TYPE_CHECKING:
    from playwright._impl._api_structures import SetCookieParam  # the type only


def test_sign_in_shows_the_workspace_and_sign_out_ends_the_session(
    chromium: Browser, dashboard_service: DashboardService
) -> None:
    page = new_page(chromium)
    page.goto(dashboard_service.page_url("/dashboard/"))
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next=(/|%2F)dashboard(/|%2F)$"))
    screenshot(page, "sign-in-desktop")
    page.get_by_label("API key").fill("lf_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")

    sign_in(page, dashboard_service)
    expect(page.get_by_role("heading", level=1)).to_have_text("cli")
    expect(page.get_by_test_id("credits")).to_have_text("1,000,000")
    cookies = page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "logfill_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(dashboard_service.page_url("/dashboard/sign-in"))
    old: SetCookieParam = {  # the old cookie, put back: the server has forgotten it
        "name": session["name"],
        "value": session["value"],
        "url": dashboard_service.page_url("/dashboard/"),
    }
    page.context.add_cookies([old])
    page.goto(dashboard_service.page_url("/dashboard/"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(
    chromium: Browser, dashboard_service: DashboardService
) -> None:
    page = new_page(chromium)
    sign_in(page, dashboard_service)
    switch = page.get_by_label("Send matches found by backfills to subscriptions' webhooks")
    expect(switch).to_be_checked()
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    switch.uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This form cannot be accepted")
    page.goto(dashboard_service.page_url("/dashboard/"))
    expect(switch).to_be_checked()  # nothing changed
    page.context.close()


def test_workspace_page_at_desktop_and_phone_width(
    chromium: Browser, dashboard_service: DashboardService
) -> None:
    shots = both_widths(chromium, dashboard_service, "/dashboard/", "workspace")
    assert all(shot.stat().st_size > 10_000 for shot in shots)
