"""The operator commands (seed, backup, restore, check_db) and hosting.database behind
them, against the real PostgreSQL server."""

import os
import re
import stat
from io import StringIO
from pathlib import Path

import environ
import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import AuditEvent, User
from accounts.services import audit_event_record
from billing.models import Payment
from hosting.database import pg, programs
from hosting.database.archive import archive_entries
from hosting.database.pg import PgError
from hosting.database.restore import public_tables
from hosting.testing import run_python
from servers.models import Deployment, Domain, Server
from servers.tests.factories import ServerFactory
from support.models import Ticket, TicketMessage
from support.tests.factories import TicketMessageFactory

DEMO_EMAILS = ["admin@example.com", "alice@example.com", "bob@example.com", "carol@example.com"]
PASSWORD_LINE = re.compile(r"^\s+(\S+@example\.com)\s+password: (\S+)$", re.MULTILINE)

# Data that pg_dump and pg_restore (other processes) must see has to be committed.
# The root conftest puts back the migration-seeded plans that the flush removes.
committed_db = pytest.mark.django_db(transaction=True)


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def fingerprints(conn) -> dict[str, tuple[int, str | None]]:
    """Row count and a checksum of the contents of every table in the public schema."""
    result = {}
    with conn.cursor() as cursor:
        for name in public_tables(conn):
            table = conn.ops.quote_name(name)
            cursor.execute(
                f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
            )
            result[name] = tuple(cursor.fetchone())
    return result


def other_database(url):
    return pg.database_wrapper(environ.Env.db_url_config(url), alias="test-scratch")


def backups_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


# hosting.database: client programs and the database they reach


def test_libpq_env_follows_the_django_connection():
    env = pg.libpq_env()
    config = connection.settings_dict
    assert env["PGDATABASE"] == config["NAME"]
    assert env.get("PGHOST", "") == str(config["HOST"])
    assert env.get("PGUSER", "") == config["USER"]
    assert ("PGPASSWORD" in env) == bool(config["PASSWORD"])
    # Django forces client_encoding for itself; pg_dump picks its own.
    assert "PGCLIENTENCODING" not in env


def test_libpq_env_for_a_url_with_password_port_and_sslmode():
    config = environ.Env.db_url_config(
        "postgres://dump%40er:p%40ss%2Fword@db.example.com:6543/prod"
        "?sslmode=verify-full&connect_timeout=5&sslrootcert=/etc/ca.pem"
    )
    assert pg.libpq_env_for(config) == {
        "PGHOST": "db.example.com",
        "PGPORT": "6543",
        "PGUSER": "dump@er",
        "PGPASSWORD": "p@ss/word",
        "PGDATABASE": "prod",
        "PGSSLMODE": "verify-full",
        "PGCONNECT_TIMEOUT": "5",
        "PGSSLROOTCERT": "/etc/ca.pem",
    }


def test_libpq_env_for_a_unix_socket_url():
    config = environ.Env.db_url_config("postgresql://postgres@//var/run/pg sock/hosting")
    env = pg.libpq_env_for(config)
    assert env == {"PGHOST": "/var/run/pg sock", "PGUSER": "postgres", "PGDATABASE": "hosting"}
    assert "password" not in pg.describe(env)


def test_database_wrapper_refuses_other_engines():
    with pytest.raises(PgError, match="not a PostgreSQL database"):
        pg.database_wrapper(environ.Env.db_url_config("sqlite:////tmp/x.sqlite3"))


