"""The public pages in a real browser (headless Chromium), with screenshots to look at."""

import re

import pytest
from playwright.sync_api import expect

from billing.models import Plan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_pricing_link_leads_to_three_plans(page):
    assert Plan.objects.filter(is_active=True).count() == 3
    errors = []  # a CSP violation shows up as a console error
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )

    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Pricing").click()

    expect(page).to_have_url(re.compile(r"/pricing/$"))
    cards = page.locator("[data-testid=plan-card]")
    expect(cards).to_have_count(3)
    for card in cards.all():
        expect(card).to_be_visible()
    expect(cards.locator("h3")).to_have_text(["Basic", "Pro", "Premium"])
    expect(cards.first).to_contain_text("$9.00")
    expect(page.get_by_role("button", name="Choose Pro")).to_be_visible()
    page.screenshot(path="/tmp/pricing.png", full_page=True)
    # The stylesheet and htmx load under the Content-Security-Policy, with nothing refused.
    assert page.evaluate("typeof window.htmx") == "object"
    header_background = page.locator(".site-header").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert header_background == "rgb(255, 255, 255)"
    assert errors == []


def test_landing_on_a_phone(page):
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto("/")

    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator("[data-testid=plan-card]")).to_have_count(3)
    # Nothing sticks out sideways on a narrow screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/landing-mobile.png", full_page=True)
