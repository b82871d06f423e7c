"""Every write to a deployment: created from the form (or again from an earlier one), run
by a job under the server's lock, its output stored as numbered, redacted lines while it
runs, cancelled, and failed with a reason when its worker died. A deployment always ends
`success` or `failed`: a hard timeout, a cancel and the recovery job see to that.

The server's row is locked before a deployment is created, as it is before a power
action is requested (servers/actions.py), so a deployment never starts beside a reboot.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hosting.jobs import defer
from servers.models import (
    Deployment,
    DeploymentLogLine,
    DeploymentStatus,
    Server,
    ServerAction,
    ServerEventKind,
)
from servers.redaction import redact, url_credentials
from servers.runners import RunnerError, runner_for
from servers.runners.script import deploy_script
from servers.services import server_event_record, server_lock

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (DeploymentStatus.PENDING, DeploymentStatus.IN_PROGRESS)
MAX_LOG_LINES = 20_000
MAX_LINE_LENGTH = 2_000
COMMIT_MARKER = "::commit "
# How often, at most, the running job reads the cancel flag from the database.
CANCEL_CHECK_SECONDS = 1.0
DEPLOYMENT_TASK = "servers.tasks.deployment_run"

WORKER_DIED_REASON = (
    "The worker running this deployment stopped (restarted or crashed) before it finished."
)
JOB_LOST_REASON = "This deployment's job was lost before it started; deploy again."


class DeploymentRefused(Exception):
    """The deployment cannot be created or changed now; the message says why."""


def deployment_create(
    *, server_id: int, git_url: str, branch: str, subdirectory: str = ""
) -> Deployment:
    """A `pending` deployment of the server's owner with its job, queued behind any other
    deployment of the server (the job's lock runs them one at a time). The URL is stored
    without its credentials; the whole URL only encrypted, when it has credentials."""
    from servers.tasks import deployment_run

    with transaction.atomic():
        server = Server.objects.select_for_update().get(pk=server_id)
        if server.status != Server.Status.RUNNING:
            state = server.get_status_display().lower()
            raise DeploymentRefused(f"Deployments need a running server; this one is {state}.")
        action = ServerAction.objects.filter(
            server=server, status=ServerAction.Status.IN_PROGRESS
        ).first()
        if action is not None:
            raise DeploymentRefused(
                f"The server is busy ({action.get_kind_display().lower()} in progress): "
                "deploy when it has finished."
            )
        secret = url_credentials(git_url)
        deployment = Deployment.objects.create(
            server=server,
            user_id=server.user_id,
            git_url=redact(git_url, secrets=(secret,)),
            git_url_secret=git_url if secret else "",
            branch=branch,
            subdirectory=subdirectory,
        )
        defer(deployment_run, lock=server_lock(server.pk), deployment_id=deployment.pk)
    return deployment


def deployment_redeploy(*, deployment_id: int, staff=None, request=None) -> Deployment:
    """A new deployment of the same repository, branch and directory. `staff`: the member
    of staff who asked (audited)."""
    earlier = Deployment.objects.get(pk=deployment_id)
    with transaction.atomic():
        deployment = deployment_create(
            server_id=earlier.server_id,
            git_url=earlier.git_url_secret or earlier.git_url,
            branch=earlier.branch,
            subdirectory=earlier.subdirectory,
        )
        _audit_staff(staff, request, earlier, "deployment_redeploy")
    return deployment


def deployment_cancel(*, deployment_id: int, staff=None, request=None) -> Deployment:
    """Cancel a deployment: one still waiting ends at once; a running one is stopped by its
    job within a second or so (its remote processes killed). Raises DeploymentRefused when
    it has already ended. `staff`: the member of staff who asked (audited)."""
    who = "our staff" if staff else "you"
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.status == DeploymentStatus.PENDING:
            _finish(deployment, status=DeploymentStatus.FAILED, reason=f"Cancelled by {who}.")
        elif deployment.status == DeploymentStatus.IN_PROGRESS:
            if deployment.cancel_requested_at is None:
                deployment.cancel_requested_at = timezone.now()
                deployment.save(update_fields=["cancel_requested_at"])
        else:
            raise DeploymentRefused("This deployment has already finished.")
        _audit_staff(staff, request, deployment, "deployment_cancel")
    return deployment


def _audit_staff(staff, request, deployment: Deployment, action: str) -> None:
    if staff is None:
        return
    from accounts.models import AuditAction
    from accounts.services import audit_event_record

    audit_event_record(
        action=AuditAction.STAFF_ACTION,
        actor=staff,
        request=request,
        target=deployment,
        metadata={"action": action, "server": deployment.server_id},
    )


@dataclass
class _Log:
    """Stores the runner's output as numbered lines, redacted, as it arrives; keeps the
    commit the script reports."""

    deployment_id: int
    secrets: tuple[str, ...]
    number: int = 0
    commit: str = ""
    full: bool = False
    last_lines: list[str] = field(default_factory=list)

    def add(self, lines: list[str]) -> None:
        rows = []
        for line in lines:
            if line.startswith(COMMIT_MARKER):
                self.commit = line[len(COMMIT_MARKER) :].strip()[:64]
                continue
            if line.startswith("::"):
                continue  # the runner's and the script's own markers
            if self.number >= MAX_LOG_LINES:
                if not self.full:
                    self.full = True
                    rows.append(self._row(f"(log truncated after {MAX_LOG_LINES} lines)"))
                continue
            rows.append(self._row(redact(line[:MAX_LINE_LENGTH], secrets=self.secrets)))
        # Each batch commits on its own, so the page shows it at once.
        DeploymentLogLine.objects.bulk_create(rows)

    def _row(self, text: str) -> DeploymentLogLine:
        self.number += 1
        self.last_lines = [*self.last_lines[-4:], text]
        return DeploymentLogLine(deployment_id=self.deployment_id, number=self.number, text=text)


def deployment_execute(*, deployment_id: int, job_id: int | None = None) -> str | None:
    """The deployment job: run the deploy script on the server, streaming its log, and
    record how it ended. Returns the final status, or None when there was nothing to run
    (cancelled while it waited, or a job run twice)."""
    with transaction.atomic():
        deployment = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("server")
            .get(pk=deployment_id)
        )
        if deployment.status != DeploymentStatus.PENDING:
            return None
        deployment.status = DeploymentStatus.IN_PROGRESS
        deployment.started_at = timezone.now()
        deployment.job_id = job_id
        deployment.save(update_fields=["status", "started_at", "job_id"])
    server = deployment.server
    secret = url_credentials(deployment.git_url_secret)
    log = _Log(deployment_id=deployment.pk, secrets=(secret,) if secret else ())
    try:
        reason = _run(deployment, server, log)
    except Exception:
        logger.exception("Deployment %s stopped by an internal error", deployment.pk)
        deployment_fail(
            deployment_id=deployment.pk, reason="An internal error stopped the deployment."
        )
        raise
    if reason is None:
        return deployment_succeed(deployment_id=deployment.pk, commit=log.commit)
    deployment_fail(deployment_id=deployment.pk, reason=reason, commit=log.commit)
    return DeploymentStatus.FAILED


def _run(deployment: Deployment, server: Server, log: _Log) -> str | None:
    """Run the script; None when it succeeded, else the one-line reason it failed."""
    if server.status != Server.Status.RUNNING:
        return f"The server is {server.get_status_display().lower()}, so nothing was deployed."
    runner = runner_for(server)
    script = deploy_script(
        git_url=deployment.git_url_secret or deployment.git_url,
        branch=deployment.branch,
        subdirectory=deployment.subdirectory,
        app_dir=runner.app_dir,
        build=not runner.simulated,
    )
    should_stop = _stop_check(deployment)
    try:
        result = runner.run_script(script, on_lines=log.add, should_stop=should_stop)
    except RunnerError as exc:
        return redact(str(exc), secrets=log.secrets)
    if result.stopped:
        return result.stopped
    if result.exit_status != 0:
        last = log.last_lines[-1] if log.last_lines else ""
        return f"The deployment script exited with status {result.exit_status}" + (
            f": {last}" if last else "."
        )
    if not log.commit:
        return "The deployment script ended without reporting the commit it checked out."
    return None


def _stop_check(deployment: Deployment):
    """The runner's `should_stop`: the hard timeout, or a cancel asked for on the page."""
    deadline = time.monotonic() + settings.DEPLOY_TIMEOUT
    last_read = 0.0

    def should_stop() -> str | None:
        nonlocal last_read
        now = time.monotonic()
        if now >= deadline:
            limit = _duration(settings.DEPLOY_TIMEOUT)
            return f"Stopped after {limit}: deployments may run for at most that long."
        if now - last_read >= CANCEL_CHECK_SECONDS:
            last_read = now
            cancelled = (
                Deployment.objects.filter(pk=deployment.pk, cancel_requested_at__isnull=False)
                .exclude(status=DeploymentStatus.PENDING)
                .exists()
            )
            if cancelled:
                return "Cancelled while it ran; the processes on the server were stopped."
        return None

    return should_stop


def _duration(seconds: int) -> str:
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} s"


