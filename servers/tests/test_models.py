import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import IntegrityError, connection, transaction

from hosting import crypto
from servers.models import Domain, Server
from servers.tests.factories import DomainFactory, ServerFactory

pytestmark = pytest.mark.django_db


def raw_insert_server(user, plan, status, name):
    """Insert with SQL, past every Python check, so only the database can refuse."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO servers_server (uuid, user_id, plan_id, status, name, region,
                   provider_id, ssh_username, ssh_password, created_at, updated_at)
               VALUES (gen_random_uuid(), %s, %s, %s, %s, 'nyc3', '', 'root', '', now(), now())""",
            [user.pk, plan.pk, status, name],
        )


class TestOneServerPerCustomer:
    def test_database_refuses_a_second_active_server(self):
        server = ServerFactory(status=Server.Status.RUNNING)
        with pytest.raises(IntegrityError, match="servers_server_one_active_per_user"):
            with transaction.atomic():
                raw_insert_server(server.user, server.plan, "provisioning", "second")
        assert Server.objects.filter(user=server.user).count() == 1

    @pytest.mark.parametrize("status", ["provisioning", "running", "stopped"])
    def test_every_live_status_counts(self, status):
        server = ServerFactory(status=status)
        with (
            pytest.raises(IntegrityError, match="servers_server_one_active_per_user"),
            transaction.atomic(),
        ):
            raw_insert_server(server.user, server.plan, "running", "second")

    @pytest.mark.parametrize("ended", ["failed", "deleted"])
    def test_an_ended_server_does_not_block_a_new_one(self, ended):
        old = ServerFactory(status=ended)
        raw_insert_server(old.user, old.plan, "provisioning", "replacement")
        raw_insert_server(old.user, old.plan, "failed", "another-failure")
        assert Server.objects.filter(user=old.user).count() == 3

    def test_unknown_status_refused(self):
        server = ServerFactory()
        with pytest.raises(IntegrityError, match="servers_server_status_valid"):
            with transaction.atomic():
                Server.objects.filter(pk=server.pk).update(status="exploded")


class TestEncryptedPassword:
    def test_column_holds_a_fernet_token_not_the_password(self):
        server = ServerFactory(ssh_password="hunter2-plaintext")
        with connection.cursor() as cursor:
            cursor.execute("SELECT ssh_password FROM servers_server WHERE id = %s", [server.pk])
            (stored,) = cursor.fetchone()
        assert "hunter2" not in stored
        assert stored.startswith("gAAAAA")  # Fernet tokens start with version byte 0x80
        assert crypto.decrypt(stored) == "hunter2-plaintext"
        assert Server.objects.get(pk=server.pk).ssh_password == "hunter2-plaintext"

    def test_rotation_keeps_old_rows_readable(self, settings):
        old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        settings.FIELD_ENCRYPTION_KEYS = [old_key]
        server = ServerFactory(ssh_password="before-rotation")

        settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
        assert Server.objects.get(pk=server.pk).ssh_password == "before-rotation"
        fresh = ServerFactory(ssh_password="after-rotation")
        with connection.cursor() as cursor:
            cursor.execute("SELECT ssh_password FROM servers_server WHERE id = %s", [fresh.pk])
            (token,) = cursor.fetchone()
        # New rows are encrypted with the new key alone.
        assert Fernet(new_key.encode()).decrypt(token.encode()) == b"after-rotation"

        settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key dropped too early
        with pytest.raises(InvalidToken):
            Server.objects.get(pk=server.pk)


class TestDomainNames:
    def test_duplicate_refused(self):
        DomainFactory(name="shop.example.com")
        other = DomainFactory.build(name="shop.example.com")
        other.server = ServerFactory()
        other.user = other.server.user
        with (
            pytest.raises(IntegrityError, match="servers_domain_name_ci_unique"),
            transaction.atomic(),
        ):
            other.save()

    def test_case_variant_refused_by_the_unique_index_itself(self):
        """The lower-case CHECK would refuse 'SHOP.example.com' on its own; with it out of
        the way (inside this test's transaction) the unique index must still refuse it,
        because it compares names case-insensitively."""
        with connection.cursor() as cursor:  # before any row: no pending FK checks
            cursor.execute(
                "ALTER TABLE servers_domain DROP CONSTRAINT servers_domain_name_lowercase"
            )
        DomainFactory(name="shop.example.com")
        other = DomainFactory(name="other.example.com")
        with (
            pytest.raises(IntegrityError, match="servers_domain_name_ci_unique"),
            transaction.atomic(),
        ):
            Domain.objects.filter(pk=other.pk).update(name="SHOP.example.com")
        # A variant of no existing name is let through: only the index was refusing.
        Domain.objects.filter(pk=other.pk).update(name="Other.example.com")

    def test_upper_case_name_refused(self):
        with pytest.raises(IntegrityError, match="servers_domain_name_lowercase"):
            with transaction.atomic():
                DomainFactory(name="Mixed.Example.com")
        assert not Domain.objects.filter(name__iexact="mixed.example.com").exists()
