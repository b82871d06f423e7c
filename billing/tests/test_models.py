import pytest
from django.db import IntegrityError, transaction

from billing.models import Payment
from billing.tests.factories import PaymentFactory
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "field",
    [
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
    ],
)
def test_duplicate_stripe_id_refused(field):
    PaymentFactory(**{field: "dup_123"})
    with pytest.raises(IntegrityError, match=f"billing_payment_{field}_unique"):
        with transaction.atomic():
            PaymentFactory(**{field: "dup_123"})
    assert Payment.objects.filter(**{field: "dup_123"}).count() == 1


def test_unset_stripe_ids_do_not_collide():
    PaymentFactory(stripe_charge_id="", stripe_refund_id="")
    PaymentFactory(stripe_charge_id="", stripe_refund_id="")
    assert Payment.objects.filter(stripe_refund_id="").count() == 2


def test_status_must_be_known():
    payment = PaymentFactory()
    with pytest.raises(IntegrityError, match="billing_payment_status_valid"):
        with transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(status="lost")


def test_refunded_payment_needs_refunded_at():
    payment = PaymentFactory()
    with pytest.raises(IntegrityError, match="refunded_has_refunded_at"), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(status="refunded")


def test_one_payment_pays_for_one_server():
    payment = PaymentFactory()
    ServerFactory(user=payment.user, payment=payment, status="failed")
    with (
        pytest.raises(IntegrityError, match="servers_server_payment_id_key"),
        transaction.atomic(),
    ):
        ServerFactory(user=payment.user, payment=payment, status="running")


def test_plan_cannot_be_deleted_while_paid_for():
    from django.db.models import ProtectedError

    payment = PaymentFactory()
    with pytest.raises(ProtectedError):
        payment.plan.delete()


# What billing/migrations/0002_seed_plans.py must create, written out here rather than
# read from the migration: slug, name, price, currency, vCPUs, memory, disk, size, active,
# sort order.
SEEDED_PLANS = [
    ("basic", "Basic", 900, "usd", 1, 1024, 25, "s-1vcpu-1gb", True, 1),
    ("pro", "Pro", 2900, "usd", 2, 4096, 80, "s-2vcpu-4gb", True, 2),
    ("premium", "Premium", 5900, "usd", 4, 8192, 160, "s-4vcpu-8gb", True, 3),
]
PLAN_COLUMNS = (
    "slug, name, price_cents, currency, vcpus, memory_mb, disk_gb, provider_size_slug, "
    "is_active, sort_order"
)


def plan_rows(cursor) -> list[tuple]:
    cursor.execute(f"SELECT {PLAN_COLUMNS} FROM billing_plan ORDER BY sort_order, slug")
    return [tuple(row) for row in cursor.fetchall()]


def test_the_seed_migration_creates_exactly_these_plans():
    """The migration itself (its operations, from Django's migration graph) run against
    an empty table, not the root conftest's re-seeding (which calls the same function)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from billing.models import Plan

    Plan.objects.all().delete()
    loader = MigrationLoader(connection)
    migration = loader.graph.nodes[("billing", "0002_seed_plans")]
    before = loader.project_state(("billing", "0001_initial"))
    with connection.schema_editor(atomic=True) as editor:
        migration.apply(before, editor)
    with connection.cursor() as cursor:
        assert plan_rows(cursor) == SEEDED_PLANS


def test_migrate_seeds_the_plans_in_a_new_database():
    """`manage.py migrate`, as it builds the test database and production's, seeds the plans.
    Checked in a database of its own: in this one a transactional test's flush may already
    have removed the migration's rows, and the root conftest re-seeds them from the same
    function, so their presence here would prove nothing."""
    import uuid

    import psycopg
    from django.db import connection

    from hosting.testing import database_url, run_python, subprocess_env

    config = connection.settings_dict
    server = {
        key: value
        for key, value in {
            "host": config["HOST"],
            "port": config["PORT"],
            "user": config["USER"],
            "password": config["PASSWORD"],
            "sslmode": (config["OPTIONS"] or {}).get("sslmode"),
        }.items()
        if value
    }
    name = f"{config['NAME'][:40]}_plans_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, query = database_url().partition("?")  # the test database's, renamed
        url = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
        result = run_python(
            "manage.py", "migrate", "--noinput", env=subprocess_env(DATABASE_URL=url)
        )
        assert result.returncode == 0, result.stdout + result.stderr
        with psycopg.connect(dbname=name, **server) as fresh, fresh.cursor() as cursor:
            assert plan_rows(cursor) == SEEDED_PLANS
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
