import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from hosting.db import choices_check
from hosting.fields import EncryptedTextField


class ServerStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


# A server in one of these states no longer counts against the one-per-customer rule.
ENDED_SERVER_STATUSES = [ServerStatus.FAILED, ServerStatus.DELETED]


class Server(models.Model):
    """A customer's VPS. Rows are never deleted; a destroyed server is `deleted`."""

    Status = ServerStatus

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="servers"
    )
    plan = models.ForeignKey("billing.Plan", on_delete=models.PROTECT, related_name="servers")
    # One payment pays for at most one server: the database refuses a second.
    payment = models.OneToOneField(
        "billing.Payment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="server",
    )
    status = models.CharField(
        max_length=16, choices=ServerStatus.choices, default=ServerStatus.PROVISIONING
    )
    name = models.CharField(max_length=64)
    region = models.CharField(max_length=16, default="nyc3")
    provider_id = models.CharField(max_length=64, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    ssh_username = models.CharField(max_length=32, default="root")
    ssh_password = EncryptedTextField(blank=True, default="")
    # The host key the server was built with: its public half ("ssh-ed25519 AAAA...") is
    # what every later SSH connection verifies. The private half exists only until the
    # server is running, so a retried provisioning job builds the same server.
    ssh_host_key = models.TextField(blank=True, default="", db_default="")
    ssh_host_private_key = EncryptedTextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("status", ServerStatus, "servers_server"),
            models.UniqueConstraint(
                fields=["user"],
                condition=~Q(status__in=ENDED_SERVER_STATUSES),
                name="servers_server_one_active_per_user",
                violation_error_message="You already have a server.",
            ),
            models.UniqueConstraint(
                fields=["provider_id"],
                condition=~Q(provider_id=""),
                name="servers_server_provider_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="server_user_created_idx"),
            models.Index(fields=["status"], name="server_status_idx"),
        ]

    def __str__(self):
        return self.name


class ServerEventKind(models.TextChoices):
    PAYMENT_CONFIRMED = "payment_confirmed", "Payment confirmed"
    DROPLET_REQUESTED = "droplet_requested", "Server requested"
    DROPLET_ACTIVE = "droplet_active", "Server booted"
    READY = "ready", "Ready"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"
    REFUND_ISSUED = "refund_issued", "Refund issued"
    DELETED = "deleted", "Deleted"
    DESTROYED = "destroyed", "Server destroyed"


class ServerEvent(models.Model):
    """One step in a server's life, shown on its timeline. Append-only."""

    Kind = ServerEventKind

    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=32, choices=ServerEventKind.choices)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [choices_check("kind", ServerEventKind, "servers_serverevent")]
        indexes = [
            models.Index(fields=["server", "created_at"], name="serverevent_server_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message}"


class SimulatedPower(models.TextChoices):
    NEW = "new", "New"
    ACTIVE = "active", "Active"
    OFF = "off", "Off"


class SimulatedDroplet(models.Model):
    """The offline DigitalOcean stand-in's droplets, kept in PostgreSQL so the web process
    and the worker agree. Unused when DIGITALOCEAN_TOKEN is set."""

    name = models.CharField(max_length=255)
    tags = models.JSONField(default=list)
    size = models.CharField(max_length=64)
    region = models.CharField(max_length=16)
    image = models.CharField(max_length=64)
    user_data = models.TextField(blank=True)
    # new / active / off, as DigitalOcean says; a destroyed droplet is gone from the API.
    power = models.CharField(
        max_length=16, choices=SimulatedPower.choices, default=SimulatedPower.ACTIVE
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    destroyed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [choices_check("power", SimulatedPower, "servers_simulateddroplet")]

    def __str__(self):
        return f"{self.name} ({self.pk})"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    SUCCESS = "success", "Succeeded"
    FAILED = "failed", "Failed"


class Deployment(models.Model):
    """One run of `git clone/pull` and the app's build on a server, with its log."""

    Status = DeploymentStatus

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="deployments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deployments"
    )
    git_url = models.CharField(max_length=500)
    branch = models.CharField(max_length=255, default="main")
    commit = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING
    )
    output = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [choices_check("status", DeploymentStatus, "servers_deployment")]
        indexes = [
            models.Index(fields=["server", "-created_at"], name="deploy_server_created_idx"),
            models.Index(fields=["user", "-created_at"], name="deploy_user_created_idx"),
        ]

    def __str__(self):
        return f"{self.git_url}@{self.branch}"


class VerificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    VERIFIED = "verified", "Verified"
    FAILED = "failed", "Failed"


class SSLStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"


class Domain(models.Model):
    """A custom domain pointed at a server; the name is stored lower-case and is unique."""

    VerificationStatus = VerificationStatus
    SSLStatus = SSLStatus

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="domains")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="domains"
    )
    name = models.CharField(max_length=253)
    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.PENDING
    )
    verification_token = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    ssl_status = models.CharField(
        max_length=16, choices=SSLStatus.choices, default=SSLStatus.PENDING
    )
    ssl_error = models.TextField(blank=True, help_text="Why the certificate failed.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            choices_check("verification_status", VerificationStatus, "servers_domain"),
            choices_check("ssl_status", SSLStatus, "servers_domain"),
            models.UniqueConstraint(
                Lower("name"),
                name="servers_domain_name_ci_unique",
                violation_error_message="That domain is already attached to a server.",
            ),
            models.CheckConstraint(
                condition=Q(name=Lower("name")),
                name="servers_domain_name_lowercase",
                violation_error_message="Domain names are stored in lower case.",
            ),
        ]
        indexes = [
            models.Index(fields=["server", "name"], name="domain_server_name_idx"),
            models.Index(fields=["user", "-created_at"], name="domain_user_created_idx"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        # Domain names are case-insensitive; store them the one way the database accepts.
        self.name = self.name.strip().rstrip(".").lower()
