"""`manage.py db_roles` (hosting/database/roles.py): the owner role that runs migrate and
the app role that serves pages, against one migrated database beside the test database.

Everything runs in other processes and over connections of our own, as an operator
would: the command, migrate, a test Client and a worker with DATABASE_URL set to the
printed URLs. The local cluster trusts Unix-socket logins, so a password is checked
against the verifier the server stored (pg_authid), not by logging in with it.
"""

import hashlib
import json
import uuid

import environ
import psycopg
import pytest
from psycopg import errors, sql

from hosting.database import pg
from hosting.database.roles import database_url as role_database_url
from hosting.database.roles import password_matches
from hosting.testing import PAGES_PROBE, database_url, run_python, subprocess_env

RUN = uuid.uuid4().hex[:8]
OWNER = f"test_roles_owner_{RUN}"
APP = f"test_roles_app_{RUN}"
OWNER_HEADING = "DATABASE_URL for migrate (owner):"
APP_HEADING = "DATABASE_URL for web and worker (app):"

# The worker's side: defer a job and run the worker until the queue is empty.
RUN_A_JOB = """
import json
import django
django.setup()
from procrastinate.contrib.django.models import ProcrastinateJob
from hosting.testing import run_jobs
from servers.tasks import deployments_recover

job_id = deployments_recover.defer(timestamp=0)
run_jobs()
print(json.dumps({"status": ProcrastinateJob.objects.get(id=job_id).status}))
"""

# Write and read the tables that migrate has just made again.
USE_SUPPORT_TABLES = """
import json
import django
django.setup()
from django.db import connection
from accounts.models import User
from support.models import Ticket, TicketMessage

user = User.objects.create_user(email="after-migrate@example.com", password="a-Long-passw0rd!")
ticket = Ticket.objects.create(user=user, subject="Disk full", description="Help")
TicketMessage.objects.create(ticket=ticket, author=user, body="Still full")
ticket.subject = "Disk full again"
ticket.save()
with connection.cursor() as cursor:
    cursor.execute("SELECT current_user, currval(pg_get_serial_sequence('support_ticket', 'id'))")
    role, current = cursor.fetchone()
print(json.dumps({
    "role": role,
    "subject": Ticket.objects.get(pk=ticket.pk).subject,
    "messages": TicketMessage.objects.filter(ticket=ticket).count(),
    "currval": current,
    "id": ticket.pk,
}))
"""


def connect(url: str) -> psycopg.Connection:
    """A psycopg connection to a DATABASE_URL (django-environ's form, socket paths too)."""
    params = pg.database_wrapper(environ.Env.db_url_config(url)).get_connection_params()
    libpq = {key: value for key, value in params.items() if key in pg.LIBPQ_ENV_VARS}
    return psycopg.connect(autocommit=True, **libpq)


def fetch(url: str, query: str, params=None) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute(query, params).fetchall()


def python(url: str, *args: str):
    return run_python(
        *args, env=subprocess_env(DATABASE_URL=url, ALLOWED_HOSTS="testserver", DEBUG="true")
    )


def db_roles(url: str, *args: str):
    return python(url, "manage.py", "db_roles", "--owner", OWNER, "--app", APP, *args)


def printed_urls(stdout: str) -> tuple[str, str]:
    lines = stdout.splitlines()
    return (
        lines[lines.index(OWNER_HEADING) + 1].strip(),
        lines[lines.index(APP_HEADING) + 1].strip(),
    )


def password_of(url: str) -> str | None:
    return environ.Env.db_url_config(url)["PASSWORD"] or None


def verifiers(admin_url: str) -> dict[str, str]:
    rows = fetch(
        admin_url,
        "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s)",
        [OWNER, APP],
    )
    return dict(rows)