def test_pg_binary_prefers_path_then_the_newest_server_version(tmp_path, monkeypatch):
    for version in ("9.6", "15", "16"):
        (tmp_path / version / "bin").mkdir(parents=True)
    for version in ("9.6", "15"):  # 16 is installed without the client programs
        program = tmp_path / version / "bin" / "pg_dump"
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    monkeypatch.setattr(programs, "SERVER_BIN_GLOB", str(tmp_path / "*" / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert pg.pg_binary("pg_dump") == str(tmp_path / "15" / "bin" / "pg_dump")

    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "pg_dump").write_text("#!/bin/sh\n")
    (on_path / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert pg.pg_binary("pg_dump") == str(on_path / "pg_dump")

    with pytest.raises(PgError, match="pg_restore not found"):
        pg.pg_binary("pg_restore")


# seed


@pytest.mark.django_db
def test_seed_twice_changes_nothing():
    first = run("seed")
    after_first = fingerprints(connection)
    second = run("seed")

    assert fingerprints(connection) == after_first
    assert "4 users (4 new)" in first
    assert "4 users (0 new)" in second and "servers (0 new)" in second
    assert "Passwords unchanged" in second

    assert sorted(User.objects.values_list("email", flat=True)) == DEMO_EMAILS
    admin = User.objects.get(email="admin@example.com")
    assert admin.is_staff and admin.is_superuser
    assert not User.objects.filter(is_staff=True).exclude(pk=admin.pk).exists()
    for email in DEMO_EMAILS:
        assert (
            EmailAddress.objects.get(email=email, verified=True, primary=True).user.email == email
        )

    alice_servers = Server.objects.filter(user__email="alice@example.com")
    assert sorted(alice_servers.values_list("status", flat=True)) == ["failed", "running"]
    running = alice_servers.get(status=Server.Status.RUNNING)
    assert running.ip_address.startswith("203.0.113.") and running.ssh_password
    assert running.payment.status == Payment.Status.SUCCEEDED
    assert alice_servers.get(status="failed").payment.status == Payment.Status.REFUNDED
    assert set(Server.objects.values_list("status", flat=True)) == {
        "running",
        "stopped",
        "provisioning",
        "failed",
    }

    # Finished ones only: a demo deployment "in progress" has no job, and the recovery
    # job would rightly fail it a minute after `make run`.
    assert set(Deployment.objects.values_list("status", flat=True)) == {"success", "failed"}
    assert all(deployment.lines.count() > 3 for deployment in Deployment.objects.all())
    assert all(d.failure_reason for d in Deployment.objects.filter(status="failed"))
    assert Domain.objects.filter(verification_status="verified", ssl_status="active").exists()
    assert Domain.objects.filter(verification_status="pending").exists()
    assert Domain.objects.get(ssl_status="failed").ssl_error

    payments = Payment.objects.all()
    assert {p.status for p in payments} == {"succeeded", "refunded", "pending"}
    assert all(p.paid_at for p in payments if p.status in ("succeeded", "refunded"))
    assert all(p.refunded_at for p in payments if p.status == "refunded")

    assert TicketMessage.objects.filter(internal=True, author=admin).exists()
    assert TicketMessage.objects.filter(internal=False, author=admin).exists()
    assert Ticket.objects.filter(messages__isnull=False).distinct().count() >= 1


@pytest.mark.django_db
def test_seed_with_debug_on_prints_passwords_that_log_in(settings, client):
    settings.DEBUG = True
    out = run("seed")
    logins = dict(PASSWORD_LINE.findall(out))
    assert sorted(logins) == DEMO_EMAILS
    for email, password in logins.items():
        assert client.login(email=email, password=password), email
        client.logout()

    # A rerun keeps them, and says so.
    again = run("seed")
    assert not PASSWORD_LINE.findall(again)
    assert client.login(email="alice@example.com", password=logins["alice@example.com"])
    client.logout()

    reset = dict(PASSWORD_LINE.findall(run("seed", "--reset-passwords")))
    assert sorted(reset) == DEMO_EMAILS
    assert not client.login(email="bob@example.com", password=logins["bob@example.com"])
    assert client.login(email="bob@example.com", password=reset["bob@example.com"])


@pytest.mark.django_db
def test_seed_with_debug_off_never_prints_passwords(settings, monkeypatch, capsys):
    settings.DEBUG = False
    generated = []

    def token_urlsafe(nbytes=None):
        generated.append(f"known-secret-{len(generated)}")
        return generated[-1]

    monkeypatch.setattr("hosting.management.commands.seed.secrets.token_urlsafe", token_urlsafe)
    out, err = StringIO(), StringIO()
    call_command("seed", stdout=out, stderr=err)
    printed = out.getvalue() + err.getvalue() + "".join(capsys.readouterr())

    assert generated
    assert not any(secret in printed for secret in generated)
    assert "not shown because DEBUG is off" in printed
    user = User.objects.get(email="carol@example.com")
    assert any(user.check_password(secret) for secret in generated)


@pytest.mark.django_db
def test_seed_show_passwords_prints_them_with_debug_off(settings, client):
    settings.DEBUG = False
    out = StringIO()
    call_command("seed", "--show-passwords", stdout=out)
    printed = out.getvalue()
    assert "shown because --show-passwords was given" in printed
    password = re.search(r"alice@example\.com\s+password: (\S+)", printed).group(1)
    assert client.login(email="alice@example.com", password=password)


@pytest.mark.django_db
def test_seed_destructive_options_need_force_with_debug_off(settings):
    settings.DEBUG = False
    run("seed")
    before = fingerprints(connection)
    with pytest.raises(CommandError, match="refusing --clear-users with DEBUG off"):
        run("seed", "--clear-users")
    with pytest.raises(CommandError, match="refusing --reset-passwords with DEBUG off"):
        run("seed", "--reset-passwords")
    assert fingerprints(connection) == before


@pytest.mark.django_db
def test_seed_clear_users_with_force_recreates_the_demo_and_spares_other_customers(settings):
    settings.DEBUG = False
    run("seed")
    counts_after_seed = {name: count for name, (count, _) in fingerprints(connection).items()}
    old_ids = set(User.objects.filter(email__in=DEMO_EMAILS).values_list("pk", flat=True))
    alice = User.objects.get(email="alice@example.com")
    login = audit_event_record(action=AuditEvent.Action.LOGIN, actor=alice)
    other_server = ServerFactory()  # a customer who is not part of the demo
    other_message = TicketMessageFactory(ticket__user=other_server.user)

    out = run("seed", "--clear-users", "--force")

    assert "Removed the demo users" in out and "audit events" not in out
    new_ids = set(User.objects.filter(email__in=DEMO_EMAILS).values_list("pk", flat=True))
    assert len(new_ids) == 4 and not new_ids & old_ids
    # The audit trail is append-only: the event stays, naming Alice by her address.
    login.refresh_from_db()
    assert (login.actor_id, login.actor_email) == (None, "alice@example.com")
    assert Server.objects.filter(pk=other_server.pk).exists()
    assert TicketMessage.objects.filter(pk=other_message.pk).exists()
    # Everything else is back to what a single seed makes.
    other_rows = {
        "accounts_auditevent": 1,
        "accounts_user": 1,
        "servers_server": 1,
        "support_ticket": 1,
        "support_ticketmessage": 1,
    }
    counts = {name: count for name, (count, _) in fingerprints(connection).items()}
    assert counts == {
        name: count + other_rows.get(name, 0) for name, count in counts_after_seed.items()
    }


@pytest.mark.django_db
def test_seed_clear_users_needs_no_force_with_debug_on(settings):
    settings.DEBUG = True
    run("seed")
    out = run("seed", "--clear-users")
    assert "Removed the demo users" in out and "4 users (4 new)" in out
    assert User.objects.count() == 4


# backup


@pytest.mark.django_db
def test_backup_writes_a_verified_private_archive(tmp_path):
    target = tmp_path / "new" / "backups"
    out = run("backup", "--output-dir", str(target))

    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    [archive] = backups_in(target)
    assert re.fullmatch(r"hosting-\d{8}-\d{6}\.dump", archive.name)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert archive_entries(archive) > 0
    size = archive.stat().st_size
    assert str(archive) in out and f"{size} bytes" in out and "KiB" in out


@pytest.mark.django_db
def test_backup_defaults_to_backup_dir(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "configured"
    run("backup")
    assert [path.suffix for path in backups_in(settings.BACKUP_DIR)] == [".dump"]


@pytest.mark.django_db
def test_backup_keep_deletes_all_but_the_newest(tmp_path):
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / "hosting-manual.dump").write_text("not ours either")
    made = []
    for _ in range(3):
        out = run("backup", "--output-dir", str(tmp_path), "--keep", "2")
        made.append(Path(re.search(r" to (\S+\.dump) ", out)[1]))

    # Three runs within a second or two: same-second names get -1, -2 suffixes, and
    # the ordering still knows which is newest.
    assert len(set(made)) == 3
    remaining = {path.name for path in backups_in(tmp_path)}
    assert remaining == {made[1].name, made[2].name, "notes.txt", "hosting-manual.dump"}


def test_backup_keep_must_be_positive(tmp_path):
    with pytest.raises(CommandError, match="--keep must be at least 1"):
        run("backup", "--output-dir", str(tmp_path), "--keep", "0")


@pytest.mark.django_db
def test_backup_failing_pg_dump_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(pg, "pg_binary", lambda name: "/bin/false")
    with pytest.raises(CommandError, match=r"pg_dump of .* failed \(exit 1\)"):
        run("backup", "--output-dir", str(tmp_path))
    assert backups_in(tmp_path) == []


@pytest.mark.django_db
def test_backup_error_carries_pg_dump_stderr_and_removes_the_partial_file(tmp_path, monkeypatch):
    fake = tmp_path / "pg_dump"
    fake.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do case "$arg" in --file=*) printf PGDMP-half > "${arg#--file=}";; '
        "esac; done\n"
        "echo 'pg_dump: error: could not write to output file: No space left on device' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    real = pg.pg_binary
    monkeypatch.setattr(
        pg, "pg_binary", lambda name: str(fake) if name == "pg_dump" else real(name)
    )
    out_dir = tmp_path / "out"
    with pytest.raises(CommandError, match="No space left on device") as raised:
        run("backup", "--output-dir", str(out_dir))
    assert "\n" not in str(raised.value)
    assert backups_in(out_dir) == []


@pytest.mark.django_db
def test_backup_that_fails_verification_leaves_no_file(tmp_path, monkeypatch):
    real = pg.pg_binary
    monkeypatch.setattr(
        pg, "pg_binary", lambda name: "/bin/false" if name == "pg_restore" else real(name)
    )
    with pytest.raises(CommandError, match="failed verification"):
        run("backup", "--output-dir", str(tmp_path))
    assert backups_in(tmp_path) == []


@pytest.mark.django_db
def test_backup_into_an_impossible_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CommandError, match="cannot create backup directory"):
        run("backup", "--output-dir", str(blocker / "backups"))


