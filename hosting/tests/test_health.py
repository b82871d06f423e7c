import pytest
from django.db import connections
from django.test import Client


def test_healthz_does_not_touch_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_readyz_ok_when_database_reachable_and_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_503_when_database_unreachable(settings, tmp_path):
    # Point the connection at a socket directory where no server listens.
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = str(tmp_path)
    connection.settings_dict["OPTIONS"] = {}
    try:
        response = Client().get("/readyz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "database unreachable" in response.json()["reason"]


@pytest.mark.django_db
def test_readyz_503_when_a_migration_is_unapplied(client, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    original = MigrationExecutor.migration_plan

    def plan_with_pending(self, targets, clean_start=False):
        real = original(self, targets, clean_start)
        return real or [("pending", False)]

    monkeypatch.setattr(MigrationExecutor, "migration_plan", plan_with_pending)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "1 migration(s) not applied"


@pytest.mark.django_db
def test_probes_answer_over_plain_http_when_https_is_enforced(settings):
    """The load balancer and Kubernetes probe over HTTP; with SECURE_SSL_REDIRECT on, a
    301 to https would read as a failed probe."""
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get("/pricing/").status_code == 301  # the redirect is on
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
