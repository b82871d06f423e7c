"""The staff database page (/admin/database/, hosting/admin_database.py and
hosting/database/stats.py): superusers only, audited, a fixed number of queries, and a
section that cannot be read says so without failing the page."""

import datetime
import html
import re
import threading
import time

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from hosting import tenant
from hosting.database import stats
from hosting.models import BackupRun
from hosting.testing import superuser_conninfo

pytestmark = pytest.mark.django_db

URL = "/admin/database/"
HEADINGS = [
    "Database size",
    "Cache hit ratio",
    "Tables",
    "Indexes",
    "Connections",
    "Connection pool (this process)",
    "Queries running longer than 5 s",
    "Lock waits",
    "Slowest statements",
    "Last backups",
    "Row-level security",
]
# Session + user, the tenant scope set and cleared, the audit row (in its savepoint),
# then each of the ten database sections in its savepoint (pg_stat_statements absent:
# one query for that section; row-level security: its tables and the role, two).
QUERIES = 2 + tenant.SCOPE_QUERIES + 3 + 10 * 3 + 1


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def extension_installed(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [name])
        return cursor.fetchone() is not None


def test_superuser_sees_every_section_with_real_values(client, staff):
    response = client.get(URL)

    assert response.status_code == 200
    body = page_text(response)
    for heading in HEADINGS:
        assert f">{heading}</h2>" in body, heading
    # Inside the admin's look.
    assert "Hosting administration" in body
    # Size: the database's name and pg_size_pretty's text.
    assert connection.settings_dict["NAME"] in body
    assert re.search(r'class="database-size">\d+ (bytes|kB|MB|GB)</span>', body)
    # Tables and indexes from the catalog.
    assert "<td>accounts_user</td>" in body
    assert "<td>accounts_user_pkey</td>" in body
    assert re.search(r"<strong>\d+(\.\d+)?%</strong> of block reads", body)
    # This test's own connection is in pg_stat_activity.
    assert re.search(r"<td>active</td>", body)


def test_each_tenant_tables_row_level_security_is_shown(client, staff):
    body = page_text(client.get(URL))
    section = body.split('id="row-level-security"')[1]
    assert "Enforced: the app's role is bound by every policy below." in section
    rows = re.findall(r'<tr class="rls-table">(.*?)</tr>', section, re.S)
    assert len(rows) == 15
    assert all("protected" in row for row in rows)
    assert (
        "servers_deploymentlogline" in section and "deployment_id → servers_deployment" in section
    )
    assert section.count('<tr class="rls-exempt">') == 3

    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("ALTER TABLE servers_domain NO FORCE ROW LEVEL SECURITY")
    section = page_text(client.get(URL)).split('id="row-level-security"')[1]
    domain_row = re.search(
        r'<tr class="rls-table">\s*<td>servers_domain</td>(.*?)</tr>', section, re.S
    )
    assert "not forced" in domain_row.group(1)


def test_tables_are_listed_biggest_first_and_unused_indexes_flagged():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE dbpage_big (id bigint PRIMARY KEY, note text)")
        cursor.execute("CREATE INDEX dbpage_big_note ON dbpage_big (note)")
        cursor.execute(
            "INSERT INTO dbpage_big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g"
        )

    tables = stats.tables(connection)
    assert tables[0]["name"] == "dbpage_big"
    assert tables == sorted(tables, key=lambda row: row["bytes"], reverse=True)
    indexes = {row["name"]: row for row in stats.indexes(connection)}
    assert indexes["dbpage_big_note"]["unused"] is True
    assert indexes["dbpage_big_pkey"]["unused"] is False  # a primary key is never "unused"