@pytest.mark.django_db
def test_backup_without_pg_dump(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(programs, "SERVER_BIN_GLOB", str(tmp_path / "none" / "*" / "bin"))
    with pytest.raises(CommandError, match="pg_dump not found"):
        run("backup", "--output-dir", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# restore


@committed_db
def test_backup_then_restore_copies_every_table(tmp_path, scratch_database_url, settings):
    run("seed")
    run("backup", "--output-dir", str(tmp_path))
    [archive] = backups_in(tmp_path)
    assert archive_entries(archive) > 0

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        run("restore", str(archive), "--database-url", scratch_database_url)
    out = run("restore", str(archive), "--database-url", scratch_database_url, "--force")
    assert "Restored" in out and str(archive) in out

    source = fingerprints(connection)
    scratch = other_database(scratch_database_url)
    try:
        copied = fingerprints(scratch)
    finally:
        scratch.close()
    assert copied == source
    assert source["accounts_user"][0] == 4 and source["billing_plan"][0] == 3
    assert "django_migrations" in source and "servers_server" in source

    # Now the copy holds data: even with DEBUG on, a second restore needs --force.
    settings.DEBUG = True
    with pytest.raises(CommandError, match="holds data"):
        run("restore", str(archive), "--database-url", scratch_database_url)


# A table whose rows cannot be loaded again: its CHECK calls a function that fails unless
# the session says otherwise, and pg_restore's session does not. pg_dump writes table data
# in name order, so its rows come last, after every other table was dropped, created
# and filled again.
RESTORE_TRAP = """
CREATE FUNCTION public.restore_trap(n integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('restore_trap.disarmed', true) = 'yes' THEN
        RETURN true;
    END IF;
    RAISE EXCEPTION 'restore trap: row % cannot be loaded', n;
END $$;
CREATE TABLE public.zz_restore_trap (n integer CHECK (public.restore_trap(n)));
SET restore_trap.disarmed = 'yes';
INSERT INTO public.zz_restore_trap VALUES (1);
"""


@committed_db
def test_restore_that_fails_part_way_changes_nothing(tmp_path, scratch_databases):
    run("seed")
    run("backup", "--output-dir", str(tmp_path))
    [seeded] = backups_in(tmp_path)
    # The target: a copy of the seeded database.
    target_url = scratch_databases()
    run("restore", str(seeded), "--database-url", target_url, "--force")
    # The archive: another copy with other plan names, and the trap.
    source_url = scratch_databases()
    run("restore", str(seeded), "--database-url", source_url, "--force")
    source = other_database(source_url)
    try:
        with source.cursor() as cursor:
            cursor.execute("UPDATE billing_plan SET name = name || ' (newer)'")
            cursor.execute(RESTORE_TRAP)
    finally:
        source.close()
    broken = tmp_path / "broken.dump"
    pg.run(
        [
            pg.pg_binary("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--enable-row-security",
            f"--file={broken}",
        ],
        libpq=pg.libpq_env_for(environ.Env.db_url_config(source_url)),
        failure="pg_dump of the source failed",
    )

    target = other_database(target_url)
    try:
        before = fingerprints(target)
        target.close()
        with pytest.raises(CommandError, match="nothing was changed") as raised:
            run("restore", str(broken), "--database-url", target_url, "--force")
        after = fingerprints(target)
    finally:
        target.close()

    assert "zz_restore_trap" in str(raised.value)
    assert after == before
    assert "zz_restore_trap" not in after
    assert before["accounts_user"][0] == 4  # the seeded data is still there


@pytest.mark.django_db
def test_restore_into_a_database_with_data_is_refused_and_changes_nothing(tmp_path, settings):
    run("backup", "--output-dir", str(tmp_path))
    [archive] = backups_in(tmp_path)
    run("seed")
    before = fingerprints(connection)

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        run("restore", str(archive))
    settings.DEBUG = True
    with pytest.raises(
        CommandError, match=r"holds data \(\d+ table\(s\) with rows: .*accounts_user"
    ):
        run("restore", str(archive))
    assert fingerprints(connection) == before


@pytest.mark.django_db
def test_restore_target_url_errors(tmp_path):
    run("backup", "--output-dir", str(tmp_path))
    [archive] = backups_in(tmp_path)
    with pytest.raises(CommandError, match="not a PostgreSQL database"):
        run("restore", str(archive), "--database-url", "sqlite:////tmp/db.sqlite3", "--force")
    with pytest.raises(CommandError, match="postgresql://user@//path/to/socketdir/dbname"):
        run("restore", str(archive), "--database-url", "postgresql://u@/run/pg/db", "--force")
    with pytest.raises(CommandError, match="cannot connect to") as raised:
        run(
            "restore",
            str(archive),
            "--database-url",
            f"postgresql://u:hunter2@/{tmp_path}/nowhere/db",
            "--force",
        )
    assert "hunter2" not in str(raised.value)


# No database marker: pytest-django fails any test that touches the database, which
# proves the archive is checked first.
def test_restore_checks_the_file_before_the_database(tmp_path):
    with pytest.raises(CommandError, match="no such backup file"):
        run("restore", str(tmp_path / "missing.dump"), "--force")
    text = tmp_path / "plain.sql"
    text.write_text("DROP TABLE accounts_user;\n")
    with pytest.raises(CommandError, match="not a pg_dump custom-format archive"):
        run("restore", str(text), "--force")
    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"PGDMP" + b"\x00" * 64)
    with pytest.raises(CommandError, match="pg_restore --list cannot read"):
        run("restore", str(broken), "--force")


# check_db


@pytest.mark.django_db
def test_check_db_reports_version_latency_and_pool():
    out = run("check_db")
    assert re.search(r"PostgreSQL \d+", out)
    assert re.search(r"min \d+\.\d+ ms, median \d+\.\d+ ms", out)
    assert f'"{connection.settings_dict["NAME"]}"' in out
    pool = connection.settings_dict["OPTIONS"].get("pool")
    assert (f"max_size={pool['max_size']}" if pool else "pool off") in out
    if connection.settings_dict["PASSWORD"]:
        assert connection.settings_dict["PASSWORD"] not in out


@pytest.mark.django_db
def test_check_db_without_pool(monkeypatch):
    monkeypatch.delitem(connection.settings_dict["OPTIONS"], "pool", raising=False)
    assert "Pool:     pool off" in run("check_db")


@pytest.mark.parametrize("pool_size", ["0", "2"])
def test_check_db_unreachable_exits_1_without_traceback(tmp_path, pool_size):
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres:hunter2@/{tmp_path}/no-server/hosting",
        "DB_POOL_MAX_SIZE": pool_size,
        "DB_POOL_TIMEOUT": "1",
        "DEBUG": "on",
        "SECRET_KEY": "test-only",
    }
    env.pop("TEST_DATABASE_NAME", None)
    result = run_python("manage.py", "check_db", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach" in result.stderr and "No such file or directory" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    if pool_size != "0":
        assert "a direct connection says" in result.stderr
