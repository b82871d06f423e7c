"""The offline purchase as a customer sees it, in a real browser: pricing, the checkout
simulator's Pay button (its signed events reach the webhook over HTTP), and the server page
following a real worker process on its own, by htmx polling, until the server runs or fails.
Screenshots of the final pages go to test-results/."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import verified_user
from billing.models import Payment
from billing.tests.worker import Worker, worker_env
from hosting.testing import PROJECT_DIR
from servers.models import Server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESULTS = PROJECT_DIR / "test-results"
# Also handed to the browser, whose regular expressions have no (?P<name>...) groups.
SERVER_URL = re.compile(r"/servers/([0-9a-f-]{36})/$")
# htmx polls every 2 s; the worker needs a few seconds (a 1 s boot, 0.5 s polls).
SETTLE_MS = 15_000


@pytest.fixture
def offline_site(settings, live_server):
    """Both simulators, with the simulator's events posted to the live server."""
    settings.SITE_URL = live_server.url
    settings.STRIPE_SECRET_KEY = ""
    settings.DIGITALOCEAN_TOKEN = ""
    return live_server


@pytest.fixture
def start_worker(offline_site, tmp_path):
    """Starts `manage.py procrastinate worker` with extra environment; stopped afterwards
    (SIGTERM, then SIGKILL)."""
    workers: list[Worker] = []

    def start(**env: str) -> Worker:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        worker = Worker(log_path=log_path, env=worker_env(**env)).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def customer(page):
    """A customer signed in through the real login form."""
    user = verified_user()
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    return user