def test_query_count_is_fixed(client, staff, django_assert_num_queries):
    with django_assert_num_queries(QUERIES):
        first = client.get(URL)
    assert first.status_code == 200

    # More of everything: users, backups, a table with indexes of its own.
    UserFactory.create_batch(5)
    now = timezone.now()
    for n in range(12):
        BackupRun.objects.create(
            started_at=now - datetime.timedelta(hours=n), file_name=f"b{n}.dump", size_bytes=n
        )
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE dbpage_extra (id int PRIMARY KEY, a int, b int)")
        cursor.execute("CREATE INDEX dbpage_extra_a ON dbpage_extra (a)")
        cursor.execute("CREATE INDEX dbpage_extra_b ON dbpage_extra (b)")

    with django_assert_num_queries(QUERIES):
        second = client.get(URL)
    body = page_text(second)
    assert "<td>dbpage_extra</td>" in body
    assert "<td>dbpage_extra_b</td>" in body
    # Only the last ten backups.
    assert body.count('<tr class="backup-run">') == 10
    assert "b9.dump" in body and "b10.dump" not in body


def test_without_pg_stat_statements_the_page_says_how_to_enable_it(client, staff):
    assert not extension_installed("pg_stat_statements")  # the test database has none

    body = page_text(client.get(URL))

    note = re.search(r'<p class="statements-disabled">(.*?)</p>', body, re.S).group(1)
    assert "shared_preload_libraries = 'pg_stat_statements'" in note
    assert "CREATE EXTENSION pg_stat_statements;" in note


@pytest.fixture
def pg_stat_statements_created():
    """The extension made (by a superuser: it is not a trusted one) in the test database,
    committed so the page sees it, and dropped afterwards."""
    with psycopg.connect(superuser_conninfo(), autocommit=True) as admin:
        available = admin.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone()
        if available is None:
            pytest.skip("PostgreSQL's contrib extensions are not installed")
        if "pg_stat_statements" in admin.execute("SHOW shared_preload_libraries").fetchone()[0]:
            pytest.skip("this server preloads pg_stat_statements")
        admin.execute("CREATE EXTENSION pg_stat_statements")
        try:
            yield
        finally:
            admin.execute("DROP EXTENSION pg_stat_statements")


def test_pg_stat_statements_created_but_not_preloaded_is_not_available(
    client, staff, pg_stat_statements_created
):
    response = client.get(URL)

    assert response.status_code == 200
    body = page_text(response)
    assert re.search(r"Not available: pg_stat_statements must be loaded", body)
    assert "statements-disabled" not in body
    assert "<td>accounts_user</td>" in body  # the rest of the page is there


def test_a_failing_section_says_not_available_and_the_rest_renders(
    client, staff, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(stats, "TABLES_SQL", "SELECT * FROM pg_stat_no_such_view")

    # The failed section's savepoint is rolled back, then released: one statement more.
    with django_assert_num_queries(QUERIES + 1):
        response = client.get(URL)

    assert response.status_code == 200
    body = page_text(response)
    tables = body.split(">Tables</h2>")[1].split("<h2")[0]
    assert 'Not available: relation "pg_stat_no_such_view" does not exist' in tables
    assert "LINE 1" not in tables  # one line
    # The sections after it ran (the failed savepoint did not poison the transaction).
    assert "<td>accounts_user_pkey</td>" in body
    assert "statements-disabled" in body


def test_pool_statistics_and_pool_off(client, staff, monkeypatch):
    if connection.settings_dict["OPTIONS"].get("pool"):
        body = page_text(client.get(URL))
        assert "<td>pool_max</td>" in body
        assert stats.pool_stats(connection)["pool_max"] == connection.pool.max_size

    monkeypatch.delitem(connection.settings_dict["OPTIONS"], "pool", raising=False)
    assert stats.pool_stats(connection) is None
    body = page_text(client.get(URL))
    assert "The connection pool is off" in body
    assert "<td>pool_max</td>" not in body


def test_lock_waits_and_long_queries_show_other_backends(client, staff):
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key in {"dbname", "user", "password", "host", "port", "sslmode", "connect_timeout"}
    }
    key = 947_311
    holder = psycopg.connect(**params, autocommit=True, application_name="dbpage-holder")
    waiter = psycopg.connect(**params, autocommit=True, application_name="dbpage-waiter")
    thread = threading.Thread(target=waiter.execute, args=("SELECT pg_advisory_lock(%s)", [key]))
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [key])
        thread.start()
        deadline = time.monotonic() + 10
        while not any(
            row["pid"] == waiter.info.backend_pid for row in stats.lock_waits(connection)
        ):
            assert time.monotonic() < deadline, "the waiter never waited"
            time.sleep(0.05)
        time.sleep(0.3)

        body = page_text(client.get(URL))
        locks = body.split(">Lock waits</h2>")[1].split("<h2")[0]
        assert f'<td class="lock-waiter">{waiter.info.backend_pid}</td>' in locks
        assert f'<td class="lock-blockers">{holder.info.backend_pid}</td>' in locks
        assert "advisory (ExclusiveLock)" in locks
        connections = body.split(">Connections</h2>")[1].split("<h2")[0]
        assert "<td>dbpage-waiter</td>" in connections

        long_ones = stats.long_running_queries(connection, min_seconds=0.2)
        assert [row["pid"] for row in long_ones] == [waiter.info.backend_pid]
        assert "pg_advisory_lock" in long_ones[0]["query"]
        # Not yet 5 s: the page's threshold leaves it out.
        assert stats.long_running_queries(connection) == []
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        thread.join(timeout=10)
        holder.close()
        waiter.close()


