"""A deployment as the customer sees it in a real browser: the form, then the deployment's
page filling its log line by line by itself (htmx polling) while the worker runs the real
deploy script, until it reads Succeeded and stops polling. Screenshot in test-results/."""

import re
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import verified_user
from hosting.testing import PROJECT_DIR, run_jobs
from servers.models import Deployment
from servers.tests.factories import ServerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEPLOYMENT_URL = re.compile(r"/servers/[0-9a-f-]{36}/deployments/[0-9a-f-]{36}/$")


def test_deploy_from_the_form_and_watch_the_log_arrive(page, repo):
    user = verified_user()
    server = ServerFactory(user=user)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    page.get_by_role("link", name="Deploy from git").click()
    page.get_by_label("Git repository URL").fill(repo.url)
    page.get_by_label("Branch").fill("main")
    page.get_by_label("Directory (optional)").fill("web")
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(DEPLOYMENT_URL)
    expect(page.get_by_test_id("deployment-status")).to_have_text("Queued")
    page.evaluate("window.__marker = 1")  # lost if the page reloads or navigates

    deployment = Deployment.objects.get(server=server)

    def work():
        try:
            run_jobs(until=lambda: Deployment.objects.get(pk=deployment.pk).is_finished)
        finally:
            connection.close()  # this thread's own, opened by `until`

    worker = threading.Thread(target=work)
    worker.start()
    try:
        lines = page.locator("#log-lines li")
        expect(lines.first).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("deployment-status")).to_have_text("Succeeded", timeout=20_000)
    finally:
        worker.join()

    deployment.refresh_from_db()
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of polling"
    # Every stored line is on the page, once, in order.
    assert lines.all_inner_texts() == list(
        deployment.lines.order_by("number").values_list("text", flat=True)
    )
    expect(page.locator("#log")).to_contain_text("Build skipped: this server is simulated")
    expect(page.get_by_test_id("deployment-commit")).to_have_text(repo.head)
    expect(page.locator("#log-poller")).to_have_count(0)  # ended: no more polling
    results = PROJECT_DIR / "test-results"
    results.mkdir(exist_ok=True)
    page.screenshot(path=str(results / "deployment-succeeded.png"), full_page=True)