def screenshot(page, name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def buy_basic(page) -> str:
    """From the pricing page to the new server's page; returns the server's uuid."""
    page.goto("/pricing/")
    page.get_by_role("button", name="Choose Basic").click()
    # A confirmation step, if the site asks for one before paying.
    confirm = page.get_by_role("button", name="Continue to payment")
    pay = page.get_by_role("button", name="Pay $9.00")
    expect(confirm.or_(pay)).to_be_visible()
    if confirm.is_visible():
        confirm.click()
    expect(page).to_have_url(re.compile(r"/billing/simulator/checkout/cs_test_sim_\w+/$"))
    expect(page.get_by_test_id("amount")).to_have_text("$9.00")
    pay.click()

    expect(page).to_have_url(SERVER_URL)
    return SERVER_URL.search(page.url)[1]


def mark_page(page) -> None:
    """A property that survives only while this document stays loaded: htmx swaps keep it,
    a navigation or reload loses it."""
    page.evaluate("window.__marker = 1")


def assert_not_navigated(page, url: str) -> None:
    assert page.url == url
    assert page.evaluate("window.__marker") == 1, "the page was reloaded or navigated"


def test_offline_purchase_brings_the_server_up_on_the_open_page(page, customer, start_worker):
    worker = start_worker()
    with worker.explained():
        uuid = buy_basic(page)
        url = page.url
        mark_page(page)
        started = time.monotonic()
        # The page opens while the server is still being built (it boots in 1 s), so what
        # follows is the page updating itself.
        page.wait_for_load_state("domcontentloaded")
        assert page.locator("#server-status").get_attribute("data-status") == "provisioning"

        timeline = page.get_by_test_id("timeline")
        expect(timeline).to_contain_text("Payment confirmed")
        expect(timeline).to_contain_text("Payment of $9.00 for Basic received.")
        status = page.get_by_test_id("server-status")
        expect(status).to_have_text("Running", timeout=SETTLE_MS)
        waited = time.monotonic() - started

        assert_not_navigated(page, url)
        ip = page.get_by_test_id("server-ip")
        expect(ip).to_have_text(re.compile(r"^203\.0\.113\.\d{1,3}$"))
        expect(page.locator("#server-status")).to_contain_text(f"ssh deploy@{ip.inner_text()}")
        expect(timeline).to_contain_text("Ready")
        # Running is final: the fresh partial carries no trigger, so polling has stopped.
        expect(page.locator("#server-status")).not_to_have_attribute("hx-trigger", re.compile("."))
        path = screenshot(page, "purchase-running")
        print(f"running after {waited:.1f} s on the open page; screenshot {path}")
        worker.assert_alive()

    server = Server.objects.get(uuid=uuid)
    assert server.user == customer
    assert server.status == Server.Status.RUNNING
    assert server.ip_address == ip.inner_text()
    assert server.payment.status == Payment.Status.SUCCEEDED
    assert server.payment.amount_cents == 900


def test_a_failed_build_shows_failed_and_refunded_on_the_open_page(page, customer, start_worker):
    worker = start_worker(
        SIMULATED_PROVIDER_FAILURES="create", PROVISION_ATTEMPTS="2", PROVISION_RETRY_SECONDS="0"
    )
    with worker.explained():
        uuid = buy_basic(page)
        url = page.url
        mark_page(page)

        status = page.get_by_test_id("server-status")
        expect(status).to_have_text("Failed", timeout=SETTLE_MS)
        timeline = page.get_by_test_id("timeline")
        expect(timeline).to_contain_text("Simulated failure: create")
        assert_not_navigated(page, url)
        path = screenshot(page, "purchase-failed")
        print(f"screenshot {path}")
        worker.assert_alive()

        # The refund is a job of its own: the open page keeps polling until it lands.
        refunded = "Your payment of $9.00 was refunded."
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(refunded, timeout=SETTLE_MS)
        expect(timeline).to_contain_text("$9.00 refunded.", timeout=SETTLE_MS)
        assert_not_navigated(page, url)
        # Nothing more is coming: the polling has stopped.
        expect(page.locator("#server-status")).not_to_have_attribute("hx-trigger", re.compile("."))
        screenshot(page, "purchase-failed")

    server = Server.objects.get(uuid=uuid)
    assert server.status == Server.Status.FAILED
    assert server.ip_address is None
    assert server.payment.status == Payment.Status.REFUNDED


def test_a_renewal_a_declined_one_suspension_and_payment_as_the_customer_sees_them(
    page, customer, start_worker, settings
):
    """The recurring-billing cycle on the pages a customer uses: a renewal on /billing/,
    the simulator declining the next one, the past-due banner, the suspension after the
    grace period (no grace here), and the server running again once paid."""
    from billing.subscriptions import subscriptions_suspend_overdue

    settings.BILLING_GRACE_DAYS = 0
    worker = start_worker(SIMULATED_PROVIDER_ACTION_SECONDS="0")
    with worker.explained():
        uuid = buy_basic(page)
        expect(page.get_by_test_id("server-status")).to_have_text("Running", timeout=SETTLE_MS)

        page.goto("/billing/")
        card = page.get_by_test_id("subscription")
        expect(card).to_contain_text("Basic, $9.00/month")
        expect(card).to_contain_text("Next renewal")
        page.get_by_role("button", name="Update payment method").click()
        expect(page).to_have_url(re.compile(r"/billing/simulator/subscriptions/sub_sim_\w+/$"))
        simulator_url = page.url
        page.get_by_role("button", name="End the period now").click()
        expect(page.get_by_text("The period ended now.")).to_be_visible()

        page.goto("/billing/")
        expect(page.get_by_role("cell", name="Basic renewal")).to_be_visible()
        screenshot(page, "billing-renewed")
        # Asking to cancel changes nothing until it is confirmed.
        page.get_by_role("link", name="Cancel at period end").click()
        expect(page.get_by_role("heading", name="Cancel at the end of the period?")).to_be_visible()
        screenshot(page, "billing-cancel-confirm")
        page.get_by_role("link", name="Keep it as it is").click()
        expect(page.get_by_test_id("subscription")).to_contain_text("Next renewal")

        page.goto(simulator_url)
        page.get_by_role("button", name="Make the next renewal fail").click()
        expect(page.get_by_test_id("next-renewal")).to_have_text("will be declined")
        screenshot(page, "billing-simulator")
        page.get_by_role("button", name="End the period now").click()

        page.goto("/dashboard/")
        banner = page.get_by_role("alert").filter(has_text="did not go through")
        expect(banner).to_be_visible()
        assert subscriptions_suspend_overdue() == 1
        page.goto(f"/servers/{uuid}/")
        expect(page.get_by_test_id("server-status")).to_have_text("Suspended")
        page.goto("/billing/")
        expect(page.get_by_test_id("subscription")).to_contain_text("Your server is suspended")
        screenshot(page, "billing-suspended")

        page.get_by_role("link", name="Pay now").click()
        expect(page).to_have_url(simulator_url)
        page.get_by_role("button", name="Pay $9.00 with a new card").click()
        expect(page.get_by_text("Paid. The webhook has been told.")).to_be_visible()

        page.goto(f"/servers/{uuid}/")
        expect(page.get_by_test_id("server-status")).to_have_text("Running", timeout=SETTLE_MS)
        expect(page.get_by_role("alert").filter(has_text="did not go through")).to_have_count(0)
        page.goto("/billing/")
        screenshot(page, "billing-paid")
        worker.assert_alive()

    server = Server.objects.get(uuid=uuid)
    renewals = Payment.objects.filter(renews=server, status=Payment.Status.SUCCEEDED)
    assert renewals.count() == 2  # the first renewal and the paid declined one
    assert server.subscription.status == "active"