def test_staff_who_are_not_superusers_get_403(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    member = StaffFactory(is_superuser=False)
    client.force_login(member)

    response = client.get(URL)

    assert response.status_code == 403
    assert "accounts_user" not in page_text(response)
    assert not AuditEvent.objects.filter(metadata__action="database_page").exists()


def test_customers_and_anonymous_are_sent_to_the_admin_login(client):
    anonymous = client.get(URL)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    assert "next=/admin/database/" in anonymous["Location"]

    client.force_login(UserFactory())
    customer = client.get(URL)
    assert customer.status_code == 302
    assert customer["Location"].startswith("/admin/login/")
    assert not AuditEvent.objects.filter(metadata__action="database_page").exists()


def test_superuser_without_two_factor_is_sent_to_set_it_up(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    client.force_login(StaffFactory())

    response = client.get(URL)

    assert response.status_code == 302
    assert "accounts_user" not in page_text(response)
    assert not AuditEvent.objects.filter(metadata__action="database_page").exists()


def test_each_visit_writes_one_audit_row(client, staff):
    client.get(URL)
    client.get(URL)

    events = AuditEvent.objects.filter(action=AuditAction.STAFF_ACTION)
    assert events.count() == 2
    for event in events:
        assert event.actor == staff
        assert event.metadata == {"action": "database_page"}
        assert event.ip_address == "127.0.0.1"


def test_backup_runs_show_size_and_verification(client, staff):
    now = timezone.now()
    BackupRun.objects.create(
        started_at=now - datetime.timedelta(days=1),
        finished_at=now - datetime.timedelta(days=1) + datetime.timedelta(minutes=2),
        file_name="hosting-ok.dump",
        size_bytes=123_456_789,
        duration=datetime.timedelta(seconds=74, microseconds=444_974),
        verified=True,
    )
    BackupRun.objects.create(
        started_at=now,
        finished_at=now,
        file_name="hosting-bad.dump",
        size_bytes=2048,
        verified=False,
        error="restore check failed: <table> missing",
    )
    BackupRun.objects.create(started_at=now - datetime.timedelta(days=2), file_name="")

    response = client.get(URL)
    raw = response.content.decode()
    rows = re.findall(r'<tr class="backup-run">(.*?)</tr>', raw, re.S)

    assert len(rows) == 3
    newest, older, oldest = (html.unescape(row) for row in rows)
    assert "hosting-bad.dump" in newest
    assert "2.0\xa0KB" in newest
    assert '<td class="backup-verified">failed</td>' in newest
    assert "restore check failed: <table> missing" in newest
    assert "&lt;table&gt;" in rows[0]  # escaped in the page
    assert "hosting-ok.dump" in older
    assert "117.7\xa0MB" in older
    assert "<td>74.4 s</td>" in older  # seconds, not "0:01:14.444974"
    assert '<td class="backup-verified">passed</td>' in older
    assert '<td class="backup-verified">not checked</td>' in oldest
