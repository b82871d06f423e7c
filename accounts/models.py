from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from hosting.db import choices_check


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)

    def _create(self, email, password, **fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **fields):
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A customer or a staff member; the email address is the login."""

    email = models.EmailField("email address", max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # Kept by billing while the customer's subscription is past due, so every page can
    # show the banner without a query of its own.
    payment_overdue_since = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self):
        return self.email

    def clean(self):
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def get_full_name(self):
        return self.name or self.email

    def get_short_name(self):
        return self.name.split(" ")[0] if self.name else self.email


class AuditAction(models.TextChoices):
    SIGNUP = "signup", "Signed up"
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Failed login"
    LOGOUT = "logout", "Logged out"
    LOCKOUT = "lockout", "Locked out"
    PASSWORD_CHANGE = "password_change", "Changed password"
    PASSWORD_RESET = "password_reset", "Reset password"
    EMAIL_CHANGE = "email_change", "Changed email"
    EMAIL_CONFIRM = "email_confirm", "Confirmed email"
    MFA_ENABLE = "mfa_enable", "Turned on two-factor"
    MFA_DISABLE = "mfa_disable", "Turned off two-factor"
    RECOVERY_CODES = "recovery_codes", "Regenerated recovery codes"
    PAYMENT_REFUND = "payment_refund", "Refunded a payment"
    STAFF_ACTION = "staff_action", "Staff action"
    SERVER_PASSWORD_REVEAL = "server_password_reveal", "Revealed a server password"
    TICKET_STATUS = "ticket_status", "Changed a ticket's status"
    PAYMENT_DISPUTE = "payment_dispute", "A payment was disputed"
    SUBSCRIPTION_CHANGE = "subscription_change", "Changed a subscription"


class AuditEvent(models.Model):
    """One security-relevant event. Append-only, enforced by the database: written in the
    same transaction as the change it records, never updated or deleted; it holds no
    password, token or secret."""

    Action = AuditAction

    # A deleted user's events stay, named by actor_email: the only change the database
    # lets anyone make to this table (see migration 0002).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    # The email typed at a failed login, where no user may match it.
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("action", AuditAction, "accounts_auditevent"),
        ]
        indexes = [
            models.Index(fields=["actor", "-created_at"], name="audit_actor_created_idx"),
            models.Index(fields=["action", "-created_at"], name="audit_action_created_idx"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} by {self.actor or self.actor_email or 'anonymous'}"
