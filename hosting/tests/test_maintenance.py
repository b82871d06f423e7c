"""PostgreSQL unreachable: every page answers the maintenance page (503, no traceback)
within DB_CONNECT_TIMEOUT, /healthz stays 200, /readyz and the webhook answer 503, and
the first request after the database is back is served normally."""

import contextlib
import time

import pytest
from django.db import OperationalError, connections
from django.test import Client

PAGES = ["/", "/pricing/", "/dashboard/", "/accounts/login/", "/billing/", "/admin/"]


@contextlib.contextmanager
def database_unreachable(socket_dir):
    """The connection pointed at a socket directory where no server listens (and no pool
    holding connections made before), then back."""
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = str(socket_dir)
    connection.settings_dict["OPTIONS"] = {"connect_timeout": 3}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.fixture
def database_down(tmp_path):
    with database_unreachable(tmp_path):
        yield


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_every_page_answers_the_maintenance_page_while_the_database_is_down(database_down):
    client = Client(raise_request_exception=False)
    for path in PAGES:
        response, seconds = timed(lambda path=path: client.get(path))
        body = response.content.decode()
        assert response.status_code == 503, path
        assert "Back in a moment" in body
        assert "Traceback" not in body and "OperationalError" not in body
        assert response["Retry-After"] == "30"
        assert seconds < 3 + 1, (path, seconds)

    webhook = client.post("/billing/webhooks/stripe/", data=b"{}", content_type="application/json")
    assert webhook.status_code == 503  # Stripe delivers it again later
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "database unreachable" in ready.json()["reason"]


@pytest.mark.django_db(transaction=True)
def test_pages_are_served_again_once_the_database_is_back(tmp_path, client):
    with database_unreachable(tmp_path):
        assert Client().get("/pricing/").status_code == 503
    response = Client().get("/pricing/")
    assert response.status_code == 200 and b"Back in a moment" not in response.content


@pytest.mark.django_db
def test_a_database_lost_mid_request_is_the_maintenance_page_too(client, monkeypatch):
    from hosting import views

    def plans_lost():
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views, "active_plans", plans_lost)
    response = Client(raise_request_exception=False).get("/pricing/")
    assert response.status_code == 503
    assert b"Back in a moment" in response.content


def test_the_maintenance_page_needs_no_database():
    # No django_db mark: any query while rendering it would raise.
    from hosting.maintenance import maintenance_response

    response = maintenance_response()
    assert response.status_code == 503 and b"Back in a moment" in response.content
