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
    # Powered off for an unpaid renewal, data kept; payment brings it back.
    SUSPENDED = "suspended", "Suspended"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


# A server in one of these states no longer counts against the one-per-customer rule.
ENDED_SERVER_STATUSES = [ServerStatus.FAILED, ServerStatus.DELETED]
# A row joined to its server for a page never loads these (each would be decrypted):
# `.defer(*joined_server_secrets("server"))`.
SERVER_SECRET_FIELDS = ("ssh_password", "ssh_host_private_key", "tls_token")


def joined_server_secrets(relation: str) -> tuple[str, ...]:
    return tuple(f"{relation}__{name}" for name in SERVER_SECRET_FIELDS)


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
    # The token in the server's Caddy `ask` URL (/servers/tls/ask/<token>/): only its
    # SHA-256 is kept for the lookup; the token itself (encrypted) only until the server
    # runs, so a retried provisioning job writes the same one into cloud-init.
    tls_token_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    tls_token = EncryptedTextField(blank=True, default="", db_default="")
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
            models.UniqueConstraint(
                fields=["tls_token_hash"],
                condition=~Q(tls_token_hash=""),
                name="servers_server_tls_token_hash_unique",
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
    ACTION_REQUESTED = "action_requested", "Requested"
    STARTED = "started", "Started"
    STOPPED = "stopped", "Stopped"
    REBOOTED = "rebooted", "Rebooted"
    ACTION_FAILED = "action_failed", "Action failed"
    PASSWORD_RESET = "password_reset", "Password reset"
    DEPLOYED = "deployed", "Deployed"
    DEPLOY_FAILED = "deploy_failed", "Deployment failed"
    DOMAIN_ADDED = "domain_added", "Domain added"
    DOMAIN_VERIFIED = "domain_verified", "Domain verified"
    HTTPS_ACTIVE = "https_active", "HTTPS active"
    HTTPS_FAILED = "https_failed", "HTTPS failed"
    DOMAIN_REMOVED = "domain_removed", "Domain removed"
    SUSPENDED = "suspended", "Suspended"
    RESUMED = "resumed", "Resumed"
    TICKET_OPENED = "ticket_opened", "Ticket opened"
    TICKET_ANSWERED = "ticket_answered", "Support answered"


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


class ServerActionKind(models.TextChoices):
    START = "start", "Start"
    STOP = "stop", "Stop"
    REBOOT = "reboot", "Reboot"
    PASSWORD_RESET = "password_reset", "Password reset"


class ServerActionStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ServerAction(models.Model):
    """A power action or password reset on a server, from the click to the provider's (or
    the server's) answer. The database allows one unfinished action per server, so a second
    click is refused rather than queued twice."""

    Kind = ServerActionKind
    Status = ServerActionStatus

    server = models.ForeignKey(Server, on_delete=models.PROTECT, related_name="actions")
    kind = models.CharField(max_length=16, choices=ServerActionKind.choices)
    status = models.CharField(
        max_length=16, choices=ServerActionStatus.choices, default=ServerActionStatus.IN_PROGRESS
    )
    # Who clicked: the customer, or a member of staff (also in the audit trail).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The provider's action being watched (DigitalOcean's action id), once it was sent.
    provider_action_id = models.CharField(max_length=64, blank=True, default="")
    # A stop whose graceful shutdown did not finish in time was followed by a power cut.
    forced = models.BooleanField(default=False)
    # A password reset's new password, kept (encrypted) until the server has it, so a
    # retried job sets the same one; emptied when the action ends.
    new_password = EncryptedTextField(blank=True, default="")
    reason = models.TextField(blank=True, help_text="Why the action failed.")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            choices_check("kind", ServerActionKind, "servers_serveraction"),
            choices_check("status", ServerActionStatus, "servers_serveraction"),
            models.UniqueConstraint(
                fields=["server"],
                condition=Q(status="in_progress"),
                name="servers_serveraction_one_open_per_server",
                violation_error_message="Another action is in progress on this server.",
            ),
        ]
        indexes = [
            models.Index(fields=["server", "-created_at"], name="serveraction_server_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_status_display()})"


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


class SimulatedAction(models.Model):
    """A power action on a simulated droplet: in progress for SIMULATED_PROVIDER_ACTION_SECONDS,
    then completed (and the droplet's power changed), as DigitalOcean's actions behave."""

    droplet = models.ForeignKey(SimulatedDroplet, on_delete=models.CASCADE, related_name="actions")
    type = models.CharField(max_length=16)  # power_on, shutdown, power_off, reboot
    status = models.CharField(max_length=16, default="in-progress")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.type} on {self.droplet_id}: {self.status}"


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
    # What the customer sees: the URL with any credentials replaced by "***".
    git_url = models.CharField(max_length=500)
    # The URL as given, only when it carries credentials (a token for a private
    # repository): encrypted, read by the deployment job alone, never shown.
    git_url_secret = EncryptedTextField(blank=True, default="", db_default="")
    branch = models.CharField(max_length=255, default="main")
    subdirectory = models.CharField(max_length=255, blank=True, default="", db_default="")
    commit = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING
    )
    # One line the customer reads above the log when the deployment failed.
    failure_reason = models.TextField(blank=True, default="", db_default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # The procrastinate job running it: a deployment `in_progress` whose job is no longer
    # running was left behind by a dead worker.
    job_id = models.BigIntegerField(null=True, blank=True)
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

    @property
    def is_finished(self) -> bool:
        return self.status in (DeploymentStatus.SUCCESS, DeploymentStatus.FAILED)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def duration_display(self) -> str:
        """Like "48 s" or "3 min 5 s"; empty until it has finished."""
        if self.duration is None:
            return ""
        seconds = int(self.duration.total_seconds())
        return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


class DeploymentLogLine(models.Model):
    """One line of a deployment's log, numbered from 1 as it arrived, so the page asks only
    for the lines after the last one it has. Stored already redacted."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deployment", "number"]
        constraints = [
            # Also the index the log partial reads by (deployment, number > n).
            models.UniqueConstraint(
                fields=["deployment", "number"], name="servers_deploymentlogline_unique"
            ),
        ]

    def __str__(self):
        return f"{self.number}: {self.text}"


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
    # Why the DNS check did not pass, with what it saw; empty once verified.
    verification_reason = models.TextField(blank=True, default="", db_default="")
    checked_at = models.DateTimeField(null=True, blank=True)
    # Checks of this kind since the last change of state: the backoff between them.
    check_attempts = models.PositiveIntegerField(default=0, db_default=0)
    ssl_status = models.CharField(
        "HTTPS status", max_length=16, choices=SSLStatus.choices, default=SSLStatus.PENDING
    )
    ssl_error = models.TextField("HTTPS error", blank=True, help_text="Why the certificate failed.")
    ssl_expires_at = models.DateTimeField("certificate expires", null=True, blank=True)
    ssl_checked_at = models.DateTimeField("HTTPS checked at", null=True, blank=True)
    # The expiry of the certificate the customer was warned about: one mail per certificate.
    expiry_warned_for = models.DateTimeField(null=True, blank=True)
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
