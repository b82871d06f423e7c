"""Row-level security as a backstop behind every customer query (hosting/tenant.py): the
database itself refuses another customer's rows, whatever a view or selector forgets."""

import json
import re
import uuid
from importlib import import_module

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.shortcuts import get_object_or_404
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditAction
from accounts.services import audit_event_record
from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import StripeEvent, Subscription
from billing.tests.factories import PaymentFactory, plan
from hosting import tenant
from hosting.database.rls import EXEMPT, table_states, tenant_tables
from servers.models import DeploymentLogLine, ServerAction, ServerEvent
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory
from support.tests.factories import TicketMessageFactory

pytestmark = pytest.mark.django_db

PROTECTED = [table for table in tenant_tables() if table not in EXEMPT]


def _customer_with_everything(email: str):
    """A customer with a row in every tenant table."""
    user = UserFactory(email=email)
    payment = PaymentFactory(user=user)
    server = ServerFactory(user=user, payment=payment, name=f"{email.split('@')[0]}-web")
    ServerEvent.objects.create(server=server, kind="ready", message="made")
    ServerAction.objects.create(server=server, kind="reboot", requested_by=user)
    deployment = DeploymentFactory(server=server)
    DeploymentLogLine.objects.create(deployment=deployment, number=1, text=f"secret of {email}")
    DomainFactory(server=server)
    StripeEvent.objects.create(
        event_id=f"evt_{uuid.uuid4().hex}", type="x", payload={}, payment=payment
    )
    Subscription.objects.create(
        user=user, server=server, plan=plan(), stripe_subscription_id=f"sub_{uuid.uuid4().hex}"
    )
    message = TicketMessageFactory(ticket__user=user, ticket__server=server)
    audit_event_record(action=AuditAction.LOGIN, actor=user)
    LogEntry.objects.create(user=user, action_flag=ADDITION, object_repr="x")
    user.groups.add(Group.objects.get_or_create(name="customers")[0])
    user.user_permissions.add(Permission.objects.first())
    return {
        "user": user,
        "server": server,
        "deployment": deployment,
        "payment": payment,
        "ticket": message.ticket,
    }


@pytest.fixture
def alice():
    return _customer_with_everything("alice@example.com")


@pytest.fixture
def bob():
    return _customer_with_everything("bob@example.com")


def _counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in PROTECTED:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (names from the catalog)
            counts[table] = cursor.fetchone()[0]
    return counts


def _owned_counts(user_id: int) -> dict[str, int]:
    """Each tenant table's rows owned by `user_id`, counted without a scope."""
    owner_sql = {
        "accounts_auditevent": "actor_id = %s",
        "servers_serverevent": "server_id IN (SELECT id FROM servers_server WHERE user_id = %s)",
        "servers_serveraction": "server_id IN (SELECT id FROM servers_server WHERE user_id = %s)",
        "servers_deploymentlogline": (
            "deployment_id IN (SELECT id FROM servers_deployment WHERE user_id = %s)"
        ),
        "support_ticketmessage": "ticket_id IN (SELECT id FROM support_ticket WHERE user_id = %s)",
        "billing_stripeevent": "payment_id IN (SELECT id FROM billing_payment WHERE user_id = %s)",
    }
    with connection.cursor() as cursor:
        counts = {}
        for table in PROTECTED:
            where = owner_sql.get(table, "user_id = %s")
            cursor.execute(f"SELECT count(*) FROM {table} WHERE {where}", [user_id])  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    return counts


def test_every_tenant_table_is_covered_here():
    """A new tenant table gets a row in the fixture above, or this test is out of date."""
    assert set(PROTECTED) == {
        "accounts_auditevent", "accounts_user_groups", "accounts_user_user_permissions",
        "billing_payment", "billing_stripeevent", "billing_subscription", "django_admin_log",
        "servers_deployment", "servers_deploymentlogline", "servers_domain", "servers_server",
        "servers_serveraction", "servers_serverevent", "support_ticket", "support_ticketmessage",
    }  # fmt: skip


