"""Row-level security leaves the customer pages' query plans on the (user_id, ...)
indexes. (What it costs in throughput is measured under load, with gunicorn, by
`python -m bench.tenant_isolation`: a throughput threshold on a shared CI machine would
be noise.)"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import UserFactory
from hosting import tenant
from servers.models import DeploymentLogLine, ServerEvent
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory

pytestmark = pytest.mark.django_db

CUSTOMERS = 40
DEPLOYMENTS = 20


@pytest.fixture
def customers():
    """CUSTOMERS customers, each with a server, DEPLOYMENTS deployments with a short log,
    three domains and a timeline: the measured one is in the middle of the tables."""
    servers = []
    for n in range(CUSTOMERS):
        server = ServerFactory(user=UserFactory(email=f"perf{n}@example.com"))
        deployments = DeploymentFactory.create_batch(DEPLOYMENTS, server=server)
        DeploymentLogLine.objects.bulk_create(
            DeploymentLogLine(deployment=deployment, number=line, text=f"step {line}")
            for deployment in deployments
            for line in range(1, 11)
        )
        DomainFactory.create_batch(3, server=server)
        ServerEvent.objects.bulk_create(
            ServerEvent(server=server, kind="ready", message=f"event {i}") for i in range(10)
        )
        servers.append(server)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return servers


def _plans(queries) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # would an index serve it?
        for query in queries:
            sql = query["sql"]
            reads = sql.lstrip().upper().startswith(("SELECT", "WITH"))  # WITH: one-query pages
            if not reads or "set_config" in sql:
                continue
            cursor.execute("EXPLAIN " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.mark.parametrize("page", ["dashboard", "server page", "deployments"])
def test_customer_queries_still_use_the_owner_indexes(customers, page):
    """Each query of the page, planned in the customer's scope with sequential scans
    discouraged, reads the tenant tables through an index: the policy's owner
    comparison (a bigint against the stable setting) is indexable."""
    server = customers[CUSTOMERS // 2]
    url = {
        "dashboard": "/dashboard/",
        "server page": f"/servers/{server.uuid}/",
        "deployments": f"/servers/{server.uuid}/deployments/",
    }[page]
    client = Client()
    client.force_login(server.user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    tenant.scope_apply(tenant.Scope(tenant.CUSTOMER, server.user.pk))
    try:
        plans = _plans(queries.captured_queries)
    finally:
        tenant.scope_apply(None)
    assert plans
    for plan in plans:
        for table in ("servers_server", "servers_deployment", "servers_domain"):
            assert f"Seq Scan on {table}" not in plan, plan
    if page == "dashboard":
        servers_plan = next(p for p in plans if "servers_server" in p)
        assert "servers_server_user_id" in servers_plan or "server_user" in servers_plan, (
            servers_plan
        )