def as_json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def admin_url():
    """One migrated database beside the test database for the whole module, as the
    superuser the tests run as; dropped afterwards. (conftest's `scratch_databases` is
    per test, and migrating a database takes seconds.)"""
    name = f"test_db_roles_{RUN}"
    server = database_url("postgres", superuser=True)
    with connect(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = database_url(name, superuser=True)
        migrated = python(url, "manage.py", "migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        with connect(server) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def roles(admin_url):
    """The first run of db_roles: its output and the printed URLs and passwords (updated
    by the tests that set new ones). The roles are cluster-wide: whatever they own or hold
    in the database is given back and they are dropped afterwards."""
    first = db_roles(admin_url)
    state = {"first": first}
    if first.returncode == 0:
        state["owner_url"], state["app_url"] = printed_urls(first.stdout)
    try:
        yield state
    finally:
        with connect(admin_url) as conn:
            for role in (APP, OWNER):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                    name = sql.Identifier(role)
                    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO current_user").format(name))
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
                    conn.execute(sql.SQL("DROP ROLE {}").format(name))


def test_the_first_run_creates_both_roles_and_prints_their_passwords(admin_url, roles):
    first = roles["first"]
    assert first.returncode == 0, first.stderr
    assert f"Owner role {OWNER}:\n  created (LOGIN NOSUPERUSER" in first.stdout
    assert f"App role {APP}:\n  created (LOGIN NOSUPERUSER" in first.stdout
    assert "Store the passwords now" in first.stdout

    owner_url, app_url = roles["owner_url"], roles["app_url"]
    assert environ.Env.db_url_config(owner_url)["USER"] == OWNER
    assert environ.Env.db_url_config(app_url)["USER"] == APP
    for url in (owner_url, app_url):
        config = environ.Env.db_url_config(url)
        assert config["NAME"] == environ.Env.db_url_config(admin_url)["NAME"]
        assert config["HOST"] == environ.Env.db_url_config(admin_url)["HOST"]
        assert len(password_of(url)) >= 40
    assert password_of(owner_url) != password_of(app_url)
    stored = verifiers(admin_url)
    assert password_matches(stored[OWNER], OWNER, password_of(owner_url))
    assert password_matches(stored[APP], APP, password_of(app_url))
    assert not password_matches(stored[APP], APP, password_of(owner_url))

    attributes = fetch(
        admin_url,
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
        "rolbypassrls FROM pg_roles WHERE rolname IN (%s, %s) ORDER BY rolname",
        [OWNER, APP],
    )
    assert attributes == [
        (APP, True, False, False, False, False, False),
        (OWNER, True, False, False, False, False, False),
    ]


def test_the_owner_owns_the_schema_and_the_app_role_owns_nothing(admin_url, roles):
    owners = fetch(
        admin_url,
        """
        SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
        UNION SELECT pg_get_userbyid(p.proowner) FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
        UNION SELECT pg_get_userbyid(t.typowner) FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'
        """,
    )
    assert owners == [(OWNER,)]
    owned_by_app = fetch(
        admin_url,
        "SELECT count(*) FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass "
        "AND deptype = 'o' AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)",
        [APP],
    )
    assert owned_by_app == [(0,)]
    privileges = fetch(
        admin_url,
        "SELECT has_schema_privilege(%s, 'public', 'CREATE'), "
        "has_schema_privilege(%s, 'public', 'CREATE'), "
        "has_function_privilege(%s, 'procrastinate_fetch_job_v2(character varying[], bigint)', "
        "'EXECUTE')",
        [OWNER, APP, APP],
    )
    assert privileges == [(True, False, True)]


def test_the_app_role_serves_pages(roles):
    seen = as_json(python(roles["app_url"], "-c", PAGES_PROBE))
    assert seen["role"] == APP
    assert seen["page"] == 200
    assert (seen["login"], seen["login_to"]) == (302, "/dashboard/"), seen
    assert seen["dashboard"] == 200
    assert (seen["readyz"], seen["reason"]) == (200, "")


def test_the_worker_runs_jobs_as_the_app_role(admin_url, roles):
    # The app role's EXECUTE on procrastinate's functions is its own, not PUBLIC's.
    with connect(admin_url) as conn:
        conn.execute("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC")
    try:
        assert as_json(python(roles["app_url"], "-c", RUN_A_JOB)) == {"status": "succeeded"}
    finally:
        with connect(admin_url) as conn:
            conn.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC")


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE support_ticket",
        "ALTER TABLE support_ticket ADD COLUMN note text",
        "ALTER TABLE support_ticket DISABLE ROW LEVEL SECURITY",
        "TRUNCATE django_session",
        "CREATE TABLE public.stray (id integer)",
        "CREATE FUNCTION public.stray() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
        "DROP FUNCTION procrastinate_fetch_job_v2",
        "SELECT rolpassword FROM pg_authid",
        "CREATE SCHEMA stray",
    ],
)
def test_the_app_role_cannot_change_the_schema(roles, statement):
    with connect(roles["app_url"]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (APP,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_a_second_run_changes_nothing_and_prints_no_password(admin_url, roles):
    before = verifiers(admin_url)
    again = db_roles(admin_url)
    assert again.returncode == 0, again.stderr
    assert f"Owner role {OWNER}:\n  no change\nApp role {APP}:\n  no change" in again.stdout
    assert again.stdout.rstrip().endswith("Nothing to change.")
    for url in (roles["owner_url"], roles["app_url"]):
        assert password_of(url) not in again.stdout
    owner_url, app_url = printed_urls(again.stdout)
    assert (password_of(owner_url), password_of(app_url)) == (None, None)
    assert environ.Env.db_url_config(app_url)["USER"] == APP
    assert verifiers(admin_url) == before


def test_a_run_puts_back_what_was_changed_by_hand(admin_url, roles):
    with connect(admin_url) as conn:
        for statement in (
            "GRANT TRUNCATE, REFERENCES ON support_ticket TO {app}",
            "REVOKE SELECT ON django_session FROM {app}",
            "GRANT CREATE ON SCHEMA public TO PUBLIC",
            "REVOKE USAGE ON SCHEMA public FROM PUBLIC, {app}",
            "ALTER ROLE {app} CREATEDB BYPASSRLS",
            "CREATE TABLE public.stray_by_hand (id integer)",
            "ALTER TABLE public.stray_by_hand OWNER TO {app}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            "REVOKE INSERT ON TABLES FROM {app}",
        ):
            conn.execute(
                sql.SQL(statement).format(app=sql.Identifier(APP), owner=sql.Identifier(OWNER))
            )
    try:
        fixed = db_roles(admin_url)
        assert fixed.returncode == 0, fixed.stderr
        for change in (
            "set NOCREATEDB NOBYPASSRLS",
            "revoked REFERENCES, TRUNCATE on 1 table",
            "granted SELECT, INSERT, UPDATE, DELETE on 2 tables",  # django_session, stray
            "granted USAGE on schema public",
            "revoked CREATE on schema public from PUBLIC",
            "took ownership of 1 table in schema public",
            f"default privileges of {OWNER}: grant INSERT on new tables",
        ):
            assert change in fixed.stdout
        assert password_of(printed_urls(fixed.stdout)[1]) is None

        assert db_roles(admin_url).stdout.rstrip().endswith("Nothing to change.")
        with connect(roles["app_url"]) as conn:
            conn.execute("SELECT count(*) FROM django_session")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("TRUNCATE support_ticket")
        owner = fetch(
            admin_url,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'stray_by_hand'",
        )
        assert owner == [(OWNER,)]
    finally:
        with connect(admin_url) as conn:
            conn.execute("DROP TABLE IF EXISTS public.stray_by_hand")
            conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")


def test_reset_passwords_sets_new_ones_and_prints_them(admin_url, roles):
    old = {OWNER: password_of(roles["owner_url"]), APP: password_of(roles["app_url"])}
    reset = db_roles(admin_url, "--reset-passwords")
    assert reset.returncode == 0, reset.stderr
    owner_url, app_url = printed_urls(reset.stdout)
    new = {OWNER: password_of(owner_url), APP: password_of(app_url)}
    assert None not in new.values()
    assert new[OWNER] != old[OWNER] and new[APP] != old[APP]
    stored = verifiers(admin_url)
    for role in (OWNER, APP):
        assert password_matches(stored[role], role, new[role])
        assert not password_matches(stored[role], role, old[role])
    assert f"Owner role {OWNER}:\n  password set\nApp role {APP}:\n  password set" in reset.stdout
    roles["owner_url"], roles["app_url"] = owner_url, app_url


def test_a_given_password_is_set_once(admin_url, roles):
    chosen = f"chosen-{uuid.uuid4().hex}"
    first = db_roles(admin_url, "--app-password", chosen)
    assert first.returncode == 0, first.stderr
    assert f"App role {APP}:\n  password set" in first.stdout
    assert password_of(printed_urls(first.stdout)[1]) == chosen
    assert password_of(printed_urls(first.stdout)[0]) is None
    assert password_matches(verifiers(admin_url)[APP], APP, chosen)

    again = db_roles(admin_url, "--app-password", chosen)
    assert again.stdout.rstrip().endswith("Nothing to change."), again.stdout
    assert chosen not in again.stdout
    roles["app_url"] = printed_urls(first.stdout)[1]


def test_the_owner_migrates_and_the_app_role_uses_the_new_tables(admin_url, roles):
    owner_url = roles["owner_url"]
    down = python(owner_url, "manage.py", "migrate", "support", "zero", "--noinput")
    assert down.returncode == 0, down.stderr
    assert fetch(admin_url, "SELECT to_regclass('support_ticket')") == [(None,)]
    up = python(owner_url, "manage.py", "migrate", "--noinput")
    assert up.returncode == 0, up.stderr
    assert "Applying support.0001_initial... OK" in up.stdout
    assert fetch(
        admin_url,
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname LIKE 'support_%'",
    ) == [(OWNER,)]

    seen = as_json(python(roles["app_url"], "-c", USE_SUPPORT_TABLES))
    assert seen["role"] == APP
    assert (seen["subject"], seen["messages"]) == ("Disk full again", 1)
    assert seen["currval"] == seen["id"]
    # The default privileges did it all: nothing is left for db_roles to do.
    assert db_roles(admin_url).stdout.rstrip().endswith("Nothing to change.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--owner", "same", "--app", "same"], "--owner and --app must be two different roles"),
        (["--app", "pg_app"], "--app: role names starting with pg_ are reserved"),
        (["--owner", "o" * 64], "--owner: role names are at most 63 bytes"),
    ],
)
def test_bad_role_names_are_refused(admin_url, args, message):
    result = python(admin_url, "manage.py", "db_roles", *args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"CommandError: {message}"


def test_it_refuses_the_connecting_user_a_superuser_and_a_non_superuser(admin_url, roles):
    current = environ.Env.db_url_config(admin_url)["USER"]
    result = python(admin_url, "manage.py", "db_roles", "--owner", current, "--app", APP)
    assert (result.returncode, result.stderr.strip()) == (
        1,
        f"CommandError: {current} is the user this command connects as",
    )

    superuser = f"test_roles_super_{RUN}"
    with connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} SUPERUSER").format(sql.Identifier(superuser)))
    try:
        result = python(admin_url, "manage.py", "db_roles", "--owner", OWNER, "--app", superuser)
        assert result.returncode == 1
        assert f"role {superuser} is a superuser" in result.stderr
        assert fetch(
            admin_url, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", [superuser]
        ) == [(True,)]
    finally:
        with connect(admin_url) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(superuser)))

    result = db_roles(roles["app_url"])
    assert result.returncode == 1
    assert f"needs a superuser connection; {APP} is not one" in result.stderr