def test_customer_scope_without_a_user_sees_no_tenant_row(alice, bob):
    unscoped = _counts()
    assert all(unscoped.values()), unscoped  # every table has rows to hide
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER))
    try:
        assert _counts() == dict.fromkeys(PROTECTED, 0)
    finally:
        tenant.scope_apply(None)


def test_customer_scope_sees_only_its_own_rows(alice, bob):
    alice_id, bob_id = alice["user"].pk, bob["user"].pk
    expected = _owned_counts(alice_id)
    assert all(expected.values()) and all(_owned_counts(bob_id).values())
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER, alice_id))
    try:
        assert _counts() == expected
        assert _owned_counts(bob_id) == dict.fromkeys(PROTECTED, 0)
    finally:
        tenant.scope_apply(None)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE servers_server SET name = 'taken' WHERE user_id = %(bob)s",
        "UPDATE billing_payment SET amount_cents = 1 WHERE user_id = %(bob)s",
        "UPDATE support_ticket SET subject = 'taken' WHERE user_id = %(bob)s",
        "DELETE FROM servers_deploymentlogline WHERE deployment_id = %(bob_deployment)s",
    ],
)
def test_customer_scope_cannot_change_another_customers_rows(alice, bob, statement):
    """An UPDATE or DELETE aimed at bob's rows matches none of them."""
    params = {"bob": bob["user"].pk, "bob_deployment": bob["deployment"].pk}
    before = _counts(), _owned_counts(bob["user"].pk)
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER, alice["user"].pk))
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            assert cursor.rowcount == 0
    finally:
        tenant.scope_apply(None)
    assert (_counts(), _owned_counts(bob["user"].pk)) == before
    bob["server"].refresh_from_db()
    assert bob["server"].name != "taken"


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        (
            "INSERT INTO servers_serverevent (server_id, kind, message, created_at) "
            "VALUES (%(bob_server)s, 'ready', 'forged', now())",
            "servers_serverevent",
        ),
        (
            "INSERT INTO support_ticketmessage (ticket_id, author_id, body, internal, "
            "created_at, email_message_id) "
            "VALUES (%(bob_ticket)s, %(alice)s, 'forged', false, now(), '')",
            "support_ticketmessage",
        ),
        (
            "UPDATE servers_server SET user_id = %(bob)s WHERE user_id = %(alice)s",
            "servers_server",
        ),
    ],
)
def test_customer_scope_cannot_write_rows_for_another_customer(alice, bob, statement, table):
    """A row written into bob's server or ticket, or handed to bob, is refused outright."""
    params = {
        "alice": alice["user"].pk,
        "bob": bob["user"].pk,
        "bob_server": bob["server"].pk,
        "bob_ticket": bob["ticket"].pk,
    }
    before = _counts()
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER, alice["user"].pk))
    try:
        with pytest.raises(DatabaseError, match=f'row-level security policy for table "{table}"'):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, params)
    finally:
        tenant.scope_apply(None)
    assert _counts() == before


def test_without_a_scope_a_job_sees_everything(alice, bob):
    counts = _counts()
    for table in PROTECTED:
        assert counts[table] == (
            _owned_counts(alice["user"].pk)[table] + _owned_counts(bob["user"].pk)[table]
        )


def test_staff_scope_sees_everything(alice, bob):
    unscoped = _counts()
    tenant.scope_apply(tenant.Scope(tenant.STAFF, StaffFactory().pk))
    try:
        assert _counts() == unscoped
    finally:
        tenant.scope_apply(None)


def test_system_scope_inside_a_request_sees_everything_then_gives_the_scope_back(alice, bob):
    unscoped = _counts()
    customer = tenant.Scope(tenant.CUSTOMER, alice["user"].pk)
    tenant.scope_apply(customer)
    try:
        with tenant.system_scope():
            assert _counts() == unscoped
        assert tenant.current_scope() == customer
        assert _counts() == _owned_counts(alice["user"].pk)
    finally:
        tenant.scope_apply(None)


# -- the backstop: a selector that forgets its owner filter ---------------------------------


