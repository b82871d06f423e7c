"""Fixtures shared by every app's tests."""

import importlib
import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(autouse=True)
def _test_server_settings(settings):
    """Tests render templates without running collectstatic first, so they use the plain
    storage instead of the hashed manifest that production serves; and the test client
    and live server speak plain HTTP, so the HTTPS-only settings that DEBUG off implies
    are off unless a test turns them on."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture(autouse=True)
def _plans_present(request):
    """The plans come from a data migration, and a transactional test's flush deletes them;
    put them back so no test depends on the order the suite runs in."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("_django_db_helper")
    from django.apps import apps

    from billing.models import Plan

    if not Plan.objects.exists():
        seed = importlib.import_module("billing.migrations.0002_seed_plans")
        seed.seed_plans(apps, None)


@pytest.fixture(autouse=True)
def _empty_job_queue(request):
    """procrastinate's tables are not Django's to flush, so a transactional test (the kind
    that runs a worker) would leave its jobs to the next one, aimed at reused ids. Empty
    them before and after."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    from django.db import connection

    def empty():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE procrastinate_jobs, procrastinate_events, "
                "procrastinate_periodic_defers, procrastinate_workers CASCADE"
            )

    empty()
    yield
    empty()


@pytest.fixture
def staff(client, settings):
    """A staff member signed in on `client`, in an admin that does not ask for two-factor."""
    from accounts.tests.factories import StaffFactory

    settings.STAFF_REQUIRE_MFA = False
    member = StaffFactory()
    client.force_login(member)
    return member


@pytest.fixture
def stripe_api(settings):
    """Stripe faked at the HTTP layer (billing/tests/stripe_fakes.py); STRIPE_SECRET_KEY set."""
    from billing.tests.stripe_fakes import fake_stripe

    with fake_stripe(settings) as api:
        yield api


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright. Skipped only outside CI when it is missing;
    in CI a missing browser is a failure."""
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make around it are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