def deployment_succeed(*, deployment_id: int, commit: str) -> str | None:
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.status != DeploymentStatus.IN_PROGRESS:
            return None
        deployment.commit = commit
        _finish(deployment, status=DeploymentStatus.SUCCESS)
    return DeploymentStatus.SUCCESS


def deployment_fail(*, deployment_id: int, reason: str, commit: str = "") -> bool:
    """Fail a deployment that is still running (the job, or the recovery of a dead one),
    and mail the customer. False when it had already ended."""
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.status not in ACTIVE_STATUSES:
            return False
        if commit:
            deployment.commit = commit
        _finish(deployment, status=DeploymentStatus.FAILED, reason=reason)
    return True


def _finish(deployment: Deployment, *, status: str, reason: str = "") -> None:
    """Record the end of a locked deployment: its row, the server's timeline, and (for a
    deployment that ran and failed) the customer's mail."""
    from servers.tasks import deployment_notify

    ran = deployment.status == DeploymentStatus.IN_PROGRESS
    deployment.status = status
    deployment.failure_reason = reason[:1000]
    deployment.finished_at = timezone.now()
    deployment.save(update_fields=["status", "failure_reason", "finished_at", "commit"])
    server = Server(pk=deployment.server_id)
    if status == DeploymentStatus.SUCCESS:
        server_event_record(
            server=server,
            kind=ServerEventKind.DEPLOYED,
            message=f"Deployed {deployment.commit[:7]} from {deployment.branch}.",
        )
    elif ran:
        server_event_record(server=server, kind=ServerEventKind.DEPLOY_FAILED, message=reason)
        defer(deployment_notify, deployment_id=deployment.pk)