def _forgetful(klass, *args, **kwargs):
    """get_object_or_404 that drops the owner filter, as a careless selector would."""
    for owner in ("user", "server__user"):
        kwargs.pop(owner, None)
    return get_object_or_404(klass, *args, **kwargs)


# The owner filter of a page's one query, as written in its SQL.
_OWNER_FILTER = re.compile(r" AND (\w+\.)?user_id = %\(user\)s")
ONE_QUERY_PAGES = {
    "server page": ("servers.selectors", "SERVER_PAGE_SQL"),
    "deployments page": ("servers.selectors", "DEPLOYMENTS_PAGE_SQL"),
    "deployment log": ("servers.selectors", "DEPLOYMENT_LOG_SQL"),
    "ticket": ("support.selectors", "TICKET_PAGE_SQL"),
}


@pytest.fixture
def forgetful_selectors(monkeypatch):
    """The selectors without their owner filters: get_object_or_404's dropped, and the
    one-query pages' SQL without its `AND user_id = %(user)s`."""
    for module in ("servers.selectors", "billing.selectors", "support.selectors"):
        monkeypatch.setattr(import_module(module), "get_object_or_404", _forgetful)
    for module, name in ONE_QUERY_PAGES.values():
        sql = getattr(import_module(module), name)
        forgetful, found = _OWNER_FILTER.subn("", sql)
        assert found == 1, name
        monkeypatch.setattr(import_module(module), name, forgetful)


FORGETFUL_PAGES = [*ONE_QUERY_PAGES, "domains page", "deployment page", "receipt"]


def _alice_urls(alice) -> dict[str, str]:
    server, deployment = alice["server"], alice["deployment"]
    return {
        "server page": f"/servers/{server.uuid}/",
        "deployments page": f"/servers/{server.uuid}/deployments/",
        "deployment log": f"/servers/{server.uuid}/deployments/{deployment.uuid}/log/?after=0",
        "ticket": f"/support/tickets/{alice['ticket'].uuid}/",
        "domains page": f"/servers/{server.uuid}/domains/",
        "deployment page": f"/servers/{server.uuid}/deployments/{deployment.uuid}/",
        "receipt": f"/billing/payments/{alice['payment'].uuid}/",
    }