def test_database_url_keeps_host_port_name_and_sslmode():
    settings_dict = {
        "HOST": "db.example.com",
        "PORT": 25060,
        "NAME": "hosting",
        "OPTIONS": {"sslmode": "require", "pool": {"max_size": 4}},
    }
    url = role_database_url(settings_dict, "hosting_app", "p@ss/word")
    assert (
        url == "postgresql://hosting_app:p%40ss%2Fword@db.example.com:25060/hosting?sslmode=require"
    )
    config = environ.Env.db_url_config(url)
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == (
        "hosting_app",
        "p@ss/word",
        "db.example.com",
        25060,
    )
    assert config["OPTIONS"] == {"sslmode": "require"}
    assert role_database_url(settings_dict, "hosting_app").startswith("postgresql://hosting_app@")
    socket = role_database_url({"HOST": "/run/postgresql", "NAME": "hosting"}, "hosting_app")
    assert environ.Env.db_url_config(socket)["HOST"] == "/run/postgresql"


def test_password_matches_md5_and_refuses_other_verifiers():
    verifier = "md5" + hashlib.md5(b"secretalice").hexdigest()
    assert password_matches(verifier, "alice", "secret")
    assert not password_matches(verifier, "alice", "Secret")
    assert not password_matches(None, "alice", "secret")
    assert not password_matches("SCRAM-SHA-256$garbage", "alice", "secret")