def deployments_recover() -> int:
    """Fail the deployments no job will finish: `in_progress` whose job is no longer
    running (its worker died and the queue took the job back), and `pending` whose job is
    gone. Safe beside live workers: a running job's row says `doing`."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    # Deployments first, jobs second: a deployment and its job are committed together, so
    # every deployment read here has its job in the second read unless the job is gone
    # (or finished, which deployment_fail notices under the row's lock).
    stuck = list(
        Deployment.objects.filter(status__in=ACTIVE_STATUSES).only("pk", "status", "job_id")
    )
    live_jobs = list(
        ProcrastinateJob.objects.filter(
            task_name=DEPLOYMENT_TASK, status__in=["todo", "doing"]
        ).only("id", "status", "args")
    )
    running = {job.id for job in live_jobs if job.status == "doing"}
    waiting = {job.args.get("deployment_id") for job in live_jobs}
    failed = 0
    for deployment in stuck:
        if deployment.status == DeploymentStatus.IN_PROGRESS and deployment.job_id not in running:
            failed += deployment_fail(deployment_id=deployment.pk, reason=WORKER_DIED_REASON)
        elif deployment.status == DeploymentStatus.PENDING and deployment.pk not in waiting:
            failed += deployment_fail(deployment_id=deployment.pk, reason=JOB_LOST_REASON)
    return failed