@pytest.mark.parametrize("page", FORGETFUL_PAGES)
def test_a_forgotten_owner_filter_shows_bob_nothing_of_alices(
    client, alice, bob, forgetful_selectors, page
):
    client.force_login(bob["user"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(_alice_urls(alice)[page])
    assert response.status_code == 404
    # The selector asked for alice's row by its uuid alone: the database said no.
    assert not any('"user_id" =' in q["sql"] and "uuid" in q["sql"] for q in queries)
    assert b"alice" not in response.content


@pytest.mark.parametrize("page", FORGETFUL_PAGES)
def test_without_row_level_security_the_forgotten_filter_would_leak(
    client, settings, alice, bob, forgetful_selectors, page
):
    """The same forgetful selectors with isolation off: what the test above guards against."""
    settings.TENANT_ISOLATION = False
    client.force_login(bob["user"])
    response = client.get(_alice_urls(alice)[page])
    assert response.status_code == 200


def test_alice_still_sees_her_own_pages_through_the_forgetful_selectors(
    client, alice, bob, forgetful_selectors
):
    client.force_login(alice["user"])
    for url in _alice_urls(alice).values():
        assert client.get(url).status_code == 200, url


# -- where the middleware sets which scope ------------------------------------------------


def _scope_seen(client, url) -> str:
    """The scope a request ran with, read by the database from inside the view."""
    seen = {}

    def spy(sender, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('app.scope', true), current_setting('app.user_id', true)"
            )
            seen["scope"] = cursor.fetchone()

    from django.test.signals import template_rendered

    template_rendered.connect(spy)
    try:
        client.get(url)
    finally:
        template_rendered.disconnect(spy)
    return seen.get("scope")


def test_each_kind_of_visitor_gets_its_scope(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    customer, staff = UserFactory(), StaffFactory()
    assert _scope_seen(client, "/pricing/") == ("customer", "")
    client.force_login(customer)
    assert _scope_seen(client, "/dashboard/") == ("customer", str(customer.pk))
    client.force_login(staff)
    assert _scope_seen(client, "/dashboard/") == ("customer", str(staff.pk))
    assert _scope_seen(client, "/admin/") == ("staff", str(staff.pk))
    # and nothing stays behind on the connection once a request is over
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope', true)")
        assert cursor.fetchone()[0] in ("", None)
    assert tenant.current_scope() is None


def test_staff_see_every_customers_server_in_the_admin(client, settings, alice, bob):
    settings.STAFF_REQUIRE_MFA = False
    client.force_login(StaffFactory())
    response = client.get("/admin/servers/server/")
    assert response.status_code == 200
    assert b"alice-web" in response.content and b"bob-web" in response.content
    # outside the admin a staff member is a customer like any other
    response = client.get("/dashboard/")
    assert b"alice-web" not in response.content and b"bob-web" not in response.content


# -- check_rls ------------------------------------------------------------------------------


def test_check_rls_passes_on_the_migrated_database(capsys):
    call_command("check_rls")
    out = capsys.readouterr().out
    assert f"OK: {len(PROTECTED)} tenant tables behind row-level security" in out
    assert "servers_deploymentlogline" in out and "deployment_id → servers_deployment" in out


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("ALTER TABLE servers_domain NO FORCE ROW LEVEL SECURITY", "servers_domain: not forced"),
        ("ALTER TABLE support_ticket DISABLE ROW LEVEL SECURITY", "support_ticket: not enabled"),
        (
            "DROP POLICY tenant_isolation ON billing_payment",
            "billing_payment: no tenant_isolation policy",
        ),
        (
            "DROP POLICY tenant_isolation ON servers_server; CREATE POLICY tenant_isolation "
            "ON servers_server USING (true)",
            "servers_server: tenant_isolation is not the tenant policy",
        ),
    ],
)
def test_check_rls_fails_on_a_table_left_unprotected(change, problem):
    with connection.cursor() as cursor:
        cursor.execute(change)  # undone with the test's transaction
    with pytest.raises(CommandError) as failure:
        call_command("check_rls")
    assert problem in str(failure.value)


def test_check_rls_fails_on_a_new_tenant_table_without_a_policy(monkeypatch):
    """A table with a user's rows that no migration protects: what `make lint` stops."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE notes_note (id serial, user_id bigint REFERENCES accounts_user)"
        )
    from hosting.database import rls

    real = rls.tenant_tables
    monkeypatch.setattr(rls, "tenant_tables", lambda: {**real(), "notes_note": "user_id"})
    with pytest.raises(CommandError, match="notes_note: not enabled, not forced, no tenant"):
        call_command("check_rls")


def test_table_states_cost_one_query():
    with CaptureQueriesContext(connection) as queries:
        states = table_states(connection)
    assert len(queries) == 1
    assert {state.table for state in states} == set(PROTECTED)
    assert all(not state.problem for state in states)


# -- the pool: one connection, many customers ----------------------------------------------


@pytest.fixture
def pool_of_one():
    """The default connection's pool cut to one connection, so every request below gets the
    same server connection. The database's own time zone is made Tokyo's, so a connection
    that kept RESET ALL's default instead of Django's UTC would show it."""
    options = connection.settings_dict["OPTIONS"]
    original = options["pool"]
    database = connection.settings_dict["NAME"]
    connection.close()
    connection.close_pool()
    options["pool"] = {**original, "min_size": 1, "max_size": 1}
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Tokyo'")
    connection.close()
    connection.close_pool()  # the next connection starts with Tokyo as its default
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{database}" RESET timezone')
        connection.close()
        connection.close_pool()
        options["pool"] = original


def _request(client, url):
    response = client.get(url)
    # What Django does as a request ends (request_finished, which the test client
    # leaves out): the connection goes back to the pool.
    connection.close()
    return response


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("hosting.tests.urls_tenant")
def test_one_pooled_connection_never_carries_a_customer_into_the_next_request(
    alice, bob, pool_of_one
):
    as_alice, as_bob, anonymous = Client(), Client(), Client(raise_request_exception=False)
    as_alice.force_login(alice["user"])
    as_bob.force_login(bob["user"])
    connection.close()

    first = _request(as_alice, "/seen/").json()
    second = _request(as_bob, "/seen/").json()
    third = _request(anonymous, "/seen/").json()

    assert first["pid"] == second["pid"] == third["pid"]  # one server connection for all
    assert first["servers"] == ["alice-web"] and first["user_id"] == str(alice["user"].pk)
    assert second["servers"] == ["bob-web"] and second["user_id"] == str(bob["user"].pk)
    assert third["servers"] == [] and third["scope"] == "customer" and third["user_id"] == ""
    assert {first["zone"], second["zone"], third["zone"]} == {"UTC"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("hosting.tests.urls_tenant")
def test_a_request_that_fails_half_way_leaves_no_scope_behind(alice, pool_of_one):
    client = Client(raise_request_exception=False)
    client.force_login(alice["user"])
    connection.close()

    assert client.get("/fails/").status_code == 500
    # The connection the request used (the only one), with nothing of the request left.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope', true), count(*) FROM servers_server")
        assert cursor.fetchone() == ("", 1)
    assert tenant.current_scope() is None


@pytest.mark.django_db(transaction=True)
def test_the_pool_clears_a_connection_it_takes_back(alice, bob, pool_of_one):
    """Even a scope nobody cleared (a request cut short before the middleware's `finally`)
    is gone once the connection is back in the pool: its reset runs RESET ALL."""
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER, alice["user"].pk))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), count(*) FROM servers_server")
        pid, visible = cursor.fetchone()
    assert visible == 1
    connection.tenant_scope = None  # as if the request's thread died here
    connection.close()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_setting('app.scope', true), "
            "current_setting('TimeZone'), count(*) FROM servers_server"
        )
        assert cursor.fetchone() == (pid, "", "UTC", 2)


@pytest.mark.urls("hosting.tests.urls_tenant")
def test_the_scope_follows_a_login_and_a_logout_mid_request(client, alice, bob):
    """allauth signs a customer in (or out) half-way through a request: what that request
    reads afterwards is the new user's (or nobody's)."""
    signed_in = client.get("/login-then-seen/", {"email": "alice@example.com"}).json()
    assert signed_in["servers"] == ["alice-web"]
    assert signed_in["user_id"] == str(alice["user"].pk)
    signed_out = client.get("/logout-then-seen/").json()
    assert signed_out["servers"] == [] and signed_out["user_id"] == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("hosting.tests.urls_tenant")
def test_served_as_a_real_server_does_the_pool_alone_clears_the_connection(alice, pool_of_one):
    """Through Django's own WSGI handler, as gunicorn calls it: the request finishes, Django
    hands the connection back (CONN_MAX_AGE=0) and the pool's reset clears it, so the
    scope costs the request one round trip, not two."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.client import RequestFactory

    client = Client()
    client.force_login(alice["user"])
    cookie = client.cookies["sessionid"].value
    connection.close()
    environ = RequestFactory().get("/seen/", HTTP_COOKIE=f"sessionid={cookie}").environ
    with CaptureQueriesContext(connection) as queries:
        response = WSGIHandler()(environ, lambda status, headers: None)
        seen = json.loads(b"".join(response))
        response.close()  # what the server does last: request_finished
    scope_queries = [q["sql"] for q in queries if "set_config" in q["sql"]]
    assert len(scope_queries) == 1 and "'customer'" in scope_queries[0]
    assert seen["servers"] == ["alice-web"]
    assert connection.connection is None  # handed back to the pool

    with connection.cursor() as cursor:  # the same server connection, taken again
        cursor.execute("SELECT pg_backend_pid(), current_setting('app.scope', true)")
        assert cursor.fetchone() == (seen["pid"], "")
