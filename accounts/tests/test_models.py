import pytest
from django.db import DatabaseError, IntegrityError, transaction

from accounts.models import AuditEvent, User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_email_unique_case_insensitively():
    User.objects.create_user("Ann@Example.com", "pw-long-enough-1")
    with pytest.raises(IntegrityError, match="accounts_user_email_ci_unique"):
        with transaction.atomic():
            User.objects.bulk_create([User(email="ANN@example.COM")])


def test_email_stored_lower_case_and_login_ignores_case():
    user = User.objects.create_user("Bob@Example.com", "pw-long-enough-1")
    assert user.email == "bob@example.com"
    assert User.objects.get_by_natural_key("BOB@example.com") == user


class TestAuditTrailIsAppendOnly:
    """Enforced by the database (a trigger), whoever connects: not only by the code."""

    @pytest.fixture
    def event(self):
        from accounts.services import audit_event_record

        return audit_event_record(
            action=AuditEvent.Action.LOGIN, actor=UserFactory(email="ann@example.com")
        )

    def test_an_event_cannot_be_changed(self, event):
        with (
            pytest.raises(DatabaseError, match="append-only: UPDATE refused"),
            transaction.atomic(),
        ):
            AuditEvent.objects.filter(pk=event.pk).update(action=AuditEvent.Action.LOGOUT)
        assert AuditEvent.objects.get(pk=event.pk).action == AuditEvent.Action.LOGIN

    def test_an_event_cannot_be_deleted(self, event):
        with (
            pytest.raises(DatabaseError, match="append-only: DELETE refused"),
            transaction.atomic(),
        ):
            AuditEvent.objects.filter(pk=event.pk).delete()
        assert AuditEvent.objects.filter(pk=event.pk).exists()

    def test_forgetting_the_actor_and_changing_more_is_refused(self, event):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(actor=None, actor_email="")

    def test_a_user_can_be_deleted_and_their_events_keep_their_address(self, event):
        event.actor.delete()
        event.refresh_from_db()
        assert (event.actor_id, event.actor_email) == (None, "ann@example.com")
